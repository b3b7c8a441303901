"""A full disk under the registry (a real 4 MiB tmpfs): refused in one line, nothing
half-written, and whole again once there is room.

An artifact that does not fit fails with ``StorageError`` naming the store; a disk
so full that the database cannot write fails in one line that does not call a full
disk a damaged registry. After room is made, the next registration works and every
invariant holds (SQLite integrity, artifacts, the audit chain). Mounting needs root:
it is skipped elsewhere, and required under CI (which runs as root).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.modelreg_cli import modelreg, one_error
from tests.invariants import assert_invariants
from tests.needs import unavailable

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_refuses_cleanly_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "home"
    small = tmp_path / "small.bin"
    small.write_bytes(b"small weights")
    assert modelreg(home, "register", "fraud", str(small)).returncode == 0
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 << 20))
    line = one_error(modelreg(home, "register", "fraud", str(big)))
    assert "cannot store the artifact in" in line
    assert "No space left on device" in line
    assert not list((home / "artifacts" / "tmp").iterdir())  # the partial write is gone
    filler = small_disk / "filler"
    with filler.open("wb") as file:  # the rest of the disk
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError:
            pass
    full = one_error(modelreg(home, "register", "fraud", "--metadata", '{"a": 1}'))
    assert "damaged" not in full, full  # a full disk is not a broken registry
    filler.unlink()
    assert modelreg(home, "register", "fraud", "--metadata", '{"a": 2}').returncode == 0
    listed = modelreg(home, "list", "fraud", "--json")
    assert listed.returncode == 0
    assert_invariants(f"sqlite:///{home / 'registry.db'}", home=home)
