"""tests.clock: the suite's one hand-moved clock keeps its three readings in step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.clock import START, Clock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class TestClock:
    def test_advance_moves_wall_and_monotonic_time_together(self) -> None:
        """Seconds and timedeltas both pass; every reading moves by the same amount."""
        clock = Clock(T0, monotonic=100.0)
        assert clock() == T0
        assert clock.timestamp() == T0.timestamp()
        assert clock.advance(1.5) == T0 + timedelta(seconds=1.5)
        assert clock.advance(timedelta(minutes=1)) == T0 + timedelta(seconds=61.5)
        assert clock() == T0 + timedelta(seconds=61.5)
        assert clock.timestamp() == T0.timestamp() + 61.5
        assert clock.monotonic() == 161.5

    def test_set_steps_the_wall_clock_only(self) -> None:
        """Setting the time (back or forth) leaves monotonic time where it was."""
        clock = Clock(T0)
        clock.advance(10)
        assert clock.set(T0 - timedelta(days=1)) == T0 - timedelta(days=1)
        assert clock() == T0 - timedelta(days=1)
        assert clock.monotonic() == 10.0

    def test_defaults(self) -> None:
        """Without arguments: START on the wall, zero monotonic seconds."""
        clock = Clock()
        assert clock() == START
        assert clock.monotonic() == 0.0

    def test_time_does_not_go_back(self) -> None:
        """A negative advance is refused; set() is the way to step back."""
        clock = Clock(T0)
        with pytest.raises(ValueError, match="does not go back"):
            clock.advance(-1)
        with pytest.raises(ValueError, match="does not go back"):
            clock.advance(timedelta(seconds=-1))
        assert clock() == T0

    def test_naive_datetimes_are_refused(self) -> None:
        """Every reader of the clock expects aware datetimes; any offset is fine."""
        with pytest.raises(ValueError, match="aware"):
            Clock(datetime(2026, 3, 1, 12, 0))  # naive: refused
        clock = Clock(T0)
        with pytest.raises(ValueError, match="aware"):
            clock.set(datetime(2026, 3, 1))  # naive: refused
        plus_two = timezone(timedelta(hours=2))
        assert clock.set(T0.astimezone(plus_two)) == T0
