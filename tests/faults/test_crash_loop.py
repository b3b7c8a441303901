"""kill -9 at thirty seeded points of live canaries (SQLite), then every invariant.

The loop is ``tests.faults.kill_loop``: canaries of twenty 1-second steps over three
candidates, killed at the actuator's crash windows (``intent``, ``acted``) or after a
random delay; a clean daemon then finishes them. At the end the invariants hold
(``tests.invariants``): SQLite integrity, artifacts, one production version, every
stage move audited once with the chain intact, promotion only on a recorded passing
analysis, the router holding what the database wants, and each rollout's decisions
following the policy's steps once each.

Seeded (``MODELREG_FAULT_SEED``, default 0) so a failing sequence can be replayed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.controller.stack import build_stack, fast_canary
from tests.faults.kill_loop import finish_and_check, kill_loop

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

STEPS = [float(s) for s in range(5, 101, 5)]
CYCLES = 30


@pytest.mark.timeout(900)
def test_thirty_kills_at_seeded_points_of_canaries(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")))
    stack = build_stack(tmp_path, **fast_canary(STEPS))
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    try:
        kills = kill_loop(stack, cycles=CYCLES, rng=rng)
        finish_and_check(stack, STEPS, kills)
    finally:
        stack.stop()
    assert sum("died" in k for k in kills) >= 6, kills  # the crash windows were really hit
    stack.check_invariants()
