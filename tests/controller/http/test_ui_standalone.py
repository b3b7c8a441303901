"""``modelreg ui``: the dashboard over a registry without a daemon, read-only, as a
real subprocess; the registry's database is left exactly as it was."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from monitors.testing import free_port, wait_until
from registry import ModelRegistry

pytestmark = pytest.mark.slow


def _tables(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()


def test_serves_the_registry_read_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ModelRegistry(home=home, actor="alice") as registry:
        registry.register_model(
            "fraud", {"w": 1}, stage="staging", metadata={"metrics": {"auc": 0.9}}
        )
        registry.promote_model("fraud", "v1.0.0", to_stage="production", reason="first")
    before = _tables(home / "registry.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "--home", str(home), "ui", "--listen",
         f"127.0.0.1:{port}", "--json"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    announced = json.loads(proc.stdout.readline())
    assert announced == {"dashboard": f"{url}/ui/", "registry": f"sqlite:///{home}/registry.db",
                         "read_only": True}  # fmt: skip

    def up() -> bool:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            return httpx.get(f"{url}/ui/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=60)
        page = httpx.get(f"{url}/ui/", timeout=5).text
        assert 'data-model="fraud"' in page
        assert "Read-only view" in page
        model = httpx.get(f"{url}/ui/models/fraud", timeout=5).text
        assert "auc 0.9" in model
        assert 'name="do"' not in model
        assert "The audit chain verifies" in httpx.get(f"{url}/ui/audit", timeout=5).text
        assert httpx.post(f"{url}/ui/rollouts/1/pause", timeout=5).status_code in (404, 405)
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 404  # no API here
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()
    assert _tables(home / "registry.db") == before  # nothing migrated, nothing written


def test_a_missing_registry_is_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "controller", "--home", str(tmp_path / "none"), "ui"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.startswith("error: no registry database at")
    assert not (tmp_path / "none").exists()
