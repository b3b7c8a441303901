"""The README's Python blocks run as written, section by section, each section in a
fresh directory (so the default home, ./.modelreg, starts empty) in a subprocess of
its own; output shown as comment lines right after a ``print(`` is checked.

Covered: every section whose Python blocks need nothing but this package. The
sections that need an MLflow server or an S3 bucket, and the sh blocks, are not run
here yet (issue #15, item 1); ``SECTIONS`` must match the README, so a new section
with Python in it fails here until it is listed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)

# Section heading -> run here (True) or not yet (the reason).
SECTIONS: dict[str, bool | str] = {
    "Guarding production": True,
    "Python API": True,
    "An A/B test after the fact": True,
    "Providers: MLflow": "needs an MLflow server at the address it names",
    "Governance": True,
    "Artifacts on object storage": "needs an S3 bucket at the address it names",
}


def python_sections() -> dict[str, list[str]]:
    """Heading -> its Python blocks, in README order."""
    text = README.read_text()
    marks = [(m.start(), m.group(2).strip()) for m in HEADING.finditer(text)]
    found: dict[str, list[str]] = {}
    for block in FENCE.finditer(text):
        if block.group(1) != "python":
            continue
        heading = next(title for start, title in reversed(marks) if start < block.start())
        found.setdefault(heading, []).append(block.group(2))
    return found


def test_every_section_with_python_is_listed() -> None:
    assert set(python_sections()) == set(SECTIONS)


def _expected_output(code: str) -> list[str]:
    """Comment lines right after a line that starts with ``print(``: its output."""
    lines = code.splitlines()
    expected: list[str] = []
    for i, line in enumerate(lines):
        if not line.startswith("print("):
            continue
        for follow in lines[i + 1 :]:
            if not follow.startswith("# "):
                break
            expected.append(follow[2:])
    return expected


@pytest.mark.parametrize("section", [s for s, run in SECTIONS.items() if run is True])
def test_the_section_runs_as_written(section: str, tmp_path: Path) -> None:
    blocks = python_sections()[section]
    code = "\n\n".join(blocks)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    env["MODELREG_ACTOR"] = "readme"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{section}:\n{result.stderr[-3000:]}"
    for line in _expected_output(code):
        assert line in result.stdout.splitlines(), (
            f"{section}: {line!r} not printed:\n" + (result.stdout[-2000:])
        )
