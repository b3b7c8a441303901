"""``modelreg`` as a real process for the fault tests, and its one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def modelreg(home: Path, *args: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    """``modelreg --home HOME ARGS`` with no other MODELREG_ setting but ``faults``
    (``MODELREG_TEST_FAULTS``, see ``registry.faults``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    if faults:
        env["MODELREG_TEST_FAULTS"] = faults
    return subprocess.run([sys.executable, "-m", "registry", "--home", str(home), *args],
                          capture_output=True, text=True, env=env, timeout=120,
                          check=False)  # fmt: skip


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a command that failed with exit 1, no traceback."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]
