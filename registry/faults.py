"""Failpoints: make a process slow, stuck, dead or failing at named points, from the
environment.

For tests of real processes only (the daemon, the ``modelreg`` command): signals,
watchdog, shutdown, crash recovery and disk errors; never set it in production.
``MODELREG_TEST_FAULTS`` holds ``;``-separated ``point=action:argument`` entries::

    MODELREG_TEST_FAULTS="tick=sleep:1.5;watch=block_while:/tmp/t/wedge;acted=kill:2"

Actions: ``sleep:<seconds>`` sleeps each time the point is reached;
``block_while:<file>`` blocks while that file exists (a test wedges the loop by
creating it and releases it by deleting it); ``kill:<n>`` SIGKILLs the process the
n-th time the point is reached (a crash at exactly that instant); ``error:<ERRNO>``
raises ``OSError`` with that errno (``EIO``, ``ENOSPC``, ...) every time, and
``error_while:<file>`` raises an ``EIO`` ``OSError`` while that file exists: a disk
failing under the one place writes go through. ``offset_from:<file>`` is for the
``clock`` point only, read with ``offset()``: the seconds written in that file (none:
0) are added to the daemon's clock, so a test can jump it forward and back.

Points of the daemon: ``tick`` (a rollout job, before its evaluation), ``watch`` (the
reconcile loop's watcher job, after its heartbeat), ``reload`` (a SIGHUP reload,
after it started), ``start`` (startup, before the first reconcile), and the
actuator's two crash windows: ``intent`` (a decision's intent is committed, nothing
done yet) and ``acted`` (routes pushed and the registry moved, the intent not yet
confirmed), and ``clock`` (the clock the daemon hands to the controller, its
stores and its registry). Points of the registry, where its writes go through:
``blob_write`` (the local artifact store, before an artifact's bytes are written),
``blob_stored`` (the blob is durable, the version not yet committed) and ``commit``
(``registry.store``, before a write transaction commits; on SQLite an error there is
raised as the ``sqlite3`` driver raises a disk error, elsewhere as the ``OSError``).
The module lives in the registry, the lowest package with points, so the
controller's points share it. Unset, ``point`` costs one dictionary lookup; set, each
fault logs ``test_fault`` as it starts.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

__all__ = ["ENV", "POINTS", "offset", "parse", "point"]

log = structlog.get_logger("faults")

ENV = "MODELREG_TEST_FAULTS"
POINTS = frozenset({
    "tick", "watch", "reload", "start", "intent", "acted", "clock",  # the daemon's
    "blob_write", "blob_stored", "commit",  # the registry's writes
})  # fmt: skip
_ACTIONS = frozenset({"sleep", "block_while", "kill", "error", "error_while", "offset_from"})
_hits: dict[str, int] = {}


@functools.lru_cache(maxsize=8)
def parse(spec: str) -> Mapping[str, tuple[str, str]]:
    """``{point: (action, argument)}``; a ValueError names the bad entry."""
    faults: dict[str, tuple[str, str]] = {}
    for entry in filter(None, (e.strip() for e in spec.split(";"))):
        name, eq, rest = entry.partition("=")
        action, colon, argument = rest.partition(":")
        if not eq or not colon or name not in POINTS or action not in _ACTIONS or not argument:
            raise ValueError(
                f"{ENV}: bad entry {entry!r}: expected point=action:argument with point in "
                f"{sorted(POINTS)} and action in {sorted(_ACTIONS)}"
            )
        if action == "sleep":
            try:
                float(argument)
            except ValueError:
                raise ValueError(f"{ENV}: {entry!r}: sleep needs seconds") from None
        if action == "kill" and not (argument.isdigit() and int(argument) >= 1):
            raise ValueError(f"{ENV}: {entry!r}: kill needs the hit to die at (1, 2, ...)")
        if action == "error" and not isinstance(getattr(errno, argument, None), int):
            raise ValueError(f"{ENV}: {entry!r}: error needs an errno name such as EIO")
        if (action == "offset_from") != (name == "clock"):
            raise ValueError(f"{ENV}: {entry!r}: offset_from is the clock point's only action")
        faults[name] = (action, argument)
    return faults


def point(name: str, *, env: Mapping[str, str] = os.environ) -> None:
    """Apply the fault configured for ``name``, if any (see the module docstring)."""
    spec = env.get(ENV)
    if not spec:
        return
    fault = parse(spec).get(name)
    if fault is None:
        return
    action, argument = fault
    if action == "kill":
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] == int(argument):
            log.warning("test_fault", point=name, action=action, argument=argument)
            os.kill(os.getpid(), signal.SIGKILL)
        return
    if action == "offset_from" or (action == "error_while" and not Path(argument).exists()):
        return  # offset_from is read with offset(), not applied here
    log.warning("test_fault", point=name, action=action, argument=argument)
    if action in ("error", "error_while"):
        code = errno.EIO if action == "error_while" else int(getattr(errno, argument))
        raise OSError(code, os.strerror(code), f"test fault at {name}")
    if action == "sleep":
        time.sleep(float(argument))
        return
    flag = Path(argument)
    while flag.exists():
        time.sleep(0.05)


def offset(name: str, *, env: Mapping[str, str] = os.environ) -> float:
    """Seconds to add at ``name`` (an ``offset_from`` fault; 0 when unset, or when its
    file is missing or not a number)."""
    spec = env.get(ENV)
    if not spec:
        return 0.0
    fault = parse(spec).get(name)
    if fault is None:
        return 0.0
    try:
        return float(Path(fault[1]).read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return 0.0
