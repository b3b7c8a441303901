"""Test fault injection: make the daemon slow or stuck at named points, from the environment.

For tests of the daemon as a real subprocess only (signals, watchdog, shutdown);
never set it in production. ``MODELREG_TEST_FAULTS`` holds ``;``-separated
``point=action:argument`` entries::

    MODELREG_TEST_FAULTS="tick=sleep:1.5;watch=block_while:/tmp/t/wedge;reload=sleep:0.5"

Actions: ``sleep:<seconds>`` sleeps each time the point is reached;
``block_while:<file>`` blocks while that file exists (a test wedges the loop by
creating it and releases it by deleting it). Points: ``tick`` (a rollout job,
before its evaluation), ``watch`` (the reconcile loop's watcher job, after its
heartbeat), ``reload`` (a SIGHUP reload, after it started) and ``start`` (the
daemon's startup, before its first reconcile). Unset, ``point``
costs one dictionary lookup; set, each fault logs ``test_fault`` as it starts.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

__all__ = ["ENV", "POINTS", "parse", "point"]

log = structlog.get_logger("controller.runtime.faults")

ENV = "MODELREG_TEST_FAULTS"
POINTS = frozenset({"tick", "watch", "reload", "start"})
_ACTIONS = frozenset({"sleep", "block_while"})


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
    log.warning("test_fault", point=name, action=action, argument=argument)
    if action == "sleep":
        time.sleep(float(argument))
        return
    flag = Path(argument)
    while flag.exists():
        time.sleep(0.05)
