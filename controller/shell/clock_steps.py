"""Noticing the wall clock step (an NTP correction, a resumed VM) between two looks.

A rollout's step window is wall-clock time (it must survive restarts), and the
events it counts carry the wall-clock times of the hosts that made them. When the
daemon's clock steps, a window spans the wrong traffic: ahead, it finds no events;
set back, it takes in the previous step's traffic and the sample-ratio check fails
and freezes the verdict. A step shows as a change in the wall clock's offset from
the monotonic clock, which only moves forward at a steady rate; the tick tells
``decide`` (``Observations.clock_stepped``), which restarts the step's window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

__all__ = ["ClockSteps"]


class ClockSteps:
    """Per rollout, the wall clock's offset from the monotonic one at its last look (a
    float per rollout this process looked at: kept, as finished ones are few)."""

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, *, tolerance_s: float = 2.0
    ) -> None:
        self._monotonic = monotonic
        self.tolerance_s = tolerance_s
        self._offsets: dict[int, float] = {}
        self._lock = threading.Lock()

    def stepped(self, rollout_id: int, now: datetime) -> float:
        """Seconds the wall clock stepped since this rollout's last look (0: none, or
        less than the tolerance, which ordinary slewing and tick jitter stay under)."""
        offset = now.timestamp() - self._monotonic()
        with self._lock:
            last = self._offsets.get(rollout_id)
            self._offsets[rollout_id] = offset
        return self._step(last, offset)

    def peek(self, rollout_id: int, now: datetime) -> tuple[float, float]:
        """What ``stepped`` would answer, without counting this as a look: (the step,
        the offset to ``note`` once the look is stored). A batched tick peeks, and notes
        only the looks it stores: a rollout it hands to the single tick is looked at
        there, and must see the same step."""
        offset = now.timestamp() - self._monotonic()
        with self._lock:
            last = self._offsets.get(rollout_id)
        return self._step(last, offset), offset

    def note(self, rollout_id: int, offset: float) -> None:
        """Count a look ``peek`` measured as this rollout's last."""
        with self._lock:
            self._offsets[rollout_id] = offset

    def _step(self, last: float | None, offset: float) -> float:
        if last is None:
            return 0.0
        step = offset - last
        return step if abs(step) > self.tolerance_s else 0.0
