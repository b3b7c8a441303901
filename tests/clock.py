"""The test suite's one hand-moved clock.

Code under test never reads the time itself; it is handed a clock: the registry and
the controller call it for an aware ``datetime``, heartbeats, backoffs and route tables
for monotonic seconds, the webhook signer for epoch seconds. One ``Clock`` gives all
three readings, so a test moves time in one place and every reader agrees, and no test
grows its own fake that drifts from the others.

``advance`` moves wall and monotonic time together, never backwards. ``set`` steps the
wall clock alone, as an operator or NTP would: monotonic time does not jump.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["START", "Clock"]

START = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand: ``clock()`` is the wall time (aware),
    ``clock.timestamp()`` the same in epoch seconds, ``clock.monotonic()`` seconds
    counted from ``monotonic`` (0.0) by ``advance`` alone."""

    def __init__(self, start: datetime = START, *, monotonic: float = 0.0) -> None:
        self._now = _aware(start)
        self._monotonic = monotonic

    def __call__(self) -> datetime:
        return self._now

    def timestamp(self) -> float:
        """The wall time as ``time.time()`` gives it."""
        return self._now.timestamp()

    def monotonic(self) -> float:
        """Seconds as ``time.monotonic()`` gives them: only ``advance`` moves them."""
        return self._monotonic

    def advance(self, by: float | timedelta) -> datetime:
        """Let ``by`` (seconds or a timedelta) pass; the new wall time."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ValueError(f"time does not go back ({by!r}); set() steps the wall clock")
        self._now += by if isinstance(by, timedelta) else timedelta(seconds=seconds)
        self._monotonic += seconds
        return self._now

    def set(self, when: datetime) -> datetime:
        """Step the wall clock to ``when`` (aware), back or forth; monotonic time stays."""
        self._now = _aware(when)
        return self._now


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"a test clock reads aware datetimes, not {when!r}")
    return when
