"""The README's first command, ``./dev demo``, as a user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[3]


def test_demo_promotes_rolls_back_and_guards(tmp_path: Path) -> None:
    """The live demo ends with v1.1.0 promoted, v1.2.0 rolled back by its canary
    (harm, before the trigger) and the forced hotfix v1.3.0 rolled back by the
    production guard."""
    run = subprocess.run(
        [str(ROOT / "dev"), "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "v1.1.0: promoted" in out
    assert "v1.2.0: rolled_back" in out
    assert "guard rolled production back to v1.1.0" in out
    assert "resolve: fraud -> v1.1.0" in out
