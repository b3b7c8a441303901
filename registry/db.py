"""Engines, SQLite durability settings and migrations applied on open.

SQLite: WAL, ``synchronous=FULL``, a busy timeout, foreign keys, and every write
transaction begun with ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock
upgrade (SQLAlchemy's documented event recipe). Read-only connections begin
deferred so readers never queue behind the writer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from registry.errors import InvalidInput

BUSY_TIMEOUT_MS = 60_000
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_LOCK_KEY = 0x6D72_6567  # "mreg": PostgreSQL advisory lock id for migrations
READ_ONLY = "modelreg_read_only"


def default_home() -> Path:
    """``$MODELREG_HOME`` or ``./.modelreg``."""
    return Path(os.environ.get("MODELREG_HOME") or ".modelreg")


def default_url(home: Path) -> str:
    return f"sqlite:///{home / 'registry.db'}"


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with the project's connection settings."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not pysqlite, decide how transactions start.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            return  # the group-commit writer already began it on the DBAPI connection
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic_config(script_location: Path = _MIGRATIONS) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


def head_revision(script_location: Path = _MIGRATIONS) -> str:
    head = ScriptDirectory.from_config(_alembic_config(script_location)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine, *, version_table: str = "alembic_version") -> str | None:
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        context = MigrationContext.configure(conn, opts={"version_table": version_table})
        return context.get_current_revision()


def migrate(
    engine: sa.Engine,
    revision: str = "head",
    *,
    script_location: Path = _MIGRATIONS,
    version_table: str = "alembic_version",
    lock_key: int = _MIGRATE_LOCK_KEY,
) -> None:
    """Upgrade one Alembic history to ``revision``; one cheap read when already there.

    Several histories can share a database (the controller's and the ingest store's
    keep their own version tables). Migrators are serialised by ``BEGIN IMMEDIATE``
    on SQLite and an advisory lock on PostgreSQL, so processes opening a fresh
    database at once apply each migration exactly once.
    """
    at_head = revision == "head" and current_revision(
        engine, version_table=version_table
    ) == head_revision(script_location)
    if at_head:
        return
    cfg = _alembic_config(script_location)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
