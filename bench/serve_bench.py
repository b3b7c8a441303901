"""The daemon's start, footprint and HTTP ceiling, each against a same-run baseline.

- start: seconds from spawning ``modelreg daemon`` to ``/readyz`` answering 200, with
  an (almost) empty registry and with ``--models`` models each with an active
  rollout, against a bare uvicorn app (``bare_asgi.py``, same loop and parser)
  started the same way; medians of ``--runs``. Resident memory (VmRSS) right after.
- cli: ``modelreg --help`` and ``modelreg list`` against ``python -c pass``.
- alerts: an Alertmanager webhook posted -> production rolled back, routed (file
  router) and committed, one at a time and 10 in flight, against ``/healthz``.
- http: ``wrk`` on ``GET /v1/models/{name}/resolve`` and ``GET /v1/routes/{model}``
  (with ``If-None-Match``: the 304 path) at ``-t1 -c1`` and ``-t2 -c16``, against
  the bare app on the same uvicorn settings. wrk and the server share the machine's
  two cores; a ratio compares requests/s (ours over the bare app's).

Usage: python bench/serve_bench.py [--quick] [--runs 5] [--models 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from figures import figure, load_average

from monitors.testing import free_port
from registry import ModelRegistry

BENCH = Path(__file__).resolve().parent


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers=headers or {})
        return conn.getresponse().status
    finally:
        conn.close()


def _ready(port: int, path: str) -> bool:
    try:
        return _get(port, path) == 200
    except OSError:
        return False


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Served:
    """A server process started and timed to its first 200 on ``probe``."""

    def __init__(self, argv: list[str], port: int, probe: str, log: Path) -> None:
        self.port = port
        self._log = log.open("ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log)
        deadline = t0 + 600
        while not _ready(port, probe):
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{argv[:4]} did not start; see {log}")
            time.sleep(0.005)
        self.start_s = time.perf_counter() - t0
        self.rss_mib = _rss_mib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._log.close()


def bare(port: int, log: Path) -> Served:
    argv = [sys.executable, "-m", "uvicorn", "bare_asgi:app", "--app-dir", str(BENCH),
            "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--lifespan", "off", "--log-level", "warning"]  # fmt: skip
    return Served(argv, port, "/healthz", log)


def daemon(config: Path, log: Path) -> Served:
    port = int(yaml.safe_load(config.read_text())["server"]["listen"].rsplit(":", 1)[1])
    argv = [sys.executable, "-m", "controller", "daemon", "--config", str(config)]
    return Served(argv, port, "/readyz", log)


def policy() -> dict[str, Any]:
    return {
        "router": "table",
        "strategy": {"kind": "canary", "steps": [50, 80], "step_duration": 3600},
        "interval": 10,
        "max_duration": 86_400,
        "analysis": {"metrics": [{"name": "error_rate", "source": "events",
                                  "query": "error_rate", "kind": "proportion",
                                  "direction": "lower"}]},
    }  # fmt: skip


def registry_with(home: Path, models: int, *, candidates: bool) -> None:
    """``models`` models with 1.0.0 in production (and 1.1.0 staged: a rollout each)."""
    artifact = home / "model.bin"
    home.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(b"model")
    with ModelRegistry(home=home, actor="bench") as reg:
        for i in range(models):
            name = "fraud" if i == 0 else f"m{i:05d}"
            reg.register_model(name, str(artifact), version="1.0.0", stage="staging")
            reg.promote_model(name, "1.0.0", to_stage="production", reason="bench")
            if candidates:
                reg.register_model(name, str(artifact), version="1.1.0", stage="staging")


def config_for(home: Path, models: int) -> Path:
    names = ["fraud", *(f"m{i:05d}" for i in range(1, models))]
    path = home / "daemon.yaml"
    path.write_text(yaml.safe_dump({
        "registry": {"home": str(home)},
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "sources": {"events": {"kind": "ingest",
                               "options": {"url": f"sqlite:///{home}/ingest.db"}}},
        "routers": {"table": {"kind": "http"}},
        "models": {name: policy() for name in names},
    }))  # fmt: skip
    return path


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def start(work: Path, runs: int, models: int) -> dict[str, Any]:
    small = work / "small"
    registry_with(small, 1, candidates=False)
    large = work / "large"
    registry_with(large, models, candidates=True)
    small_cfg, large_cfg = config_for(small, 1), config_for(large, models)
    first = daemon(large_cfg, work / "large.log")  # starts the rollouts once
    first.stop()
    times: dict[str, list[float]] = {"bare": [], "empty": [], "large": []}
    rss: dict[str, list[float]] = {"bare": [], "empty": [], "large": []}
    for _ in range(runs):  # interleaved: a noisy moment hits all three alike
        for key, run in (
            ("bare", lambda: bare(free_port(), work / "bare.log")),
            ("empty", lambda: daemon(small_cfg, work / "small.log")),
            ("large", lambda: daemon(large_cfg, work / "large.log")),
        ):
            served = run()
            times[key].append(served.start_s)
            rss[key].append(served.rss_mib)
            served.stop()
    out = {key: {"start_s": [round(t, 3) for t in times[key]],
                 "median_start_s": round(_median(times[key]), 3),
                 "median_rss_mib": round(_median(rss[key]), 1)} for key in times}  # fmt: skip
    out["models"] = models
    return out


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)  # fmt: skip
    return time.perf_counter() - t0


def cli(work: Path, runs: int) -> dict[str, Any]:
    home = work / "cli"
    registry_with(home, 10, candidates=False)
    env = {**os.environ, "MODELREG_HOME": str(home)}
    modelreg = [sys.executable, "-m", "controller"]
    cases: dict[str, list[str]] = {
        "python": [sys.executable, "-c", "pass"],
        "help": [*modelreg, "--help"],
        "list": [*modelreg, "list"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for key, argv in cases.items():
            times[key].append(_timed(argv, env))
    return {key: round(_median(v), 3) for key, v in times.items()}


def wrk(url: str, seconds: float, threads: int, connections: int,
        headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    text = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    out: dict[str, Any] = {}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            out["rps"] = round(float(parts[1]))
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            out[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif "Non-2xx or 3xx responses" in line:
            out["non_2xx_3xx"] = int(parts[-1])
    return out


def _ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * scale, 3)
    return float(text)


def serve(work: Path, seconds: float) -> dict[str, Any]:
    home = work / "http"
    registry_with(home, 1, candidates=False)
    ours = daemon(config_for(home, 1), work / "http.log")
    base = bare(free_port(), work / "bare-http.log")
    etag = ""
    conn = http.client.HTTPConnection("127.0.0.1", ours.port, timeout=2)
    conn.request("GET", "/v1/routes/fraud")
    answer = conn.getresponse()
    answer.read()
    etag = answer.getheader("etag") or ""
    conn.close()
    results: dict[str, Any] = {}
    try:
        for path, headers in (("/v1/models/fraud/resolve", None),
                              ("/v1/routes/fraud", {"If-None-Match": etag})):  # fmt: skip
            key = "resolve" if "resolve" in path else "routes_304"
            for threads, connections in ((1, 1), (2, 16)):
                shape = f"t{threads}c{connections}"
                b = wrk(f"http://127.0.0.1:{base.port}{path}", seconds, threads, connections,
                        headers)  # fmt: skip
                o = wrk(f"http://127.0.0.1:{ours.port}{path}", seconds, threads, connections,
                        headers)  # fmt: skip
                ratio = round(b["rps"] / o["rps"], 2)
                results[f"{key}_{shape}"] = {"ours": o, "bare": b, "bare_over_ours": ratio}
    finally:
        ours.stop()
        base.stop()
    return results


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, answer.read()


def _healthz(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/healthz")
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        raise RuntimeError(f"/healthz answered {answer.status}")


def _alert_body(i: int, name: str, starts: str) -> bytes:
    alert = {"status": "firing", "fingerprint": f"{i:016x}", "startsAt": starts,
             "labels": {"alertname": "ModelBroken", "model": name}}  # fmt: skip
    return json.dumps({"version": "4", "receiver": "modelreg", "status": "firing",
                       "groupKey": f"{{}}:{name}", "alerts": [alert]}).encode()  # fmt: skip


def _pct_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def alerts(work: Path, n: int, in_flight: int) -> dict[str, Any]:
    """N models with 1.1.0 in production after 1.0.0; N distinct firing alerts each roll
    one back (registry commit, file router rewritten and fsynced, alert remembered),
    posted one at a time and then ``in_flight`` at a time, against ``GET /healthz``
    on the same kind of keep-alive connection in the same run."""
    home = work / "alerts"
    home.mkdir(parents=True)
    names = [f"m{i:05d}" for i in range(2 * n)]
    artifact = home / "model.bin"
    artifact.write_bytes(b"model")
    with ModelRegistry(home=home, actor="bench") as reg:
        for name in names:
            for version in ("1.0.0", "1.1.0"):
                reg.register_model(name, str(artifact), version=version, stage="staging")
                reg.promote_model(name, version, to_stage="production", reason="bench")
    config = home / "daemon.yaml"
    config.write_text(yaml.safe_dump({
        "registry": {"home": str(home)},
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "sources": {"events": {"kind": "ingest",
                               "options": {"url": f"sqlite:///{home}/ingest.db"}}},
        "routers": {"table": {"kind": "file", "options": {"path": str(home / "routes.json")}}},
        "models": {name: {**policy(), "router": "table"} for name in names},
        "alerts": [{"name": "bad", "match": {"alertname": "ModelBroken"}, "action": "rollback"}],
    }))  # fmt: skip
    served = daemon(config, work / "alerts.log")
    try:
        time.sleep(1.0)  # the API application is built after readiness
        starts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        serial, serial_base = _alert_round(served.port, names[:n], 0, starts, 1)
        crowd, crowd_base = _alert_round(served.port, names[n:], n, starts, in_flight)
    finally:
        served.stop()
    out: dict[str, Any] = {"alerts": n, "in_flight": in_flight}
    for key, observed, base in (("one_at_a_time", serial, serial_base),
                                (f"{in_flight}_in_flight", crowd, crowd_base)):  # fmt: skip
        out[key] = {"p50_ms": _pct_ms(observed, 0.5), "p99_ms": _pct_ms(observed, 0.99),
                    "healthz_p50_ms": _pct_ms(base, 0.5), "healthz_p99_ms": _pct_ms(base, 0.99),
                    "p99_over_healthz_p99": round(_pct_ms(observed, 0.99)
                                                  / max(1e-6, _pct_ms(base, 0.99)), 2)}  # fmt: skip
    return out


def _alert_round(
    port: int, names: list[str], first: int, starts: str, workers: int
) -> tuple[list[float], list[float]]:
    """Post one alert per name from ``workers`` threads, each on its own connection,
    then as many ``/healthz`` round trips the same way; each request's latency."""
    observed: list[float] = []
    base: list[float] = []
    lock = threading.Lock()

    def post(share: list[tuple[int, str]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for i, name in share:
            t0 = time.perf_counter()
            status, body = _post(conn, "/v1/alerts", _alert_body(first + i, name, starts))
            mine.append(time.perf_counter() - t0)
            if status != 200 or not json.loads(body)["actions"][0]["acted"]:
                raise RuntimeError(f"alert for {name}: {status} {body[:200]!r}")
        conn.close()
        with lock:
            observed.extend(mine)

    def probe(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(count):
            t0 = time.perf_counter()
            _healthz(conn)
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            base.extend(mine)

    items = list(enumerate(names))
    for target, args in ((post, [items[k::workers] for k in range(workers)]),
                         (probe, [len(items[k::workers]) for k in range(workers)])):  # fmt: skip
        threads = [threading.Thread(target=target, args=(a,)) for a in args]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if len(observed) != len(names):
        raise RuntimeError("an alert poster failed; see above")
    return observed, base


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    s = result.get("start")
    if s:
        bare_s = s["bare"]["median_start_s"]
        out.append(figure("start_empty", "Daemon start to /readyz 200, empty registry",
                          s["empty"]["median_start_s"], "s", baseline=bare_s,
                          baseline_what="bare uvicorn app to its first 200", target="<= 4",
                          note="absolute target <= 1.0 s on a quiet machine"))  # fmt: skip
        out.append(figure("start_large", f"Daemon start to /readyz 200, {s['models']:,} "
                          "models with active rollouts", s["large"]["median_start_s"], "s",
                          baseline=bare_s, baseline_what="bare uvicorn app to its first 200",
                          note="absolute target <= 1.5 s on a quiet machine"))  # fmt: skip
        out.append(figure("rss_empty", "Resident memory after start, empty registry",
                          s["empty"]["median_rss_mib"], "MiB", baseline=s["bare"]["median_rss_mib"],
                          baseline_what="bare uvicorn app", target="<= 120",
                          target_on="value"))  # fmt: skip
    c = result.get("cli")
    if c:
        for key in ("help", "list"):
            out.append(figure(f"cli_{key}", f"modelreg {'--help' if key == 'help' else key}",
                              c[key], "s", baseline=c["python"],
                              baseline_what="python -c pass", target="<= 0.3",
                              target_on="value"))  # fmt: skip
    a = result.get("alerts")
    if a:
        for key in ("one_at_a_time", f"{a['in_flight']}_in_flight"):
            entry = a[key]
            out.append(figure(f"alerts_{key}", f"Alert -> production rolled back, routed and "
                              f"committed, p99 ({a['alerts']:,} alerts, {key.replace('_', ' ')})",
                              entry["p99_ms"], "ms", baseline=entry["healthz_p99_ms"],
                              baseline_what="GET /healthz p99, same connections",
                              target="<= 10",
                              note="absolute target p99 <= 20 ms, quiet machine"))  # fmt: skip
    h = result.get("http", {})
    for key, entry in h.items():
        limit = "<= 1.5" if key.endswith("t1c1") else "<= 2"
        out.append(figure(f"http_{key}", f"wrk {key.replace('_', ' ')}: requests/s",
                          entry["ours"]["rps"], "req/s", baseline=entry["bare"]["rps"],
                          baseline_what="bare ASGI app, same uvicorn",
                          ratio=entry["bare_over_ours"], target=limit,
                          note=f"p99 {entry['ours'].get('p99_ms')} ms "
                          f"(bare {entry['bare'].get('p99_ms')} ms)"))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--models", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--alerts", type=int, help="distinct alerts per round")
    parser.add_argument("--part", choices=["start", "cli", "http", "alerts"], action="append")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    models = args.models or (200 if args.quick else 1000)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    n_alerts = args.alerts or (200 if args.quick else 1000)
    parts = args.part or ["start", "cli", "http", "alerts"]
    if "http" in parts and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    # The project's modules byte-compiled, as an installed package has them (an editable
    # install with PYTHONDONTWRITEBYTECODE set would compile them at every start).
    for package in ("abtest", "controller", "monitors", "registry", "serving"):
        compileall.compile_dir(BENCH.parent / package, quiet=1, workers=0)
    result: dict[str, Any] = {"load_average_before": load_average()}
    parts_run: dict[str, Callable[[Path], Any]] = {
        "start": lambda w: start(w, runs, models),
        "cli": lambda w: cli(w, runs),
        "http": lambda w: serve(w, seconds),
        "alerts": lambda w: alerts(w, n_alerts, 10),
    }
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        for part in parts:
            result[part] = parts_run[part](Path(tmp))
    result["load_average_after"] = load_average()
    result["figures"] = figures(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
