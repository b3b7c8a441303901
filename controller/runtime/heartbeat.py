"""The reconcile loop's heartbeat, which decides whether systemd's watchdog is fed.

The watcher job stamps it at the start of every pass and after each model's
routes are reconciled (the daemon's startup reconciliation does the same).
``WATCHDOG=1`` is sent only while the stamp is fresh, so a wedged loop (a job
stuck on a lock or on one router call, a scheduler that stopped running jobs)
stops the pings and systemd restarts the daemon, while a merely slow pass (many
models pushed to a router that retries with backoff or times out) does not: it
keeps stamping as it moves from model to model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Heartbeat", "stale_after"]


def stale_after(watchdog_s: float, watch_interval_s: float, configured: float | None) -> float:
    """How old the stamp may get: ``configured`` (``server.watchdog_stale_s``) when
    set; else two watchdog periods and at least three watch intervals, so that a
    pass slowed by a router retrying (bounded by its attempts and timeouts) does not
    count as wedged. A wedged loop is restarted within this plus one period."""
    if configured is not None:
        return configured
    return max(2.0 * watchdog_s, 3.0 * watch_interval_s)


class Heartbeat:
    """When the loop last showed progress (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def beat(self) -> None:
        with self._lock:
            self._last = self._clock()

    def age(self) -> float:
        """Seconds since the last beat."""
        with self._lock:
            return self._clock() - self._last

    def fresh(self, limit_s: float) -> bool:
        return self.age() <= limit_s
