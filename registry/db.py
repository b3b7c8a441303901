"""Engines, SQLite durability settings and migrations applied on open.

SQLite: WAL, ``synchronous=FULL``, a busy timeout, foreign keys, and every write
transaction begun with ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock
upgrade (SQLAlchemy's documented event recipe). Read-only connections begin
deferred so readers never queue behind the writer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from registry.errors import DatabaseUnavailable, InvalidInput, NoRegistry

BUSY_TIMEOUT_MS = 60_000
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_LOCK_KEY = 0x6D72_6567  # "mreg": PostgreSQL advisory lock id for migrations
READ_ONLY = "modelreg_read_only"


def default_home() -> Path:
    """``$MODELREG_HOME`` or ``./.modelreg``."""
    return Path(os.environ.get("MODELREG_HOME") or ".modelreg")


def default_url(home: Path) -> str:
    return f"sqlite:///{home / 'registry.db'}"


def safe_url(url: str | sa.URL) -> str:
    """``url`` for messages and logs: its password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return without_password(str(url))


def without_password(text: str) -> str:
    """Any ``user:password@`` in ``text`` as ``user:***@``, parsable as a URL or not."""
    return re.sub(r"(^|[/@])([^:/@\s]*):[^@/\s]*@", r"\1\2:***@", text)


def make_engine(url: str, *, create: bool = True) -> sa.Engine:
    """An engine for ``url`` with the project's connection settings.

    ``create=False`` (a read): a SQLite file that does not exist is ``NoRegistry``,
    and neither it nor its directory is made. An unknown dialect or a driver that
    is not installed is ``InvalidInput`` naming the URL and what to install."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"invalid database URL {without_password(url)!r}: {exc}") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, create=create)
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except sa.exc.NoSuchModuleError:
        raise InvalidInput(
            f"database URL {shown}: no such database kind {parsed.drivername!r}; use "
            "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None
    except ImportError as exc:
        raise InvalidInput(
            f"database URL {shown} needs the {parsed.drivername!r} driver, which is not "
            f"installed ({exc}); install it, or use postgresql+psycopg://"
        ) from None


def _sqlite_engine(url: sa.URL, *, create: bool) -> sa.Engine:
    if url.database and url.database != ":memory:":
        path = Path(url.database)
        if not create and not path.is_file():
            raise NoRegistry(
                f"no registry database at {path} (nothing was created; registering a "
                "model makes one, or point --home/--db at an existing registry)"
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
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


def unavailable(url: str | sa.URL, exc: sa.exc.DBAPIError) -> DatabaseUnavailable:
    """A driver's connection failure as one line: the URL and the server's reason."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return DatabaseUnavailable(f"cannot open database {safe_url(url)}: {reason}")


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
