"""controller.core stays pure: importing it loads no database, HTTP, data-frame, web,
scheduling, logging or metrics library, nor scipy (the statistics load it on the first
analysis: ``abtest._lazy``) (the import-linter contract checks the code,
this checks what actually gets imported, lazy package fronts included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("scipy", "sqlalchemy", "sqlmodel", "alembic", "httpx", "pandas", "fastapi", "starlette",
         "uvicorn", "apscheduler", "structlog", "prometheus_client")  # fmt: skip
CORE_DIR = Path(__file__).resolve().parents[3] / "controller" / "core"
# Every module of the core, found on disk: a new one is checked without editing this list.
CORE = sorted(p.stem for p in CORE_DIR.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", CORE)
def test_importing_the_core_loads_no_io_library(module: str) -> None:
    """A fresh interpreter importing one core module has none of HEAVY in sys.modules."""
    code = (
        f"import sys, controller.core.{module}; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "", f"controller.core.{module} loads {out.stdout.strip()}"


def test_the_check_can_fail() -> None:
    """The same probe sees the shell's libraries (so an empty answer above means something)."""
    code = (
        "import sys, controller.shell.controller; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert "sqlalchemy" in out.stdout
