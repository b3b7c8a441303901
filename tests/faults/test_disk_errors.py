"""I/O errors (EIO) and a full database disk under the registry's writes, by failpoint.

No real device can be made to fail here (no device-mapper in the sandbox), so the
errors are injected at the one place each write goes through (``registry.faults``):
the artifact store's blob write, and the database commit, where the injected error is
raised as SQLite raises a disk error. ``test_disk_full`` has the real full disk.

- ``modelreg register`` fails in one line naming the store or the database and the
  reason, registers nothing and leaves nothing half-written; the next one works.
- The daemon mid-canary, its database's commits failing while a flag file exists (the
  registry's and the daemon's own: one file, one disk, one group commit): its looks
  fail and nothing moves (never promoted in the rollout store nor in the registry),
  ``/healthz`` answers throughout; once the disk is back the promotion lands once and
  every invariant holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from monitors.testing import wait_until
from registry import ModelRegistry
from tests.controller.stack import TERMINAL, Stack, build_stack
from tests.faults.modelreg_cli import modelreg, one_error
from tests.invariants import assert_invariants

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize(
    ("faults", "says"),
    [("blob_write=error:EIO", "cannot store the artifact in"),
     ("commit=error:EIO", "failed: disk I/O error"),
     ("commit=error:ENOSPC", "failed: database or disk is full")],
)  # fmt: skip
def test_a_disk_error_in_a_registration_is_one_line_and_loses_nothing(
    tmp_path: Path, faults: str, says: str
) -> None:
    home = tmp_path / "home"
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"v1 weights")
    assert modelreg(home, "register", "fraud", str(weights)).returncode == 0
    weights.write_bytes(b"v2 weights")
    line = one_error(modelreg(home, "register", "fraud", str(weights), faults=faults))
    assert says in line, line
    assert str(home) in line, line  # names the store or the database
    assert not list((home / "artifacts" / "tmp").iterdir())  # no partial blob
    with ModelRegistry(home=home, actor="faults") as registry:
        assert [str(v.version) for v in registry.list_versions("fraud")] == ["v1.0.0"]
    assert modelreg(home, "register", "fraud", str(weights)).returncode == 0
    assert_invariants(f"sqlite:///{home / 'registry.db'}", home=home)


@pytest.mark.timeout(300)
def test_the_daemon_waits_out_a_failing_registry_disk_and_promotes_once(tmp_path: Path) -> None:
    flag = tmp_path / "disk-failing"
    stack = build_stack(tmp_path, strategy={"kind": "canary", "steps": [50, 100],
                                            "step_duration": 1},
                        settle=0, min_samples=50)  # fmt: skip
    stack.register("1.0.0", "production")
    stack.start_daemon({"MODELREG_TEST_FAULTS": f"commit=error_while:{flag}"})
    stack.start_workload()
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: stack.rollout("v1.1.0") is not None, timeout=30)
        flag.touch()  # from now on every commit of the daemon's database fails with EIO
        assert wait_until(lambda: _failed_looks(stack) >= 3, timeout=120), stack.log_tail()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # waits: nothing promoted anywhere
            started = time.monotonic()
            assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - started < 1.0
            rollout = stack.rollout("v1.1.0")
            assert rollout is not None
            assert rollout["phase"] not in TERMINAL, rollout
            assert _production(tmp_path) == "v1.0.0"
            time.sleep(0.3)
        assert "disk I/O error" in stack.log_tail()
        flag.unlink()
        assert wait_until(lambda: (stack.rollout("v1.1.0") or {}).get("phase") in TERMINAL,
                          timeout=60), stack.log_tail()  # fmt: skip
        rollout = stack.rollout("v1.1.0")
        assert rollout is not None
        assert rollout["phase"] == "promoted", rollout
        assert _production(tmp_path) == "v1.1.0"
        explained = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=1000)
        promotions = [d for d in explained["decisions"] if d["action"] == "promote"]
        assert [d["applied"] for d in promotions] == [True], promotions
    finally:
        stack.stop()
    stack.check_invariants()


def _failed_looks(stack: Stack) -> int:
    """Looks of the daemon that failed on the disk error (its tick's error lines)."""
    log = (stack.home / "daemon.log").read_text()
    return sum(1 for line in log.splitlines() if "disk I/O error" in line and "tick" in line)


def _production(home: Path) -> str | None:
    with ModelRegistry(home=home, actor="faults") as registry:
        found = registry.list_models()
        return str(found[0].production) if found and found[0].production else None
