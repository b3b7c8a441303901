"""SIGHUP reloads, one at a time, a burst coalesced into at most one more.

The signal handler only writes a byte to a pipe (``os.write`` is safe in a
handler; taking a lock there could deadlock against a nested handler). One
thread reads the pipe and reloads: every byte that arrived during a reload is
drained by the next read, so a burst of N signals during a reload causes one
more reload after it, never N, and reloads never overlap. Each reload logs
``reload_started`` and ``reload_finished`` with the same ``seq``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

import structlog

__all__ = ["Reloader"]

log = structlog.get_logger("controller.runtime.reloader")
_RELOAD = b"h"
_QUIT = b"q"


class Reloader:
    """Runs ``reload`` on a thread of its own whenever ``request()`` was called."""

    def __init__(self, reload: Callable[[], bool]) -> None:
        self._reload = reload
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self.completed = 0  # reloads run so far (tests read it)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="reload", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a reload; safe to call from a signal handler, never blocks."""
        if self._closed:  # stopping: nothing to reload, and the descriptor may be reused
            return
        with contextlib.suppress(BlockingIOError):  # pipe full: a reload is pending anyway
            os.write(self._write, _RELOAD)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after the reload in progress, if any."""
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._write, _QUIT)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            os.close(self._read)
        os.close(self._write)

    def _loop(self) -> None:
        while True:
            requests = os.read(self._read, 65536)  # all pending requests at once
            if not requests or _QUIT in requests:
                return
            self.completed += 1
            seq = self.completed
            log.info("reload_started", seq=seq, coalesced=len(requests))
            ok = False
            try:
                ok = self._reload()
            except Exception:  # a bug in reload must not end reloading for good
                log.exception("reload_crashed", seq=seq)
            log.info("reload_finished", seq=seq, ok=ok)
