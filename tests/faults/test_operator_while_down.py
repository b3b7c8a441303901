"""Operators act while the daemon is down or stuck, and nothing is lost or done twice.

- A rollout paused, then the daemon killed and restarted: it stays paused (no look
  moves it), and resumes on request.
- A rollout aborted with ``--direct`` while no daemon runs: the restarted daemon does
  not resurrect it; serving goes back to production.
- Another process holds the registry's write lock for seconds: the daemon keeps
  answering its health and read routes, and its writes go through once the lock is
  released.

Then every invariant holds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from monitors.testing import wait_until
from serving.route import read_table
from tests.controller.stack import Stack, build_stack

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    return subprocess.run(
        [sys.executable, "-m", "controller", *args, "--config", str(stack.config)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def _kill(stack: Stack) -> None:
    stack.procs["daemon"].send_signal(signal.SIGKILL)
    stack.procs["daemon"].wait(timeout=15)


def _invariants(stack: Stack) -> None:
    stack.check_invariants()


def _serving(tmp_path: Path) -> Stack:
    """v1.0.0 in production, the daemon and the workload running, a short canary."""
    stack = build_stack(tmp_path, strategy={"kind": "canary", "steps": [10, 50, 100],
                                            "step_duration": 2})  # fmt: skip
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    return stack


@pytest.mark.timeout(600)
def test_pause_survives_a_crash_and_abort_while_down_sticks(tmp_path: Path) -> None:
    stack = _serving(tmp_path)
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: stack.rollout("v1.1.0") is not None, timeout=30)
        rollout = stack.rollout("v1.1.0")
        assert rollout is not None
        paused = _cli(stack, "rollout", "pause", str(rollout["id"]))
        assert paused.returncode == 0, paused.stderr
        rollout = stack.rollout("v1.1.0")  # as paused
        assert rollout is not None
        assert rollout["phase"] == "paused"
        _kill(stack)
        stack.start_daemon()
        time.sleep(5)  # several looks: a paused rollout does not move
        after = stack.rollout("v1.1.0")
        assert after is not None
        assert (after["phase"], after["weight"]) == ("paused", rollout["weight"]), after
        _kill(stack)  # and now, with no daemon, abort it from the database
        aborted = _cli(stack, "rollout", "abort", str(rollout["id"]), "--direct",
                       "--reason", "aborted while the daemon was down")  # fmt: skip
        assert aborted.returncode == 0, aborted.stderr
        stack.start_daemon()
        time.sleep(3)
        final = stack.rollout("v1.1.0")
        assert final is not None
        assert final["phase"] == "aborted", final
        assert read_table(stack.home / "routes.json")["fraud"].weight_of("v1.0.0") == 100
        assert stack.get("/v1/models/fraud/resolve")["version"] == "v1.0.0"
    finally:
        stack.stop()
    _invariants(stack)


@pytest.mark.timeout(600)
def test_a_long_held_writer_lock_stalls_writes_not_the_daemon(tmp_path: Path) -> None:
    stack = _serving(tmp_path)
    holder = None
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: stack.rollout("v1.1.0") is not None, timeout=30)
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
             " c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(8);"
             " c.execute('ROLLBACK')", str(stack.home / "registry.db")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # health and reads answer while writes wait
            started = time.monotonic()
            assert httpx.get(f"{stack.url}/healthz", timeout=2).status_code == 200
            assert httpx.get(f"{stack.url}/v1/models/fraud/resolve", timeout=2).status_code == 200
            assert time.monotonic() - started < 1.0
            time.sleep(0.5)
        holder.wait(timeout=30)
        done = stack.wait_finished("v1.1.0", timeout=120)
        assert done["phase"] == "promoted", done
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
            if holder.stdout is not None:
                holder.stdout.close()
        stack.stop()
    with sqlite3.connect(stack.home / "registry.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    _invariants(stack)
