"""The daemon's start-up heap kept out of the garbage collector's full passes.

A full (oldest-generation) collection walks every tracked object in the process: with
thousands of models, the config's policies, the registry's caches and the loaded
modules are most of them, and they live as long as the daemon. Each full pass during
a tick then cost time in proportion to the fleet, not to the tick's own garbage: at
10,000 rollouts a look cost a fifth more CPU than at 100. ``gc.freeze`` moves what is
alive at the end of the start into a generation the collector never walks; objects
made later are collected as before, and frozen ones are still freed when nothing
refers to them. A reload replaces the config: ``resettle`` lets the collector see the
old one once (a full collection, off the request path) before freezing again, so that
a cycle left by it is not kept for ever.
"""

from __future__ import annotations

import gc

__all__ = ["resettle", "settle"]


def settle() -> None:
    """At the end of the start: freeze what is alive (no collection: the start is on
    the path to readiness, and its garbage is a few objects made once)."""
    gc.freeze()


def resettle() -> None:
    """After a reload: unfreeze, collect what the old config left, freeze again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
