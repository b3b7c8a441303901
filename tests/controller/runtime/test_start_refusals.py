"""The daemon refuses to start, in one line and before it is ready, when it cannot
serve: its port taken, its registry file empty, foreign or from a newer modelreg."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from tests.controller.daemon_proc import DaemonProcess, alert_stack

pytestmark = pytest.mark.integration


def _run(daemon: DaemonProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", "daemon", "--config", str(daemon.config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _registry_db(daemon: DaemonProcess) -> Path:
    home = Path(yaml.safe_load(daemon.config.read_text())["registry"]["home"])
    return home / "registry.db"


def test_a_taken_port_is_exit_2_before_anything_starts(tmp_path: Path) -> None:
    daemon = alert_stack(tmp_path)
    host, _, port = daemon.url.removeprefix("http://").rpartition(":")
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        done = _run(daemon)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on {host}:{port} (server.listen)" in done.stderr
    assert "daemon_ready" not in done.stderr
    assert "Traceback" not in done.stderr


def _newer(path: Path) -> None:
    """The registry as a newer modelreg would leave it: a schema revision unknown here
    (checkpointed, so the file's bytes are the whole database)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p.write_bytes(b""), "is an empty file, not a modelreg registry"),
        (lambda p: p.write_bytes(b"\x00garbage" * 512), "is not a SQLite database"),
        (_newer, "was written by a newer modelreg"),
    ],
    ids=["empty", "garbage", "newer"],
)  # fmt: skip
def test_an_unusable_registry_is_one_line_and_exit_1(
    tmp_path: Path, damage: object, expected: str
) -> None:
    daemon = alert_stack(tmp_path)
    path = _registry_db(daemon)
    damage(path)  # type: ignore[operator]
    before = path.read_bytes()
    done = _run(daemon)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert expected in errors[0]
    assert str(path) in errors[0] or "sqlite:///" in errors[0]
    assert "daemon_ready" not in done.stderr
    assert "Traceback" not in done.stderr
    assert path.read_bytes() == before
