"""controller.shell.clock_steps: a step of the wall clock against the monotonic one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.shell.clock_steps import ClockSteps

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Monotonic:
    """The monotonic clock, moved by the test (never back)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_steps_are_seen_per_rollout_and_steady_time_is_not() -> None:
    """A step is the wall clock moving other than the monotonic one, past the tolerance."""
    monotonic = Monotonic()
    steps = ClockSteps(monotonic, tolerance_s=2.0)
    assert steps.stepped(1, T0) == 0.0  # a first look has nothing to compare
    monotonic.now += 30
    assert steps.stepped(1, T0 + timedelta(seconds=30.5)) == 0.0  # slewing, jitter
    monotonic.now += 1
    assert steps.stepped(1, T0 + timedelta(seconds=631.5)) == 600.0  # stepped ahead
    assert steps.stepped(2, T0 + timedelta(seconds=631.5)) == 0.0  # another rollout's first
    monotonic.now += 1
    assert steps.stepped(1, T0 + timedelta(seconds=32.5)) == -600.0  # and back
    monotonic.now += 1
    assert steps.stepped(1, T0 + timedelta(seconds=33.5)) == 0.0
