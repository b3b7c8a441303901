"""``modelreg --help`` and ``modelreg list`` start quickly because they import only what
they use: the checks name the libraries each must not load, which a wall clock could
not say reliably on a shared machine (``bench/cli_bench.py`` times them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["modelreg", *json.loads(sys.argv[1])]
from controller.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nLOADED " + json.dumps(sorted(m for m in watched if m in sys.modules)))
"""
NEVER = ["scipy", "pandas", "httpx", "fastapi", "uvicorn", "apscheduler", "alembic",
         "sqlmodel", "prometheus_client", "numpy"]  # fmt: skip


def loaded(args: list[str], watched: list[str], home: Path) -> list[str]:
    env = {**os.environ, "MODELREG_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(watched)],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("LOADED "))
    found: list[str] = json.loads(line.removeprefix("LOADED "))
    return found


@pytest.mark.parametrize(
    "args", [["--help"], ["rollout", "--help"], ["policy", "--help"], ["config", "--help"]]
)
def test_help_loads_no_database_nor_statistics(args: list[str], tmp_path: Path) -> None:
    assert loaded(args, [*NEVER, "sqlalchemy"], tmp_path) == []


def test_list_loads_the_database_only(tmp_path: Path) -> None:
    from registry import ModelRegistry

    with ModelRegistry(home=tmp_path) as reg:
        reg.register_model("fraud", None, requirements="")
    assert loaded(["list"], [*NEVER, "sqlalchemy"], tmp_path) == ["sqlalchemy"]


def test_the_probe_sees_what_a_command_loads(tmp_path: Path) -> None:
    """``policy simulate`` needs the statistics: the probe must report them."""
    policy = Path(__file__).parents[1] / "config" / "daemon.yaml"
    args = [
        "policy",
        "simulate",
        str(policy),
        "--runs",
        "1",
        "--scenario",
        "identical",
        "--workers",
        "1",
    ]
    assert "scipy" in loaded(args, NEVER, tmp_path)
