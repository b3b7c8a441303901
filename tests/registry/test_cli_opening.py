"""How the modelreg command opens a registry, as a user meets it: reads create nothing
and say where they looked; a database that cannot be opened is one line naming the
URL (never its password) and the reason; a registry other than the default is named.
Real subprocesses, a real PostgreSQL port that refuses connections."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitors.testing import free_port

READS = [
    ("list",),
    ("list", "fraud"),
    ("info", "fraud"),
    ("history", "fraud"),
    ("compare", "fraud", "v1.0.0", "v1.0.1"),
    ("approvals", "fraud", "v1.0.0"),
    ("audit", "verify"),
    ("audit", "log"),
    ("lineage", "fraud", "v1.0.0"),
    ("impact", "--feature", "amount"),
    ("experiments",),
]


def modelreg(cwd: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELREG_HOME"}
    if home is not None:
        env["MODELREG_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_read_in_an_empty_directory_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    line = one_line(modelreg(tmp_path, *args))
    assert line.startswith("error: no registry database at .modelreg/registry.db"), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [("list",), ("audit", "verify"), ("history", "fraud")], ids=" ".join
)
def test_a_read_of_a_missing_database_makes_no_directory(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = tmp_path / "no" / "such" / "dir" / "x.db"
    line = one_line(modelreg(tmp_path, "--db", f"sqlite:///{db}", *args))
    assert f"no registry database at {db}" in line
    assert not (tmp_path / "no").exists()
    home = tmp_path / "elsewhere"
    line = one_line(modelreg(tmp_path, "--home", str(home), *args))
    assert f"no registry database at {home / 'registry.db'}" in line
    assert not home.exists()


def test_an_empty_postgresql_database_is_no_registry_and_stays_empty(
    pg_url: str, tmp_path: Path
) -> None:
    line = one_line(modelreg(tmp_path, "--db", pg_url, "list"))
    assert line.startswith("error: no registry in database postgresql"), line
    listed = modelreg(tmp_path, "--db", pg_url, "list", "--json")
    assert listed.returncode == 1
    engine = sa.create_engine(pg_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://ops:s3cret@127.0.0.1:{port}/registry",
         "error: cannot open database postgresql+psycopg://ops:***@127.0.0.1:{port}/registry: "
         "connection failed"),
        ("mysql://ops@127.0.0.1/registry",
         "error: database URL mysql://ops@127.0.0.1/registry needs the 'mysql' driver, which is "
         "not installed"),
        ("oracle9://x/y", "error: database URL oracle9://x/y: no such database kind 'oracle9'"),
        ("not a url", "error: invalid database URL 'not a url'"),
        ("postgresql//ops:s3cret@127.0.0.1/registry",
         "error: invalid database URL 'postgresql//ops:***@127.0.0.1/registry'"),
    ],
    ids=["unreachable", "missing-driver", "unknown-kind", "unparsable", "unparsable-password"],
)  # fmt: skip
@pytest.mark.parametrize(
    "args", [("list",), ("register", "fraud", "--metadata", "{}")], ids=" ".join
)
def test_a_database_that_cannot_be_opened_is_one_line(
    tmp_path: Path, url: str, expected: str, args: tuple[str, ...]
) -> None:
    port = free_port()  # nothing listens there
    line = one_line(modelreg(tmp_path, "--db", url.format(port=port), *args))
    assert line.startswith(expected.format(port=port)), line
    assert "s3cret" not in line
    assert list(tmp_path.iterdir()) == []


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")


def _damaged(path: Path) -> None:
    """A real registry with its first table pages overwritten: the header is intact."""
    modelreg(path.parent, "--db", f"sqlite:///{path}", "register", "fraud", "--metadata", "{}")
    data = bytearray(path.read_bytes())
    data[4096:12288] = b"\xa5" * 8192
    path.write_bytes(bytes(data))


BROKEN = {
    "not a database": (lambda p: p.write_bytes(b"not a database, just bytes " * 100),
                       "is not a SQLite database"),
    "empty": (lambda p: p.write_bytes(b""), "is an empty file, not a modelreg registry"),
    "foreign": (_foreign, "is another program's database (tables orders)"),
    "damaged": (_damaged, "is damaged or not a database"),
}  # fmt: skip


OPENINGS = [("list",), ("audit", "verify"), ("register", "fraud", "--metadata", "{}")]


@pytest.mark.parametrize("args", OPENINGS, ids=" ".join)
@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_registry_file_is_one_line_and_left_alone(
    tmp_path: Path, kind: str, args: tuple[str, ...]
) -> None:
    """Named (which file, what is wrong, what to do), exit 1, never adopted or written."""
    made, expected = BROKEN[kind]
    path = tmp_path / "registry.db"
    made(path)  # type: ignore[no-untyped-call]
    before = path.read_bytes()
    result = modelreg(tmp_path, "--db", f"sqlite:///{path}", *args)
    assert result.returncode == 1
    line = one_line(result)
    assert expected in line, line
    assert str(path) in line
    if kind != "damaged":
        assert "modelreg restore" in line or "point --home or --db" in line
    assert path.read_bytes() == before  # untouched


def test_a_registry_from_a_newer_modelreg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    assert modelreg(tmp_path, "--db", f"sqlite:///{path}", "register", "fraud",
                    "--metadata", "{}").returncode == 0  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    for args in (("list",), ("register", "fraud", "--metadata", "{}")):
        line = one_line(modelreg(tmp_path, "--db", f"sqlite:///{path}", *args))
        assert "was written by a newer modelreg" in line, line
        assert "f00dfeedbeef" in line


def test_a_database_in_a_missing_directory_is_not_made(tmp_path: Path) -> None:
    """Only the registry's own home is created; a --db elsewhere names an existing one."""
    url = f"sqlite:///{tmp_path}/missing/dir/registry.db"
    line = one_line(modelreg(tmp_path, "--db", url, "register", "fraud", "--metadata", "{}"))
    assert "its directory" in line
    assert "does not exist" in line
    assert not (tmp_path / "missing").exists()
    assert modelreg(tmp_path, "--home", str(tmp_path / "home" / "deep"), "register", "fraud",
                    "--metadata", "{}").returncode == 0  # fmt: skip
    assert (tmp_path / "home" / "deep" / "registry.db").is_file()


def test_registries_created_at_once_are_one_registry(tmp_path: Path) -> None:
    """A new registry file appears whole (built beside it, linked into place): processes
    creating it at once all succeed, on one registry, and leave no temporary file."""
    url = f"sqlite:///{tmp_path}/registry.db"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registry",
                "--db",
                url,
                "register",
                f"m{i}",
                "--metadata",
                "{}",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    listed = modelreg(tmp_path, "--db", url, "list", "--json")
    assert sorted(m["name"] for m in json.loads(listed.stdout)) == ["m0", "m1", "m2", "m3"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".registry.db")) == []


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = modelreg(tmp_path, "--debug", "--db", "mysql://x@127.0.0.1/y", "list")
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_another_registry_is_named_first_the_default_is_not(tmp_path: Path) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"weights")
    db = tmp_path / "team.db"
    made = modelreg(tmp_path, "--db", f"sqlite:///{db}", "register", "fraud", str(artifact))
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines()[0] == f"registry: sqlite:///{db}"
    listed = modelreg(tmp_path, "--db", f"sqlite:///{db}", "list", "--json")
    assert listed.stderr.splitlines() == [f"registry: sqlite:///{db}"]
    assert '"fraud"' in listed.stdout  # stdout stays pure JSON
    home = tmp_path / "home"
    assert modelreg(tmp_path, "register", "fraud", str(artifact), home=home).returncode == 0
    assert modelreg(tmp_path, "list", home=home).stderr == ""  # $MODELREG_HOME: the default


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("list", "--bogus"), "error: No such option: --bogus (see 'modelreg list --help')"),
        (("info",), "error: Missing argument 'name'. (see 'modelreg info --help')"),
        (("rollout", "list", "--bogus"),
         "error: No such option: --bogus (see 'modelreg rollout list --help')"),
        (("rollout", "status", "abc"), "error: Invalid value for 'rollout_id'"),
        (("audit", "log", "--limit", "x"), "error: Invalid value for '--limit'"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_line_exit_2(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert one_line(result, code=2).startswith(expected)
    assert list(tmp_path.iterdir()) == []


def test_a_group_without_a_command_prints_its_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller", "rollout"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Usage: modelreg rollout" in result.stderr + result.stdout


EVERY_COMMAND = [
    ("register", "fraud"),
    ("list",),
    ("info", "fraud"),
    ("promote", "fraud", "v1", "--to", "staging"),
    ("rollback", "fraud"),
    ("compare", "fraud", "v1", "v2"),
    ("deprecate", "fraud", "v1", "--reason", "old"),
    ("history", "fraud"),
    ("approve", "fraud", "v1"),
    ("reject", "fraud", "v1"),
    ("approvals", "fraud", "v1"),
    ("approval-policy", "show"),
    ("approval-policy", "set", "--approvers", "a"),
    ("approval-policy", "clear"),
    ("auto-rollback",),
    ("audit", "verify"),
    ("audit", "log"),
    ("audit", "report", "fraud", "--from", "2024-01-01", "--to", "2024-02-01"),
    ("lineage", "fraud", "v1"),
    ("impact", "--data", "v2024-01"),
    ("gc",),
    ("docs", "sync"),
    ("experiments",),
]


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=" ".join)
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://ops:s3cret@127.0.0.1:{port}/registry",
         "error: cannot open database postgresql+psycopg://ops:***@127.0.0.1:{port}/registry"),
        ("mysql://ops@127.0.0.1/registry", "error: database URL mysql://ops@127.0.0.1/registry "
         "needs the 'mysql' driver"),
        ("::nonsense::", "error: invalid database URL '::nonsense::'"),
    ],
    ids=["unreachable", "missing-driver", "bad-url"],
)  # fmt: skip
def test_every_command_says_one_line_when_the_database_cannot_be_opened(
    tmp_path: Path, args: tuple[str, ...], url: str, expected: str
) -> None:
    """In process (typer's runner) for speed; the subprocess tests above cover the
    entry point itself."""
    from typer.testing import CliRunner

    from controller.cli import app

    port = free_port()
    result = CliRunner().invoke(app, ["--db", url.format(port=port), *args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]], result.stderr
    assert lines[0].startswith(expected.format(port=port)), lines
    assert "s3cret" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
