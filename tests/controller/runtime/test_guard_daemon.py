"""The daemon as a subprocess guards production on its own: a bad production version,
fed by the simulated workload, is rolled back by the guard job without any request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from controller.demo import PROFILES, demo_config
from controller.shell.guard_pass import GUARD_ACTOR
from monitors.testing import free_port, wait_until
from registry import ModelRegistry
from serving.route import read_table

pytestmark = pytest.mark.slow


def _production(home: Path) -> str:
    with ModelRegistry(home=home, actor="test") as registry:
        return str(registry.resolve("fraud").version)


def test_daemon_rolls_back_a_bad_production_version(tmp_path: Path) -> None:
    """v1.2.0 (15 % errors) is production; triggers set through the registry API make
    the daemon's guard roll it back to v1.0.0, audited and routed, and it stays there."""
    port = free_port()
    data = demo_config(tmp_path, port)
    data["models"]["fraud"]["triggers"] = []  # only the registry's triggers guard it
    data["guard"] = {"interval": 1, "window": 10, "cooldown": 3600}
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump(data))
    with ModelRegistry(home=tmp_path, actor="e2e") as registry:
        for version in ("1.0.0", "1.2.0"):
            artifact = tmp_path / f"{version}.bin"
            artifact.write_bytes(version.encode())
            registry.register_model("fraud", str(artifact), version=version, stage="staging")
            registry.promote_model("fraud", version, to_stage="production", reason="base")
        registry.set_auto_rollback_triggers(
            "fraud", error_rate_threshold=0.08, window="5s", min_samples=50, consecutive=2
        )
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "daemon.log").open("wb") as log, (tmp_path / "workload.log").open("wb") as wl:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "controller", "daemon", "--config", str(config)],
            stdout=log, stderr=log,
        )  # fmt: skip
        workload = None
        try:
            assert wait_until(
                lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, timeout=60
            ), (tmp_path / "daemon.log").read_text()[-2000:]
            workload = subprocess.Popen(
                [sys.executable, "-m", "serving.workload", "--model", "fraud",
                 "--routes", str(tmp_path / "routes.json"), "--ingest", url, "--rate", "300",
                 *[a for p in PROFILES for a in ("--version", p)]],
                stdout=subprocess.DEVNULL, stderr=wl, env=dict(os.environ),
            )  # fmt: skip
            assert wait_until(
                lambda: _production(tmp_path) == "v1.0.0", timeout=60, interval=0.5
            ), (tmp_path / "daemon.log").read_text()[-3000:]
            with ModelRegistry(home=tmp_path, actor="test") as registry:
                last = registry.history("fraud")[-1]
            assert (last.kind, last.actor, str(last.version)) == ("rollback", GUARD_ACTOR, "v1.0.0")
            assert "guard trigger error_rate fired" in (last.reason or "")
            assert wait_until(
                lambda: (
                    [b.version for b in read_table(tmp_path / "routes.json")["fraud"].backends]
                    == ["v1.0.0"]
                ),
                timeout=10,
            )
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            assert 'modelreg_guard_rollbacks_total{model="fraud"} 1.0' in metrics
            time.sleep(3)  # several more guard passes: healthy now, and in cooldown anyway
            assert _production(tmp_path) == "v1.0.0"
        finally:
            for proc in (workload, daemon):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=30)
