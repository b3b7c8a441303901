"""The README's Python blocks run as written, section by section, each section in a
fresh directory (so the default home, ./.modelreg, starts empty) in a subprocess of
its own; output shown as comment lines right after a ``print(`` is checked.

Sections that name a server get a real one: the MLflow section a real ``mlflow
server`` (its address, ``http://127.0.0.1:5000`` in the text, replaced by the test
server's), the object-storage section moto's S3 server with the bucket it names,
reached through the usual ``AWS_*`` variables; its ``modelreg`` commands run after its
Python. ``SECTIONS`` must match the README, so a new section with Python in it fails
here until it is listed. Not run here: the two set-up commands (CI runs them), the
command synopses with placeholders, ``pip install``, and ``policy simulate`` (a
minute; its own tests cover it).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)

# Section heading -> what it needs: nothing, "mlflow" or "s3".
SECTIONS: dict[str, str] = {
    "Guarding production": "",
    "Python API": "",
    "An A/B test after the fact": "",
    "Providers: MLflow": "mlflow",
    "Governance": "",
    "Artifacts on object storage": "s3",
}
README_MLFLOW = "http://127.0.0.1:5000"


def sections(language: str = "python") -> dict[str, list[str]]:
    """Heading -> its blocks in ``language``, in README order."""
    text = README.read_text()
    marks = [(m.start(), m.group(2).strip()) for m in HEADING.finditer(text)]
    found: dict[str, list[str]] = {}
    for block in FENCE.finditer(text):
        if block.group(1) != language:
            continue
        heading = next((title for start, title in reversed(marks) if start < block.start()),
                       "(before the first heading)")  # fmt: skip
        found.setdefault(heading, []).append(block.group(2))
    return found


def python_sections() -> dict[str, list[str]]:
    return sections("python")


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


def run_section(section: str, directory: Path, *, replace: dict[str, str] | None = None) -> None:
    """The section's Python blocks as one program, then its ``modelreg`` sh blocks."""
    code = "\n\n".join(python_sections()[section])
    for old, new in (replace or {}).items():
        code = code.replace(old, new)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    env["MODELREG_ACTOR"] = "readme"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=directory, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{section}:\n{result.stderr[-3000:]}"
    for line in _expected_output(code):
        assert line in result.stdout.splitlines(), (
            f"{section}: {line!r} not printed:\n" + (result.stdout[-2000:])
        )
    for block in sections("sh").get(section, []):
        commands = [c for c in block.splitlines() if c.strip() and not c.startswith("#")]
        if not all(re.match(r"^([A-Z_]+=\S+ )*modelreg ", c) for c in commands):
            continue  # installs and set-up commands: not the section's own to run
        for command in commands:
            done = subprocess.run(
                ["bash", "-c", command], cwd=directory, env=env, capture_output=True,
                text=True, timeout=300, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{section}: {command}\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("section", [s for s, need in SECTIONS.items() if not need])
def test_the_section_runs_as_written(section: str, tmp_path: Path) -> None:
    run_section(section, tmp_path)


@pytest.mark.mlflow
@pytest.mark.integration
def test_the_mlflow_section_runs_against_a_real_server(mlflow_uri: str, tmp_path: Path) -> None:
    section = next(s for s, need in SECTIONS.items() if need == "mlflow")
    assert README_MLFLOW in "".join(python_sections()[section])
    run_section(section, tmp_path, replace={README_MLFLOW: mlflow_uri})


@pytest.mark.s3
def test_the_object_storage_section_runs_against_an_s3_server(s3_env: Any, tmp_path: Path) -> None:
    """The bucket the README names, on moto's server; s3fs reaches it through the
    ``AWS_*`` variables, as it reaches any S3-compatible endpoint."""
    with contextlib.suppress(Exception):  # made by an earlier test of this session
        s3_env.client().create_bucket(Bucket="ml-models")
    section = next(s for s, need in SECTIONS.items() if need == "s3")
    run_section(section, tmp_path)
