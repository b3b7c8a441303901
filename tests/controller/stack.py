"""The daemon as a real subprocess on the demo config (SQLite, ingest, file router)
with the simulated workload as another: the stack end-to-end and fault tests drive.
``build_stack(..., registry_url=...)`` puts the registry (and the controller's tables)
in that database instead, e.g. a PostgreSQL schema; artifacts, ingest and routes stay
in the stack's home. Every wait polls with a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.adapters.rollout_store import RolloutStore
from controller.demo import PROFILES, demo_config
from monitors.testing import free_port, wait_until
from registry import ModelRegistry
from serving.route import Route, read_table
from tests.invariants import assert_invariants

TERMINAL = ("promoted", "rolled_back", "aborted")


@dataclass
class Stack:
    home: Path
    url: str
    config: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: list[Any] = field(default_factory=list)
    registry_url: str | None = None  # None: SQLite, registry.db in home

    @property
    def db_url(self) -> str:
        """The registry's database, the daemon's as well."""
        return self.registry_url or f"sqlite:///{self.home / 'registry.db'}"

    def _log(self, name: str) -> Any:
        handle = (self.home / name).open("ab")
        self.files.append(handle)
        return handle

    def start_daemon(self, env: dict[str, str] | None = None) -> None:
        log = self._log("daemon.log")
        self.procs["daemon"] = subprocess.Popen(
            [sys.executable, "-m", "controller", "daemon", "--config", str(self.config)],
            stdout=log, stderr=log, env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert wait_until(self._up, timeout=60), self.log_tail()

    def _up(self) -> bool:
        assert self.procs["daemon"].poll() is None, self.log_tail()
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def start_workload(self, *extra: str, http_routes: bool = False) -> None:
        where = (["--routes-url", self.url] if http_routes
                 else ["--routes", str(self.home / "routes.json")])  # fmt: skip
        self.procs["workload"] = subprocess.Popen(
            [sys.executable, "-m", "serving.workload", "--model", "fraud",
             *where, "--ingest", self.url,
             "--rate", "500", *[a for p in PROFILES for a in ("--version", p)], *extra],
            stdout=subprocess.DEVNULL, stderr=self._log("workload.log"),
        )  # fmt: skip

    def register(self, version: str, stage: str = "staging") -> None:
        with ModelRegistry(self.registry_url, home=self.home, actor="e2e") as registry:
            artifact = self.home / f"{version}.bin"
            artifact.write_bytes(version.encode())
            registry.register_model("fraud", str(artifact), version=version, stage="staging")
            if stage == "production":
                registry.promote_model("fraud", version, to_stage="production", reason="base")

    def get(self, path: str, **params: Any) -> Any:
        return httpx.get(f"{self.url}{path}", params=params, timeout=5).json()

    def rollout(self, version: str) -> dict[str, Any] | None:
        rows = self.get("/v1/rollouts", model="fraud")
        return next((r for r in rows if r["treatment"] == version), None)

    def rollouts_direct(self) -> list[dict[str, Any]]:
        """Every rollout, from the database (the daemon may be down)."""
        store = RolloutStore.open(self.db_url)
        try:
            return [r.to_dict() for r in store.list_rollouts(limit=10_000)]
        finally:
            store.close()

    def wait_finished(self, version: str, timeout: float = 90) -> dict[str, Any]:
        done: dict[str, Any] = {}

        def finished() -> bool:
            found = self.rollout(version)
            if found and found["phase"] in TERMINAL:
                done.update(found)
                return True
            return False

        assert wait_until(finished, timeout=timeout, interval=0.5), self.log_tail()
        return done

    def log_tail(self) -> str:
        return (self.home / "daemon.log").read_text()[-3000:]

    def start_daemon_faulty(self, faults: str | None) -> subprocess.Popen[bytes]:
        """The daemon with ``MODELREG_TEST_FAULTS=faults`` (``registry.faults``); returns
        once it answers or has died trying (a kill fault may strike at once)."""
        env = {k: v for k, v in os.environ.items() if k != "MODELREG_TEST_FAULTS"}
        if faults:
            env["MODELREG_TEST_FAULTS"] = faults
        process = subprocess.Popen(
            [sys.executable, "-m", "controller", "daemon", "--config", str(self.config)],
            stdout=self._log("daemon.log"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self.procs["daemon"] = process
        wait_until(lambda: process.poll() is not None or self._answers(), timeout=60)
        return process

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill_daemon(self) -> None:
        """kill -9, and wait for it."""
        process = self.procs["daemon"]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=15)

    def read_route(self, model: str) -> Route | None:
        """What the file router's table holds for ``model``."""
        return read_table(self.home / "routes.json").get(model)

    def check_invariants(self, settle: float = 2.0) -> None:
        """Every invariant (``tests.invariants``) on this stack's database, artifacts and
        routes; call with the daemon stopped."""
        assert_invariants(self.db_url, home=self.home, read_route=self.read_route,
                          settle=settle)  # fmt: skip

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in self.files:
            handle.close()


def fast_canary(steps: list[float], *, max_duration: float = 300) -> dict[str, Any]:
    """The demo's policy with short steps (1 s) and small samples (10): many state
    changes, each an intent, an act and a confirm, in little time. The short horizon
    (``max_duration``) brings the evidence to promote within seconds of the last step."""
    policy: dict[str, Any] = demo_config(Path("."), 0)["models"]["fraud"]
    policy.update(strategy={"kind": "canary", "steps": steps, "step_duration": 1},
                  settle=0, min_samples=10, max_duration=max_duration)  # fmt: skip
    for metric in policy["analysis"]["metrics"]:
        metric["min_samples"] = 10
    policy["triggers"][0]["min_samples"] = 10
    return policy


def build_stack(tmp: Path, *, registry_url: str | None = None, **policy: Any) -> Stack:
    port = free_port()
    data = demo_config(tmp, port)
    data["models"]["fraud"].update(policy)
    if registry_url is not None:
        data["registry"]["url"] = registry_url
    config = tmp / "daemon.yaml"
    config.write_text(yaml.safe_dump(data))
    return Stack(tmp, f"http://127.0.0.1:{port}", config, registry_url=registry_url)
