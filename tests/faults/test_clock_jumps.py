"""The daemon's clock jumps forward and back mid-canary (an NTP step, a VM resumed).

The jump is made at the one clock the daemon hands to its controller, stores and
registry (the ``clock`` failpoint's offset file): three minutes ahead, then three
minutes behind, then right again, a few seconds each, while the canary runs (within
the policy's five-minute ``max_duration``, which a clock ahead brings nearer). Each
step of the clock is noticed (the wall clock's offset from the monotonic one changed)
and restarts the step's window, so no window spans traffic of another step (a false
sample-ratio mismatch would freeze the verdict) and a step started while the clock was
ahead does not wait for it. Throughout, ``/healthz`` answers and no tick fails; once
the clock is right, the better candidate is promoted, each step once, and every
invariant holds.

The scheduler's own timers read the system clock, which a test cannot move for one
process here (libfaketime breaks ``time.sleep`` unless it also fakes the monotonic
clock): their side, jobs set ahead by a clock that stepped back and run now by the
scheduler's clock watcher, is ``test_reconcile``'s ``rewind`` test.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from monitors.testing import wait_until
from tests.controller.stack import TERMINAL, Stack, build_stack, fast_canary
from tests.invariants import decisions_follow_policy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

STEPS = [20.0, 40.0, 60.0, 80.0, 100.0]


def _steady(stack: Stack, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        time.sleep(0.3)


@pytest.mark.timeout(300)
def test_a_clock_that_jumps_forward_and_back_mid_canary(tmp_path: Path) -> None:
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    stack = build_stack(tmp_path, **fast_canary(STEPS))
    stack.register("1.0.0", "production")
    stack.start_daemon({"MODELREG_TEST_FAULTS": f"clock=offset_from:{offset}"})
    stack.start_workload()
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: (stack.rollout("v1.1.0") or {}).get("weight", 0) >= 20,
                          timeout=60), stack.log_tail()  # fmt: skip
        for jump in ("180", "-180"):
            offset.write_text(jump)
            _steady(stack, 4)
        offset.write_text("0")
        assert wait_until(lambda: (stack.rollout("v1.1.0") or {}).get("phase") in TERMINAL,
                          timeout=120), stack.log_tail()  # fmt: skip
        rollout = stack.rollout("v1.1.0")
        assert rollout is not None
        assert rollout["phase"] == "promoted", rollout
        explained = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=10_000)
        assert decisions_follow_policy(rollout["id"], explained["decisions"], STEPS) == []
        log = (tmp_path / "daemon.log").read_text()
        assert "Traceback" not in log
        assert "tick_failed" not in log
        restarts = [d for d in explained["decisions"]
                    if d["numbers"].get("cause") == "clock_stepped"]  # fmt: skip
        assert len(restarts) >= 3, explained["decisions"]  # each jump restarts the window
    finally:
        stack.stop()

    stack.check_invariants()
