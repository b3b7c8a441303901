"""controller.runtime.heap: a ready daemon's start-up heap is frozen out of the garbage
collector's full passes, and a reload lets the collector see the old config once.
The heap is the process's own: each check runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.controller.runtime.test_start_imports import _config

CYCLE_KEPT_THEN_FREED = """
import gc, weakref
from controller.runtime import heap

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

gc.collect()
kept = cycle()            # garbage already, but only the collector can free a cycle
heap.settle()
assert gc.get_freeze_count() > 0
gc.collect()
assert kept() is not None, "a frozen cycle is not walked by the collector"
later = cycle()
gc.collect()
assert later() is None, "what is made after the start is collected as ever"
heap.resettle()
assert kept() is None, "a reload lets the collector see what the start left"
assert gc.get_freeze_count() > 0
print("OK")
"""

FROZEN_AT_READY = """
import gc, os, signal, sys
from controller.config import load_config
from controller.runtime.daemon import run

def ready(daemon):
    print("FROZEN", gc.get_freeze_count(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

sys.exit(run(load_config(sys.argv[1]), on_ready=ready))
"""


def _python(code: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
        timeout=120,
    ).stdout  # fmt: skip


def test_settle_keeps_the_start_out_of_full_passes_and_resettle_lets_it_go() -> None:
    assert _python(CYCLE_KEPT_THEN_FREED).strip() == "OK"


def test_a_ready_daemon_has_frozen_its_start(tmp_path: Path) -> None:
    config = _config(tmp_path, {"events": {"kind": "ingest", "options": {
        "url": f"sqlite:///{tmp_path}/ingest.db"}}})  # fmt: skip
    line = next(x for x in _python(FROZEN_AT_READY, str(config)).splitlines()
                if x.startswith("FROZEN "))  # fmt: skip
    assert int(line.split()[1]) > 10_000  # the modules, the config, the stores
