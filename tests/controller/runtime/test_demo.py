"""The README's first command, ``./dev demo``, as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[3]


def test_demo_promotes_rolls_back_and_guards(tmp_path: Path) -> None:
    """The live demo ends with v1.1.0 promoted, v1.2.0 rolled back by its canary
    (harm, before the trigger) and the forced hotfix v1.3.0 rolled back by the
    production guard. It names the dashboard at start, and with ``--linger`` the
    dashboard still serves the rollouts after the scenario."""
    lines: list[str] = []
    with subprocess.Popen(
        [str(ROOT / "dev"), "demo", "--dir", str(tmp_path / "demo"), "--linger", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each line as printed
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line)
                lingering = re.search(r"dashboard stays up at (\S+) for 30 s", line)
                if lingering:
                    page = httpx.get(lingering.group(1), timeout=10)
                    assert page.status_code == 200
                    assert 'data-model="fraud"' in page.text
                    rollouts = httpx.get(lingering.group(1) + "rollouts", timeout=10).text
                    assert rollouts.count("/ui/rollouts/") >= 2
                    proc.send_signal(signal.SIGINT)  # Ctrl-C, rather than wait out the linger
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "dashboard stays up" in out, out
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/ui/", out)
    assert "v1.1.0: promoted" in out
    assert "v1.2.0: rolled_back" in out
    assert "guard rolled production back to v1.1.0" in out
    assert "resolve: fraud -> v1.1.0" in out
