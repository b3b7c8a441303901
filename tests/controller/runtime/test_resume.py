"""A restarted daemon resumes its rollouts' looks: due ones keep their time, overdue ones
are spread by id over about a look's CPU each, never all in one instant."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from controller.runtime.scheduler import RESUME_SPREAD_MAX, resume_at, resume_spread

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
INTERVAL = timedelta(seconds=10)


def test_a_look_due_within_its_interval_keeps_its_time() -> None:
    due = NOW + timedelta(seconds=4)
    assert resume_at(7, due, NOW, INTERVAL, timedelta(seconds=5)) == due


def test_overdue_looks_are_spread_evenly_within_the_spread() -> None:
    spread = resume_spread(1000)
    assert spread == timedelta(seconds=1)
    times = sorted(resume_at(i, NOW - INTERVAL, NOW, INTERVAL, spread) for i in range(1, 1001))
    assert times[0] >= NOW
    assert times[-1] < NOW + spread
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.01  # about 1 ms apart: no burst, no hole


def test_a_look_set_beyond_its_interval_is_not_waited_for() -> None:
    """A clock that stepped back left a next look far ahead: resumed within the spread."""
    far = NOW + timedelta(minutes=10)
    assert resume_at(3, far, NOW, INTERVAL, timedelta(seconds=2)) < NOW + timedelta(seconds=2)


def test_a_few_rollouts_resume_at_once_and_many_within_the_bound() -> None:
    assert resume_spread(1) == timedelta(milliseconds=1)
    assert resume_spread(0) == timedelta(0)
    assert resume_spread(10**6) == RESUME_SPREAD_MAX
