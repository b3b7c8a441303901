"""kill -9 at seeded points of live canaries, shared by the SQLite and PostgreSQL runs.

One stack (the daemon and the simulated workload as real processes) runs canaries of
many short steps; when one ends the next candidate enters staging (v1.1.0, better;
v1.2.0, many errors; v1.3.0). Each cycle kills the daemon: at a failpoint in the
actuator's crash windows (``intent``: a decision's intent committed and nothing done
yet; ``acted``: routes pushed and the registry moved, the intent not yet confirmed),
the first or second time it gets there, or after a random delay anywhere. Each
restart must finish what the dead process left: replay the intent, no effect twice.
Then a clean daemon finishes what is in flight, and each rollout's decisions must
follow the policy's steps once each, with v1.1.0 promoted.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from functools import partial

from monitors.testing import wait_until
from tests.controller.stack import TERMINAL, Stack
from tests.invariants import decisions_follow_policy

CANDIDATES = ("1.1.0", "1.2.0", "1.3.0")


def kill_loop(stack: Stack, *, cycles: int, rng: random.Random) -> list[str]:
    """Run ``cycles`` kills on a started stack with production registered; return one
    line per kill ("died" when a failpoint killed it). The daemon is dead at the end."""
    candidates = list(CANDIDATES)
    kills: list[str] = []

    def idle() -> bool:  # nothing left to reach a failpoint
        return not candidates and all(r["phase"] in TERMINAL for r in stack.rollouts_direct())

    stack.register(candidates.pop(0))
    for cycle in range(cycles):
        stack.kill_daemon()
        rollouts = stack.rollouts_direct()
        if rollouts and all(r["phase"] in TERMINAL for r in rollouts) and candidates:
            stack.register(candidates.pop(0))  # the next candidate, killed in turn
        where = rng.choice(["intent", "acted", "anywhere"])
        if where == "anywhere":
            stack.start_daemon_faulty(None)
            delay = rng.uniform(0.2, 3.0)
            time.sleep(delay)
            kills.append(f"{cycle}: anywhere after {delay:.2f} s")
            continue
        nth = rng.randint(1, 2)
        process = stack.start_daemon_faulty(f"{where}=kill:{nth}")
        wait_until(partial(_died_or, process, idle), timeout=30)
        died = process.poll() is not None
        kills.append(f"{cycle}: {where} hit {nth}: {'died' if died else 'not reached'}")
    stack.kill_daemon()
    return kills


def _died_or(process: subprocess.Popen[bytes], idle: Callable[[], bool]) -> bool:
    return process.poll() is not None or idle()


def finish_and_check(stack: Stack, steps: list[float], kills: list[str]) -> None:
    """A clean daemon finishes every rollout; each follows the steps once; v1.1.0 won."""
    stack.start_daemon()
    assert wait_until(
        lambda: all(r["phase"] in TERMINAL for r in stack.rollouts_direct()), timeout=240
    ), (stack.rollouts_direct(), kills, stack.log_tail())
    rollouts = stack.rollouts_direct()
    for rollout in rollouts:
        decisions = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=10_000)
        found = decisions_follow_policy(rollout["id"], decisions["decisions"], steps)
        assert found == [], (found, kills)
    assert {r["treatment"]: r["phase"] for r in rollouts}.get("v1.1.0") == "promoted", kills
