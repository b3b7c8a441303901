"""kill -9 of ``modelreg register`` at seeded instants, the artifact write included.

A 48 MiB artifact takes a while to hash and store, so a kill after a random delay
lands in every part of a registration: parsing, hashing, writing the blob, the
database transaction, after it. Each time, what is left must be a registry that
opens, with every version whole (its artifact there and matching its digest), the
audit chain intact, and nothing half-registered; garbage collection then removes what
the dead processes stored but never committed, and a last registration works.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from registry import ModelRegistry
from tests.invariants import assert_invariants

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CYCLES = 12


def _register(home: Path, artifact: Path, faults: str = "") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    if faults:
        env["MODELREG_TEST_FAULTS"] = faults
    return subprocess.Popen(
        [sys.executable, "-m", "registry", "--home", str(home), "register", "fraud",
         str(artifact), "--metadata", '{"owner": "faults"}'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


@pytest.mark.timeout(600)
def test_registrations_killed_anywhere_leave_a_whole_registry(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")))
    home = tmp_path / "home"
    # The kills land from start-up to past a registration's end; on a slow machine the
    # interpreter's start alone may take most of a fixed window, so it is added.
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "registry", "--help"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    start_up = time.monotonic() - began
    completed = killed = 0
    for cycle in range(CYCLES):
        artifact = tmp_path / f"model-{cycle}.bin"
        artifact.write_bytes(os.urandom(1 << 20) * 48)  # distinct per cycle, 48 MiB
        process = _register(home, artifact)
        time.sleep(rng.uniform(0.05, 1.2 + start_up))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        else:
            completed += process.returncode == 0
        process.wait(timeout=30)
        artifact.unlink()
    assert killed >= 3, (killed, completed)  # the kills did land mid-registration
    url = f"sqlite:///{home / 'registry.db'}"
    # On a slow machine every process may die before its registry is created (it is
    # built aside and linked whole): then there is none, and opening the URL would
    # make SQLite create an empty file the checks rightly refuse.
    if (home / "registry.db").exists():
        assert_invariants(url, home=home)
    with ModelRegistry(home=home, actor="faults") as registry:
        versions = registry.list_versions("fraud") if registry.list_models() else []
        referenced = {v.artifact_digest for v in versions}
        report = registry.collect_garbage(older_than=timedelta(0))
        left = set(registry.artifacts.digests())
        assert left == referenced, (left - referenced, report)
        last = tmp_path / "last.bin"
        last.write_bytes(b"after the crashes")
        registry.register_model("fraud", str(last))
    assert_invariants(url, home=home)


@pytest.mark.parametrize("point", ["blob_write", "blob_stored", "commit"])
def test_a_registration_killed_at_each_write_point_leaves_a_whole_registry(
    tmp_path: Path, point: str
) -> None:
    """Killed by failpoint at an exact instant of the write path: before the blob's
    bytes, with the blob durable and no version, and just before the commit. The
    version is never half there; a stored blob nobody references is what gc removes."""
    home = tmp_path / "home"
    first = tmp_path / "first.bin"
    first.write_bytes(b"v1 weights")
    assert _register(home, first).wait(timeout=60) == 0
    artifact = tmp_path / "second.bin"
    artifact.write_bytes(b"v2 weights, killed while registered")
    process = _register(home, artifact, faults=f"{point}=kill:1")
    assert process.wait(timeout=60) == -signal.SIGKILL
    url = f"sqlite:///{home / 'registry.db'}"
    assert_invariants(url, home=home)
    with ModelRegistry(home=home, actor="faults") as registry:
        assert [str(v.version) for v in registry.list_versions("fraud")] == ["v1.0.0"]
        referenced = {v.artifact_digest for v in registry.list_versions("fraud")}
        stored = set(registry.artifacts.digests())
        assert len(stored - referenced) == (0 if point == "blob_write" else 1)
        registry.collect_garbage(older_than=timedelta(0))
        assert set(registry.artifacts.digests()) == referenced
    assert _register(home, artifact).wait(timeout=60) == 0  # the same bytes, registered now
    assert_invariants(url, home=home)
