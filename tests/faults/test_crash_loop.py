"""kill -9 at seeded points of live canaries, thirty times, then every invariant.

One stack (the daemon and the simulated workload as real processes, SQLite, the file
router) runs canaries of twenty steps; when one ends the next candidate enters
staging (v1.1.0, better; v1.2.0, many errors; v1.3.0). Thirty times the daemon is
killed: at a failpoint in the actuator's crash windows (``intent``: a decision's
intent committed and nothing done yet; ``acted``: routes pushed and the registry
moved, the intent not yet confirmed), the first or second time it gets there, or
after a random delay anywhere. Each restart must finish what the dead process left:
replay the intent, no effect twice. At the end the last rollout finishes under a
clean daemon and the invariants hold (``tests.invariants``): SQLite integrity,
artifacts, one production version, every stage move audited once with the chain
intact, promotion only on a recorded passing analysis, the router holding what the
database wants, and each rollout's decisions following the policy's steps once each.

Seeded (``MODELREG_FAULT_SEED``, default 0) so a failing sequence can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.demo import demo_config
from monitors.testing import wait_until
from serving.route import Route, read_table
from tests.controller.stack import TERMINAL, Stack, build_stack
from tests.invariants import assert_invariants, decisions_follow_policy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

STEPS = [float(s) for s in range(5, 101, 5)]
CYCLES = 30
CANDIDATES = ["1.1.0", "1.2.0", "1.3.0"]


def _policy() -> dict[str, Any]:
    """The demo's policy with twenty short steps and small samples: many state changes
    (each an intent, an act and a confirm) in little time."""
    policy: dict[str, Any] = demo_config(Path("."), 0)["models"]["fraud"]
    policy.update(strategy={"kind": "canary", "steps": STEPS, "step_duration": 1},
                  settle=0, min_samples=10, max_duration=900)  # fmt: skip
    for metric in policy["analysis"]["metrics"]:
        metric["min_samples"] = 10
    policy["triggers"][0]["min_samples"] = 10
    return policy


def _start(stack: Stack, faults: str | None) -> subprocess.Popen[bytes]:
    """The daemon with ``faults`` set; returns once it answers or has died trying."""
    env = {k: v for k, v in os.environ.items() if k != "MODELREG_TEST_FAULTS"}
    if faults:
        env["MODELREG_TEST_FAULTS"] = faults
    log = (stack.home / "daemon.log").open("ab")
    stack.files.append(log)
    process = subprocess.Popen(
        [sys.executable, "-m", "controller", "daemon", "--config", str(stack.config)],
        stdout=log, stderr=log, env=env,
    )  # fmt: skip
    stack.procs["daemon"] = process
    wait_until(lambda: process.poll() is not None or _up(stack.url), timeout=60)
    return process


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=15)


@pytest.mark.timeout(900)
def test_thirty_kills_at_seeded_points_of_canaries(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")))
    stack = build_stack(tmp_path, **_policy())
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    candidates = list(CANDIDATES)
    kills: list[str] = []
    try:
        stack.register(candidates.pop(0))
        for cycle in range(CYCLES):
            _kill(stack.procs["daemon"])
            rollouts = stack.rollouts_direct()
            if rollouts and all(r["phase"] in TERMINAL for r in rollouts) and candidates:
                stack.register(candidates.pop(0))  # the next candidate, killed in turn
            where = rng.choice(["intent", "acted", "anywhere"])
            if where == "anywhere":
                _start(stack, None)
                delay = rng.uniform(0.2, 3.0)
                time.sleep(delay)
                kills.append(f"{cycle}: anywhere after {delay:.2f} s")
            else:
                nth = rng.randint(1, 2)
                process = _start(stack, f"{where}=kill:{nth}")
                died = wait_until(lambda p=process: p.poll() is not None, timeout=20)
                kills.append(f"{cycle}: {where} hit {nth}: {'died' if died else 'not reached'}")
        _kill(stack.procs["daemon"])
        stack.start_daemon()  # clean: it finishes what is in flight
        assert wait_until(
            lambda: all(r["phase"] in TERMINAL for r in stack.rollouts_direct()), timeout=240
        ), (stack.rollouts_direct(), kills)
        rollouts = stack.rollouts_direct()
        for rollout in rollouts:
            decisions = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=10_000)
            found = decisions_follow_policy(rollout["id"], decisions["decisions"], STEPS)
            assert found == [], (found, kills)
        assert {r["treatment"]: r["phase"] for r in rollouts}.get("v1.1.0") == "promoted", kills
    finally:
        stack.stop()
    assert sum("died" in k for k in kills) >= 6, kills  # the crash windows were really hit

    def read_route(model: str) -> Route | None:
        return read_table(stack.home / "routes.json").get(model)

    assert_invariants(f"sqlite:///{stack.home / 'registry.db'}", home=stack.home,
                      read_route=read_route, settle=2)  # fmt: skip
