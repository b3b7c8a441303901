"""kill -9 at seeded points of live canaries with the registry on PostgreSQL, eight
times, then every invariant, PostgreSQL's consistency checks included.

The stack of ``test_crash_loop`` (the daemon and the simulated workload as real
processes, the file router, ingest in SQLite) with the daemon's ``registry.url`` on a
scratch PostgreSQL schema: the registry, the rollouts, their decisions and intents
all live there. Canaries of ten one-second steps (5% to 50%, then promotion) run one
after the other (v1.1.0, better; v1.2.0, many errors; v1.3.0). Eight times the
daemon is killed: at a failpoint of the actuator's crash windows (``intent``: a
decision's intent committed and nothing done yet; ``acted``: routes pushed and the
registry moved, the intent not yet confirmed), the first or second time it gets
there, or after a random delay anywhere, mid-transaction as likely as not. Each
restart must finish what the dead process left: replay the intent, no effect twice.
Straight after the last kill the database is checked as it was left; then the
rollouts finish under a clean daemon and the invariants hold (``tests.invariants``):
on PostgreSQL, every index valid and passing ``amcheck`` (``heapallindexed``), no
foreign key's child row without its parent, no constraint NOT VALID; then artifacts,
one production version, every stage move audited once with the chain intact,
promotion only on a recorded passing analysis, the router holding what the database
wants, and each rollout's decisions following the policy's steps once each.

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
from tests.invariants import assert_invariants, database_intact, decisions_follow_policy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration, pytest.mark.postgres]

STEPS = [*(float(s) for s in range(5, 51, 5)), 100.0]
CYCLES = 8
CANDIDATES = ["1.1.0", "1.2.0", "1.3.0"]


def _policy() -> dict[str, Any]:
    """The demo's policy with ten short steps and small samples: many state changes
    (each an intent, an act and a confirm) in little time. The last step splits 50/50
    and the horizon is short (``max_duration``), so the evidence to promote comes within
    seconds of the kills' end rather than minutes."""
    policy: dict[str, Any] = demo_config(Path("."), 0)["models"]["fraud"]
    policy.update(strategy={"kind": "canary", "steps": STEPS, "step_duration": 1},
                  settle=0, min_samples=10, max_duration=300)  # fmt: skip
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


def _idle(stack: Stack, candidates: list[str]) -> bool:
    """Nothing left to reach a failpoint: every rollout ended and no candidate waits."""
    rollouts = stack.rollouts_direct()
    return not candidates and all(r["phase"] in TERMINAL for r in rollouts)


@pytest.mark.timeout(600)
def test_eight_kills_with_the_registry_on_postgres(tmp_path: Path, pg_url: str) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")))
    stack = build_stack(tmp_path, registry_url=pg_url, **_policy())
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
                wait_until(lambda p=process: p.poll() is not None or _idle(stack, candidates),
                           timeout=60)  # fmt: skip
                died = process.poll() is not None
                kills.append(f"{cycle}: {where} hit {nth}: {'died' if died else 'not reached'}")
        _kill(stack.procs["daemon"])
        # Straight after the last kill, before any recovery: still consistent.
        assert database_intact(pg_url) == [], kills
        stack.start_daemon()  # clean: it finishes what is in flight
        assert wait_until(
            lambda: all(r["phase"] in TERMINAL for r in stack.rollouts_direct()), timeout=240
        ), (stack.rollouts_direct(), kills, stack.log_tail())
        rollouts = stack.rollouts_direct()
        for rollout in rollouts:
            decisions = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=10_000)
            found = decisions_follow_policy(rollout["id"], decisions["decisions"], STEPS)
            assert found == [], (found, kills)
        assert {r["treatment"]: r["phase"] for r in rollouts}.get("v1.1.0") == "promoted", kills
    finally:
        stack.stop()
    assert any("died" in k for k in kills), kills  # the crash windows were really hit

    def read_route(model: str) -> Route | None:
        return read_table(stack.home / "routes.json").get(model)

    assert_invariants(pg_url, home=stack.home, read_route=read_route, settle=2)
