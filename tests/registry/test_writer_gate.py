"""registry.db's writer gate: writers of one SQLite file in one process queue on a lock
of the process's own, held exactly while SQLite's write lock is, rather than on SQLite's
busy handler, which sleeps between tries. Real SQLite files, real threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from registry import ModelRegistry
from registry.db import GatedConnection, _gate_of, make_engine, reader

THREADS = 8
WRITES = 40


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "gate.db"


@pytest.fixture
def engines(path: Path) -> Iterator[list[sa.Engine]]:
    """Two engines (two pools) on one file, as the controller's stores and the registry
    are; the table made."""
    made = [make_engine(f"sqlite:///{path}"), make_engine(f"sqlite:///{path}")]
    with made[0].begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    yield made
    for engine in made:
        engine.dispose()


def _no_busy_wait(engine: sa.Engine) -> None:
    """SQLite's busy handler off: a writer that meets SQLite's lock fails at once."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    engine.dispose()  # connections made from here on


def test_one_file_one_gate_whatever_the_spelling(path: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert _gate_of(str(path)) is _gate_of(str(tmp_path / "sub" / ".." / "gate.db"))
    assert _gate_of(str(path)) is not _gate_of(str(tmp_path / "other.db"))


def test_held_for_a_write_transaction_only(engines: list[sa.Engine], path: Path) -> None:
    gate = _gate_of(str(path))
    with engines[0].begin() as conn:
        assert isinstance(conn.connection.driver_connection, GatedConnection)
        conn.exec_driver_sql("INSERT INTO t (who) VALUES ('a')")
        assert gate.locked()
    assert not gate.locked()  # committed
    held: list[bool] = []

    def insert_then_fail() -> None:
        with engines[1].begin() as conn:
            conn.exec_driver_sql("INSERT INTO t (who) VALUES ('b')")
            held.append(gate.locked())
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    assert held == [True]
    assert not gate.locked()
    with reader(engines[1]).connect() as conn:  # a read never takes it
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
        assert not gate.locked()
    with engines[0].connect() as conn:  # a connection closed mid-transaction frees it
        conn.exec_driver_sql("INSERT INTO t (who) VALUES ('c')")
        assert gate.locked()
        conn.invalidate()
    assert not gate.locked()


def test_a_failed_begin_opens_the_gate(engines: list[sa.Engine], path: Path) -> None:
    """Another process holds SQLite's lock and this one gives up: the gate is free
    again, and the next writer goes in once that process is done."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    _no_busy_wait(engines[0])
    with pytest.raises(sa.exc.OperationalError, match="locked"), engines[0].begin():
        pass
    assert not _gate_of(str(path)).locked()
    other.execute("ROLLBACK")
    other.close()
    with engines[0].begin() as conn:
        conn.exec_driver_sql("INSERT INTO t (who) VALUES ('a')")


def test_threads_of_one_process_never_meet_sqlites_lock(engines: list[sa.Engine]) -> None:
    """With SQLite's busy handler off, any writer that found SQLite's lock taken would
    fail at once; through the gate, every one of many concurrent writers goes in."""
    for engine in engines:
        _no_busy_wait(engine)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def write(k: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(WRITES):
                with engines[k % 2].begin() as conn:
                    conn.exec_driver_sql(f"INSERT INTO t (who) VALUES ('{k}-{i}')")
                with reader(engines[k % 2]).connect() as conn:
                    conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    with reader(engines[0]).connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == THREADS * WRITES


def test_the_registrys_group_commit_passes_the_gate(tmp_path: Path) -> None:
    """The registry's writer begins its transactions on the DBAPI connection: it too
    passes the gate, so the controller's stores on the same file queue with it."""
    home = tmp_path / "home"
    with ModelRegistry(home=home, actor="t") as reg:
        gate = _gate_of(str(home / "registry.db"))
        seen: list[tuple[bool, bool]] = []  # (this connection holds the gate, it is shut)
        real = GatedConnection.commit

        def commit(self: GatedConnection) -> None:
            seen.append((self._holding, gate.locked()))
            real(self)

        GatedConnection.commit = commit  # type: ignore[method-assign]
        try:
            reg.register_model("m", None, requirements="")
        finally:
            GatedConnection.commit = real  # type: ignore[method-assign]
        assert any(holding for holding, _ in seen)  # the registration's commit
        assert all(shut for holding, shut in seen if holding)
        assert not gate.locked()
