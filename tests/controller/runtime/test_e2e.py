"""End to end: the daemon as a real subprocess, the simulated workload as another.

Bounded in time: every wait polls with a timeout. Marked slow (run by ./dev test).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from monitors.testing import free_port, wait_until
from registry import MLflowRegistry
from serving.route import read_table
from tests.controller.stack import Stack, build_stack
from tests.mlflow_server import Raw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = build_stack(tmp_path_factory.mktemp("e2e"))
    s.register("1.0.0", "production")
    s.start_daemon()
    s.start_workload()
    yield s
    s.stop()


class TestRollouts:
    def test_canary_promotes(self, stack: Stack) -> None:
        """A better candidate goes 10 -> 25 -> 50 % and is promoted; serving follows."""
        stack.register("1.1.0")
        done = stack.wait_finished("v1.1.0")
        assert done["phase"] == "promoted", stack.get(f"/v1/rollouts/{done['id']}/explain")
        assert stack.get("/v1/models/fraud/resolve")["version"] == "v1.1.0"
        explain = stack.get(f"/v1/rollouts/{done['id']}/explain")
        weights = [d["weight"] for d in explain["decisions"] if d["action"] == "set_weight"]
        assert weights == [10.0, 25.0, 50.0]
        route = read_table(stack.home / "routes.json")["fraud"]
        assert [(b.version, b.weight) for b in route.backends] == [("v1.1.0", 100)]
        assert "modelreg_controller_decisions_total" in httpx.get(f"{stack.url}/metrics").text
        lines = [json.loads(line) for line in (stack.home / "daemon.log").read_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        promote = [e for e in lines if e.get("event") == "decision" and e["action"] == "promote"]
        assert promote
        assert promote[0]["reasons"]
        assert promote[0]["numbers"]["metrics"]["accuracy"]["p_value"] < 0.05

    def test_regression_rolls_back(self, stack: Stack) -> None:
        """A candidate with many errors is rolled back automatically and archived: by the
        statistics (its error rate significantly worse) or by the trigger backstop."""
        stack.register("1.2.0")
        done = stack.wait_finished("v1.2.0")
        assert done["phase"] == "rolled_back"
        assert "error_rate significantly worse" in done["reason"] or (
            "trigger fired" in done["reason"]
        )
        last = stack.get(f"/v1/rollouts/{done['id']}/explain")["decisions"][-1]
        assert last["numbers"]["cause"] in ("harm", "trigger")
        versions = {v["version"]: v["stage"] for v in stack.get("/v1/models/fraud")}
        assert versions["v1.2.0"] == "archived"
        route = read_table(stack.home / "routes.json")["fraud"]
        assert route.weight_of("v1.2.0") == 0

    def test_cli_talks_to_the_daemon(self, stack: Stack) -> None:
        """`modelreg rollout list --api` shows the rollouts; a bad config exits 2."""
        listed = subprocess.run(
            [sys.executable, "-m", "controller", "rollout", "list", "--api", stack.url, "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert {r["treatment"] for r in json.loads(listed.stdout)} >= {"v1.1.0"}
        bad = stack.home / "bad.yaml"
        bad.write_text("routers: {}\nmodels: {x: {router: y}}\n")
        checked = subprocess.run(
            [sys.executable, "-m", "controller", "config", "check", str(bad)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checked.returncode == 2
        assert "bad.yaml" in checked.stderr


class TestHttpRouter:
    def test_serving_polls_the_daemon(self, tmp_path: Path) -> None:
        """With the http router the workload follows GET /v1/routes/fraud (ETag) and the
        canary promotes exactly as with the file."""
        s = build_stack(tmp_path)
        data = yaml.safe_load(s.config.read_text())
        data["routers"] = {"table": {"kind": "http"}}
        s.config.write_text(yaml.safe_dump(data))
        s.register("1.0.0", "production")
        s.start_daemon()
        s.start_workload(http_routes=True)
        try:
            first = httpx.get(f"{s.url}/v1/routes/fraud", timeout=5)
            assert first.json()["backends"][0]["version"] == "v1.0.0"
            s.register("1.1.0")
            done = s.wait_finished("v1.1.0")
            assert done["phase"] == "promoted"
            route = httpx.get(f"{s.url}/v1/routes/fraud", timeout=5)
            assert [b["version"] for b in route.json()["backends"]] == ["v1.1.0"]
            assert route.headers["etag"] != first.headers["etag"]
        finally:
            s.stop()


class TestCrash:
    def test_kill_9_mid_step_resumes(self, tmp_path: Path) -> None:
        """kill -9 during a canary step; the restarted daemon continues at the same step
        with the same step start, applies no decision twice, and the router equals the DB."""
        s = build_stack(tmp_path, strategy={"kind": "canary", "steps": [10, 25, 50, 100],
                                       "step_duration": 6})  # fmt: skip
        s.register("1.0.0", "production")
        s.start_daemon()
        s.start_workload()
        try:
            s.register("1.1.0")
            assert wait_until(
                lambda: (s.rollout("v1.1.0") or {}).get("weight") == 25.0, timeout=60
            ), s.log_tail()
            before = s.rollout("v1.1.0")
            assert before is not None
            s.procs["daemon"].send_signal(signal.SIGKILL)
            s.procs["daemon"].wait(timeout=10)
            s.start_daemon()
            after = s.rollout("v1.1.0")
            assert after is not None
            assert (after["step"], after["weight"], after["step_started_at"]) == (
                before["step"], before["weight"], before["step_started_at"])  # fmt: skip
            route = read_table(s.home / "routes.json")["fraud"]
            assert route.weight_of("v1.1.0") == 25
            done = s.wait_finished("v1.1.0")
            assert done["phase"] == "promoted"
            decisions = s.get(f"/v1/rollouts/{done['id']}/explain", limit=10000)["decisions"]
            changes = [(d["action"], d["weight"]) for d in decisions if d["action"] != "hold"]
            assert changes == [("set_weight", 10.0), ("set_weight", 25.0), ("set_weight", 50.0),
                               ("promote", 100.0)]  # fmt: skip
            assert all(d["applied"] for d in decisions)
            history = s.get("/v1/models/fraud/history")
            assert [t["to_stage"] for t in history if t["version"] == "v1.1.0"] == [
                "staging", "production"]  # fmt: skip
        finally:
            s.stop()


class TestBadRouter:
    def test_unwritable_routing_dir_reported_and_retried(self, tmp_path: Path) -> None:
        """A routing file whose directory cannot be created: /readyz is 503 naming the
        router, the metric says so, and once fixed the daemon becomes ready on its own."""
        blocker = tmp_path / "blocked"
        blocker.write_text("a file where the routing directory should be")
        s = build_stack(tmp_path)
        data = yaml.safe_load(s.config.read_text())
        data["routers"]["table"]["options"]["path"] = str(blocker / "routes.json")
        s.config.write_text(yaml.safe_dump(data))
        s.register("1.0.0", "production")
        s.start_daemon()
        try:
            ready = httpx.get(f"{s.url}/readyz", timeout=5)
            assert ready.status_code == 503
            assert "table" in ready.json()["router_errors"]
            metrics = httpx.get(f"{s.url}/metrics", timeout=5).text
            assert 'modelreg_controller_router_ready{router="table"} 0.0' in metrics
            blocker.unlink()
            assert wait_until(
                lambda: httpx.get(f"{s.url}/readyz", timeout=2).status_code == 200, timeout=30
            )
            assert read_table(blocker / "routes.json")["fraud"].weight_of("v1.0.0") == 100
        finally:
            s.stop()


class TestReload:
    def test_sighup_reloads_policies_and_keeps_a_bad_file_out(self, tmp_path: Path) -> None:
        """SIGHUP adds a policy; a later invalid file is refused and the daemon runs on."""
        s = build_stack(tmp_path)
        s.register("1.0.0", "production")
        s.start_daemon()
        try:

            def start_other() -> str:
                reply = httpx.post(
                    f"{s.url}/v1/rollouts", json={"model": "other", "version": "1.0.0"}, timeout=5
                )
                assert reply.status_code == 409
                return str(reply.json()["detail"])  # fmt: skip

            assert "no rollout policy" in start_other()
            data = yaml.safe_load(s.config.read_text())
            data["models"]["other"] = data["models"]["fraud"]
            s.config.write_text(yaml.safe_dump(data))
            s.procs["daemon"].send_signal(signal.SIGHUP)
            assert wait_until(lambda: "no rollout policy" not in start_other(), timeout=20)
            s.config.write_text("models: [not, a, mapping]\n")
            s.procs["daemon"].send_signal(signal.SIGHUP)
            assert wait_until(lambda: "reload_refused" in s.log_tail(), timeout=20)
            assert s.procs["daemon"].poll() is None
            assert "no rollout policy" not in start_other()  # the good config stays
            assert httpx.get(f"{s.url}/readyz", timeout=5).status_code == 200
        finally:
            s.stop()


class TestSystemdNotify:
    def test_ready_watchdog_reloading_stopping(self, tmp_path: Path) -> None:
        """Under a NOTIFY_SOCKET the daemon says READY=1, pings the watchdog, reports a
        SIGHUP reload and says STOPPING=1 on SIGTERM."""
        import socket

        s = build_stack(tmp_path)
        s.register("1.0.0", "production")
        path = str(tmp_path / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(30)
        try:
            s.start_daemon({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
            seen: list[str] = []

            def until(word: str) -> None:
                while not any(word in m for m in seen):
                    seen.append(sock.recv(4096).decode())

            until("READY=1")
            until("WATCHDOG=1")
            s.procs["daemon"].send_signal(signal.SIGHUP)
            until("RELOADING=1")
            s.procs["daemon"].send_signal(signal.SIGTERM)
            until("STOPPING=1")
            assert s.procs["daemon"].wait(timeout=20) == 0
        finally:
            s.stop()
            sock.close()


@pytest.mark.integration
class TestPrometheus:
    def test_canary_and_regression_on_prometheus(self, tmp_path: Path) -> None:
        """Judged on a real Prometheus scraping the workload's exporter: a candidate with
        fewer errors is promoted, then one with many errors is rolled back."""
        from monitors.testing import start_prometheus

        s = build_stack(tmp_path)
        s.register("1.0.0", "production")
        metrics_port = free_port()
        s.start_workload("--metrics-port", str(metrics_port),
                         "--version", "v1.0.0:err=0.03:lat=20",
                         "--version", "v1.1.0:err=0.002:lat=18")  # fmt: skip
        prom = start_prometheus(tmp_path / "prom", targets=[f"127.0.0.1:{metrics_port}"])
        try:
            data = yaml.safe_load(s.config.read_text())
            data["sources"]["prom"] = {
                "kind": "prometheus",
                "options": {"url": prom.url, "scrape_interval": 1},
            }
            sel = 'model="{{model}}",version="{{version}}"'
            total = f"sum(increase(predictions_total{{{sel}}}[{{{{window}}}}]))"
            errors = f"sum(increase(prediction_errors_total{{{sel}}}[{{{{window}}}}]))"
            data["models"]["fraud"].update({
                "settle": 3,
                "analysis": {
                    "planned_n_per_arm": 2000,
                    "units": {"source": "prom", "query": total},
                    "metrics": [{"name": "error_rate", "source": "prom",
                                 "query": f"{errors} / {total}", "sample_query": total,
                                 "kind": "proportion", "role": "primary",
                                 "direction": "lower", "min_samples": 50}],
                },
                "triggers": [{"name": "errors", "metric": "error_rate", "threshold": 0.08,
                              "min_samples": 50, "consecutive": 2}],
            })  # fmt: skip
            s.config.write_text(yaml.safe_dump(data))
            s.start_daemon()
            s.register("1.1.0")
            better = s.wait_finished("v1.1.0", timeout=120)
            assert better["phase"] == "promoted", s.get(
                f"/v1/rollouts/{better['id']}/explain", limit=5)["decisions"]  # fmt: skip
            s.register("1.2.0")
            worse = s.wait_finished("v1.2.0", timeout=120)
            assert worse["phase"] == "rolled_back"
            assert "error_rate" in worse["reason"]
        finally:
            s.stop()
            prom.stop()


@pytest.mark.mlflow
@pytest.mark.integration
class TestOnMLflow:
    def test_a_staging_alias_set_in_mlflow_is_rolled_out_by_the_daemon(
        self, tmp_path: Path, mlflow_uri: str, raw: Raw
    ) -> None:
        """``registry: {kind: mlflow}``: the daemon as a subprocess, versions in a real
        MLflow server. Another client sets the staging alias on a version registered
        in dev; the daemon starts its rollout, promotes it and moves MLflow's
        production alias; ``resolve`` answers from MLflow."""
        s = build_stack(tmp_path)
        data = yaml.safe_load(s.config.read_text())
        data["registry"] = {"kind": "mlflow", "tracking_uri": mlflow_uri, "home": str(tmp_path)}
        s.config.write_text(yaml.safe_dump(data))
        with MLflowRegistry(mlflow_uri, home=tmp_path, actor="e2e") as registry:
            for version, stage in (("1.0.0", "staging"), ("1.1.0", "dev")):
                artifact = tmp_path / f"{version}.bin"
                artifact.write_bytes(version.encode())
                registry.register_model("fraud", str(artifact), version=version, stage=stage)
            registry.promote_model("fraud", "1.0.0", to_stage="production", reason="base")
        assert raw.aliases("fraud")["production"] == 1
        s.start_daemon()
        s.start_workload()
        try:
            assert s.get("/v1/models/fraud/resolve")["version"] == "v1.0.0"
            assert s.rollout("v1.1.0") is None  # in dev: nothing to judge
            raw.post("registered-models/alias",
                     {"name": "fraud", "alias": "staging", "version": "2"})  # fmt: skip
            done = s.wait_finished("v1.1.0")
            assert done["phase"] == "promoted", s.get(f"/v1/rollouts/{done['id']}/explain")
            assert raw.aliases("fraud")["production"] == 2
            assert s.get("/v1/models/fraud/resolve")["version"] == "v1.1.0"
            route = read_table(tmp_path / "routes.json")["fraud"]
            assert [(b.version, b.weight) for b in route.backends] == [("v1.1.0", 100)]
        finally:
            s.stop()
