"""kill -9 while a registry is created or migrated: it is whole before or after.

A new registry is built beside its path and linked into place (``db.create_sqlite``);
an older one is upgraded in one transaction. Killing the process that does either, at
seeded instants, must leave no registry or a whole one: at the old revision or at the
head, never in between, and the next process finishes the job.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry import ModelRegistry, db
from tests.invariants import assert_invariants

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CYCLES = 15


def _open_registry(home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    return subprocess.Popen(
        [sys.executable, "-m", "registry", "--home", str(home), "register", "fraud",
         "--metadata", "{}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def _kill_after(process: subprocess.Popen[bytes], delay: float) -> bool:
    time.sleep(delay)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return killed


def _kill_window(scratch: Path) -> tuple[float, float]:
    """From about when the interpreter has started to just past a whole unkilled run,
    both measured here: a fixed window missed the creation on a fast machine (every
    process done before its kill) and on a slow one (every kill before the database)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "registry", "--help"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    start_up = time.monotonic() - began
    began = time.monotonic()
    assert _open_registry(scratch).wait(timeout=120) == 0
    whole = time.monotonic() - began
    return 0.8 * start_up, max(whole, start_up) * 1.1


def _revision(path: Path) -> str | None:
    engine = db.make_engine(f"sqlite:///{path}", create=False)
    try:
        return db.current_revision(engine)
    finally:
        engine.dispose()


@pytest.mark.timeout(600)
def test_a_registry_killed_while_it_is_created_is_absent_or_whole(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")))
    window = _kill_window(tmp_path / "unkilled")
    killed = 0
    for cycle in range(CYCLES):
        home = tmp_path / f"home-{cycle}"
        killed += _kill_after(_open_registry(home), rng.uniform(*window))
        path = home / "registry.db"
        if path.exists():
            assert _revision(path) == db.head_revision(), cycle
            assert_invariants(f"sqlite:///{path}", home=home)
        fresh = not path.exists()
        with ModelRegistry(home=home, actor="faults") as registry:  # the next one finishes
            registry.register_model("fraud", None)
        if fresh:  # it built the registry: what the dead one left half-made is gone
            assert sorted(p.name for p in home.glob(".registry.db.*")) == [], cycle
    assert killed >= 3


@pytest.mark.timeout(600)
def test_a_registry_killed_while_it_is_migrated_is_old_or_new(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")) + 1)
    window = _kill_window(tmp_path / "unkilled")
    head = db.head_revision()
    for cycle in range(CYCLES):
        home = tmp_path / f"home-{cycle}"
        home.mkdir()
        path = home / "registry.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.migrate(engine, "0003")  # a registry made by an older modelreg
        engine.dispose()
        _kill_after(_open_registry(home), rng.uniform(*window))
        assert _revision(path) in ("0003", head), cycle
        with ModelRegistry(home=home, actor="faults") as registry:
            registry.register_model("fraud", None)
        assert _revision(path) == head
        assert_invariants(f"sqlite:///{path}", home=home)
