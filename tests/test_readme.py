"""The README's code runs as written, section by section, each section in a fresh
directory (so the default home, ./.modelreg, starts empty) in subprocesses of its own.

A section's Python blocks run as one program, then each of its ``sh`` blocks as one
bash script (``set -euo pipefail``; background jobs killed at the end); output shown
as comment lines right after a ``print(`` is checked, and so is an unlabelled output
block right after a command. Sections that name a server get a real one: the MLflow
section a real ``mlflow server`` (``http://127.0.0.1:5000`` in the text replaced by
the test server's address), the object-storage section moto's S3 server with the
bucket it names (reached through the usual ``AWS_*`` variables), the controller
daemon section the daemon itself, on ``config/daemon.yaml`` with a free port.

``SECTIONS`` and ``RUN_ELSEWHERE`` must cover the README, so a new section with code
in it fails here until it is listed. The blocks that are not programs are checked for
truth: every ``yaml`` block is a valid piece of the daemon's config, every command
and option the CLI synopsis names exists (and every command is in it), and every
directory the layout names is there.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from controller.cli import app
from controller.config import parse_config
from controller.errors import ConfigError
from monitors.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)

# Section heading -> what it needs: nothing, "mlflow", "s3" or "daemon".
SECTIONS: dict[str, str] = {
    "The controller daemon": "daemon",
    "Guarding production": "",
    "Python API": "",
    "An A/B test after the fact": "",
    "Providers: MLflow": "mlflow",
    "Governance": "",
    "Artifacts on object storage": "s3",
}
# Section heading -> where its code is run instead.
RUN_ELSEWHERE: dict[str, str] = {
    "(before the first heading)": "./dev test is CI; ./dev demo: controller/runtime/test_demo.py",
    "How a candidate is judged": "test_policy_simulate_prints_what_the_readme_shows, below (slow)",
    "The dashboard": "controller/http/test_ui_standalone.py (modelreg ui as a subprocess)",
}
README_MLFLOW = "http://127.0.0.1:5000"
README_LISTEN = "127.0.0.1:8470"
# Lines a section's sh blocks run elsewhere: installing into the test's own virtualenv
# would change what every other test runs on (test_every_extra_the_readme_installs_exists).
NOT_HERE = re.compile(r"^pip install ")


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


def test_every_section_with_code_is_listed() -> None:
    assert set(python_sections()) <= set(SECTIONS)
    assert set(python_sections()) | set(sections("sh")) == set(SECTIONS) | set(RUN_ELSEWHERE)


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


def _replaced(code: str, replace: dict[str, str] | None) -> str:
    for old, new in (replace or {}).items():
        code = code.replace(old, new)
    return code


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    env["MODELREG_ACTOR"] = "readme"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_section(section: str, directory: Path, *, replace: dict[str, str] | None = None) -> None:
    """The section's Python blocks as one program, then each sh block as a script."""
    env = _env()
    if section in python_sections():
        code = _replaced("\n\n".join(python_sections()[section]), replace)
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=directory, env=env, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{section}:\n{result.stderr[-3000:]}"
        for line in _expected_output(code):
            assert line in result.stdout.splitlines(), (
                f"{section}: {line!r} not printed:\n" + (result.stdout[-2000:])
            )
    for block in sections("sh").get(section, []):
        lines = [line for line in block.splitlines() if not NOT_HERE.match(line)]
        if not any(line.strip() and not line.startswith("#") for line in lines):
            continue
        script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
        script += _replaced("\n".join(lines), replace)
        done = subprocess.run(
            ["bash", "-c", script], cwd=directory, env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"{section}:\n{block}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )


@pytest.mark.integration
def test_the_daemon_section_runs_against_the_daemon(tmp_path: Path) -> None:
    """The default config, on a free port: start, register, a rollout steered through
    every command, then SIGTERM and exit 0."""
    listen = f"127.0.0.1:{free_port()}"
    source = (ROOT / "config" / "daemon.yaml").read_text()
    assert README_LISTEN in source
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "daemon.yaml").write_text(source.replace(README_LISTEN, listen))
    section = next(s for s, need in SECTIONS.items() if need == "daemon")
    run_section(section, tmp_path, replace={README_LISTEN: listen})


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


def _output_after(command: str) -> list[str]:
    """The unlabelled block right after the sh block holding ``command``: its output."""
    text = README.read_text()
    at = text.index(command)
    start = text.index("```\n", text.index("\n```", at) + 4) + 4
    return [
        line.rstrip() for line in text[start : text.index("```", start)].strip("\n").splitlines()
    ]


@pytest.mark.slow
def test_policy_simulate_prints_what_the_readme_shows() -> None:
    """Seeded, so the figures are the same on every machine: the README's table is
    this command's output, not a hand-edited copy."""
    command = "modelreg policy simulate config/daemon.yaml --runs 100"
    assert command in "".join(sections("sh")["How a candidate is judged"])
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=_env(), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    printed = [line.rstrip() for line in done.stdout.strip("\n").splitlines()]
    assert printed == _output_after(command)


def _synopsis() -> list[str]:
    """The CLI section's synopsis, one entry per command (continuations joined)."""
    block = next(b for b in sections("")["CLI"] if b.startswith("modelreg "))
    entries: list[str] = []
    for line in block.splitlines():
        if line.startswith("modelreg "):
            entries.append(line)
        elif line.strip():
            entries[-1] += " " + line.strip()
    return entries


def _named(entry: str, group: Any) -> list[Any]:
    """The commands an entry names: ``approve|reject``, ``rollout list | status ID``."""
    words = entry.split()[1:]
    found = [group.commands[name] for name in words[0].split("|")]
    if len(found) == 1 and hasattr(found[0], "commands"):
        sub = found[0]
        heads = [words[1]] + [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("|", "[|")]
        found = [
            sub.commands[name]
            for head in heads
            if not head.startswith("-")  # [--api URL | --direct]: options, not commands
            for name in head.split("|")
        ]
    return found


def test_the_cli_synopsis_names_real_commands_and_options() -> None:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    named: set[str] = set()
    for entry in _synopsis():
        try:
            commands = _named(entry, root)
        except KeyError as exc:
            pytest.fail(f"the synopsis names a command that does not exist: {exc} in {entry!r}")
        named.update(entry.split()[1].split("|"))
        offered = {opt for c in commands for p in c.params for opt in p.opts}
        for option in re.findall(r"--[a-z][a-z-]*", entry):
            assert option in offered, f"{option} is not an option of {entry!r}"
    assert set(root.commands) == named, "commands missing from the README's CLI synopsis"
    text = README.read_text()
    globals_line = text[text.index("Global options:") :].split(".")[0]
    for option in re.findall(r"--[a-z][a-z-]*", globals_line):
        assert option in {opt for p in root.params for opt in p.opts}, option


def test_every_directory_the_layout_names_exists() -> None:
    block = next(b for b in sections("")["Layout"])
    parents: dict[int, Path] = {}
    for line in block.splitlines():
        match = re.match(r"^( *)([a-z_]+)/ ", line + " ")
        if not match:
            continue
        depth = len(match.group(1))
        base = parents.get(depth - 2, ROOT) if depth else ROOT
        parents[depth] = base / match.group(2)
        assert parents[depth].is_dir(), f"the README's layout names {parents[depth]}"


def test_every_extra_the_readme_installs_exists() -> None:
    """``pip install`` lines are not run here (the test's virtualenv is shared): the
    extras they name are checked against pyproject.toml instead."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    shell = "".join(block for blocks in sections("sh").values() for block in blocks)
    named = re.findall(r"modelreg\[(\w+)\]", shell)
    assert named
    assert set(named) <= set(project["optional-dependencies"])


def _yaml_blocks() -> list[tuple[int, str]]:
    """Each ``yaml`` block (indented ones too, dedented) with its line number."""
    text = README.read_text()
    blocks = []
    for block in re.finditer(r"^( *)```yaml\n(.*?)^ *```$", text, re.MULTILINE | re.DOTALL):
        indent = len(block.group(1))
        body = "\n".join(line[indent:] for line in block.group(2).splitlines())
        blocks.append((text[: block.start()].count("\n") + 1, body))
    return blocks


@pytest.mark.parametrize(
    ("line", "block"), _yaml_blocks(), ids=[f"line {n}" for n, _ in _yaml_blocks()]
)
def test_every_yaml_block_is_a_valid_piece_of_config(line: int, block: str) -> None:
    """Config snippets are fragments of the daemon's config: each, put into
    config/daemon.yaml in place of the sections it names, passes the daemon's own
    validation (kinds, options, key names), with the policy's router and sources
    switched to what the snippet defines."""
    data = yaml.safe_load((ROOT / "config" / "daemon.yaml").read_text())
    fragment = yaml.safe_load(block)
    assert isinstance(fragment, dict), f"README line {line}: not a mapping"
    data.update(fragment)
    if "routers" in fragment:  # the example policy routes through a router the snippet names
        for policy in data["models"].values():
            policy["router"] = next(iter(fragment["routers"]))
    if "sources" in fragment:
        ingest = next((n for n, s in fragment["sources"].items() if s["kind"] == "ingest"), None)
        for policy in data["models"].values():
            for metric in policy["analysis"]["metrics"]:
                metric["source"] = ingest
    try:
        parse_config(data, where=f"README.md:{line}", base=ROOT / "config")
    except ConfigError as exc:
        pytest.fail(f"README line {line}: {exc}")
