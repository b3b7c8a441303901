"""End to end: approvals through the daemon as a real subprocess, with bearer tokens.

The workload drives a winning candidate to ``awaiting_approval``; approvals and a
rejection then go through ``modelreg rollout approve|reject --api`` over real HTTP.
Bounded in time: every wait polls with a timeout. Marked slow (run by ./dev test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.demo import PROFILES, demo_config
from controller.http.auth import hash_token
from monitors.testing import free_port, wait_until
from registry import ModelRegistry
from serving.route import read_table

pytestmark = pytest.mark.slow

# identity -> (roles, token); "e2e" registers the versions and is on the approvers list
PEOPLE = {
    "e2e": (["approver"], "mrt_" + "e" * 40),
    "alice": (["approver"], "mrt_" + "a" * 40),
    "bob": (["approver"], "mrt_" + "b" * 40),
    "reader": (["reader"], "mrt_" + "r" * 40),
    "workload": (["deployer"], "mrt_" + "w" * 40),
}


def _register(home: Path, version: str, stage: str) -> None:
    with ModelRegistry(home=home, actor="e2e") as registry:
        artifact = home / f"{version}.bin"
        artifact.write_bytes(version.encode())
        registry.register_model("fraud", str(artifact), version=version, stage="staging")
        if stage == "production":
            registry.promote_model("fraud", version, to_stage="production", reason="base")
            registry.set_approval_required("production", ["alice", "bob", "e2e"], 2, model="fraud")


def _cli(url: str, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", "rollout", *args, "--api", url],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MODELREG_TOKEN": PEOPLE[who][1]},
    )  # fmt: skip


class TestApprovalsThroughTheDaemon:
    def test_refused_approvers_then_one_approval_then_rejection(self, tmp_path: Path) -> None:
        """Waiting on the control: the registrant's and a reader's approvals are refused
        (403), alice's counts but one more is needed, bob's rejection rolls back."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        data = demo_config(tmp_path, port)
        data["models"]["fraud"]["approval"] = {"while_waiting": "control", "max_wait": 600}
        data["server"]["tokens_file"] = str(tmp_path / "tokens.yaml")
        (tmp_path / "tokens.yaml").write_text(yaml.safe_dump({"tokens": [
            {"identity": who, "roles": roles, "hash": hash_token(token)}
            for who, (roles, token) in PEOPLE.items()]}))  # fmt: skip
        config = tmp_path / "daemon.yaml"
        config.write_text(yaml.safe_dump(data))
        _register(tmp_path, "1.0.0", "production")
        log = (tmp_path / "daemon.log").open("ab")
        env = {**os.environ, "MODELREG_TOKEN": PEOPLE["workload"][1]}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "controller", "daemon", "--config", str(config)],
                stdout=log, stderr=log,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "serving.workload", "--model", "fraud",
                 "--routes", str(tmp_path / "routes.json"), "--ingest", url, "--rate", "500",
                 *[a for p in PROFILES for a in ("--version", p)]],
                stdout=subprocess.DEVNULL, stderr=log, env=env,
            ),
        ]  # fmt: skip
        reader = {"Authorization": f"Bearer {PEOPLE['reader'][1]}"}

        def tail() -> str:
            return (tmp_path / "daemon.log").read_text()[-3000:]

        def rollout() -> dict[str, Any]:
            rows = httpx.get(f"{url}/v1/rollouts", headers=reader, timeout=5).json()
            return next((r for r in rows if r["treatment"] == "v1.1.0"), {})

        def up() -> bool:
            assert procs[0].poll() is None, tail()
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200

        try:
            assert wait_until(up, timeout=60), tail()
            _register(tmp_path, "1.1.0", "staging")
            assert wait_until(lambda: rollout().get("phase") == "awaiting_approval",
                              timeout=120, interval=0.5), tail()  # fmt: skip
            rid = str(rollout()["id"])
            assert read_table(tmp_path / "routes.json")["fraud"].weight_of("v1.1.0") == 0

            own = _cli(url, "e2e", "approve", rid, "--reason", "mine")
            assert own.returncode == 1
            assert "403: e2e owns or registered fraud-v1.1.0 and cannot approve it" in own.stderr
            role = _cli(url, "reader", "approve", rid)
            assert role.returncode == 1
            assert "403" in role.stderr
            assert "lacks the approver role" in role.stderr

            first = _cli(url, "alice", "approve", rid, "--reason", "fine", "--actor", "bob")
            assert first.returncode == 0, first.stderr
            assert "awaiting_approval" in first.stdout
            status = httpx.get(f"{url}/v1/rollouts/{rid}", headers=reader, timeout=5).json()
            assert "1 more approval needed from: bob (approved by alice)" in status["reason"]

            rejected = _cli(url, "bob", "reject", rid, "--reason", "bias in segment B")
            assert rejected.returncode == 0, rejected.stderr
            assert "rolled_back" in rejected.stdout
            assert read_table(tmp_path / "routes.json")["fraud"].weight_of("v1.1.0") == 0
            with ModelRegistry(home=tmp_path) as registry:
                recorded = [(d.approver, d.decision) for d in registry.approvals("fraud", "1.1.0")]
                assert recorded == [("alice", "approve"), ("bob", "reject")]
                assert registry.get_model_version("fraud", "1.1.0").stage == "archived"
                assert str(registry.resolve("fraud").version) == "v1.0.0"
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
