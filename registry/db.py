"""Engines, SQLite durability settings and migrations applied on open.

SQLite: WAL, ``synchronous=FULL``, a busy timeout, foreign keys, and every write
transaction begun with ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock
upgrade (SQLAlchemy's documented event recipe). Read-only connections (``reader``)
begin deferred so readers never queue behind the writer.

Writers of one SQLite file in one process queue on a lock of the process's own
(``GatedConnection``) before they ask SQLite for its write lock: SQLite's busy handler
sleeps 1, 2, 5, 10 ... 100 ms between tries, so ten threads contending for the lock
spent most of their time asleep while it was free (ten alerts in flight took 30x one
alert's time). The gate wakes the next writer the moment the last one commits; SQLite's
lock still serialises writers of other processes, and remains the only correctness
guarantee.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from registry.errors import DatabaseUnavailable, InvalidInput, NoRegistry, UnusableDatabase

BUSY_TIMEOUT_MS = 60_000
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_LOCK_KEY = 0x6D72_6567  # "mreg": PostgreSQL advisory lock id for migrations
READ_ONLY = "modelreg_read_only"


class GatedConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions pass this process's gate of its
    file first (see the module docstring). ``enter`` before ``BEGIN IMMEDIATE``; the
    gate opens again when the transaction ends, whichever way (commit, rollback,
    close), or at once if the ``BEGIN`` fails."""

    _gate: threading.Lock | None = None
    _holding = False

    def attach(self, path: str) -> None:
        """Share the gate of ``path`` with every other connection to that file."""
        self._gate = _gate_of(path)

    def enter(self) -> None:
        """Wait for the file's gate (up to the busy timeout; then SQLite's own wait
        decides, as without a gate)."""
        if self._gate is not None and not self._holding:
            self._holding = self._gate.acquire(timeout=BUSY_TIMEOUT_MS / 1000)

    def leave(self) -> None:
        if self._holding:
            self._holding = False
            assert self._gate is not None
            self._gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave()


_GATES: dict[str, threading.Lock] = {}
_GATES_LOCK = threading.Lock()


def _gate_of(path: str) -> threading.Lock:
    key = os.path.realpath(path)
    with _GATES_LOCK:
        return _GATES.setdefault(key, threading.Lock())


def begin_immediate(execute: Callable[[str], object], driver: object) -> None:
    """``BEGIN IMMEDIATE`` through ``execute``, having passed ``driver``'s gate when it
    has one (a ``GatedConnection``); the gate opens again if the ``BEGIN`` fails."""
    if not isinstance(driver, GatedConnection):
        execute("BEGIN IMMEDIATE")
        return
    driver.enter()
    try:
        execute("BEGIN IMMEDIATE")
    except BaseException:
        driver.leave()
        raise


def reader(engine: sa.Engine) -> sa.Engine:
    """``engine`` (the same pool) for reads: on SQLite its transactions begin deferred,
    so they neither take the write lock nor queue behind writers."""
    return engine.execution_options(**{READ_ONLY: True})


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


def make_engine(url: str, *, create: bool = True, own_dir: Path | None = None) -> sa.Engine:
    """An engine for ``url`` with the project's connection settings.

    ``create=False`` (a read): a SQLite file that does not exist is ``NoRegistry``,
    and neither it nor its directory is made. ``own_dir``: the one directory this
    registry may create for its SQLite file (its home); a URL elsewhere must name an
    existing directory. An unknown dialect or a driver that is not installed is
    ``InvalidInput`` naming the URL and what to install."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"invalid database URL {without_password(url)!r}: {exc}") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, create=create, own_dir=own_dir)
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


def _sqlite_engine(url: sa.URL, *, create: bool, own_dir: Path | None) -> sa.Engine:
    if url.database and url.database != ":memory:":
        path = Path(url.database)
        if not create and not path.is_file():
            raise NoRegistry(
                f"no registry database at {path} (nothing was created; registering a "
                "model makes one, or point --home/--db at an existing registry)"
            )
        if create and own_dir is not None and path.parent == own_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif create and not path.parent.is_dir():
            raise DatabaseUnavailable(
                f"cannot create database {path}: its directory {path.parent} does not exist "
                "(modelreg creates only its own home; create the directory first)"
            )
    file = url.database if url.database and url.database != ":memory:" else None
    engine = sa.create_engine(
        url,
        connect_args={
            "timeout": BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
            "factory": GatedConnection,
        },
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if file is not None:
            dbapi_conn.attach(file)
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
        driver = conn.connection.driver_connection
        if driver.in_transaction:  # type: ignore[union-attr]
            return  # the group-commit writer already began it on the DBAPI connection
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            begin_immediate(conn.exec_driver_sql, driver)

    return engine


def _alembic_config(script_location: Path = _MIGRATIONS) -> Any:
    # Alembic is imported only to migrate or to look a revision up (about 0.1 s).
    from alembic.config import Config  # noqa: PLC0415

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


@functools.cache
def head_revision(script_location: Path = _MIGRATIONS) -> str:
    """The newest revision of one migration history, read from its version files.

    Every open of a store compares the database's revision with this one; reading
    the files' ``revision`` and ``down_revision`` lines spares each start Alembic's
    import. A history that is not one straight line is left to Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (script_location / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        down = _DOWN_REVISION.search(text)
        parents.update(_QUOTED.findall(down.group(1)) if down else ())
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    head = ScriptDirectory.from_config(_alembic_config(script_location)).get_current_head()
    assert head is not None
    return head


RESTORE_HINT = "restore the registry from a backup (modelreg restore BACKUP)"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DAMAGED = ("file is not a database", "database disk image is malformed")


def unavailable(
    url: str | sa.URL, exc: sa.exc.DBAPIError
) -> DatabaseUnavailable | UnusableDatabase:
    """A driver's connection failure as one line: the URL and the server's reason."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    if any(text in reason for text in _DAMAGED):
        return UnusableDatabase(
            f"{safe_url(url)} is damaged or not a database ({reason}): {RESTORE_HINT}"
        )
    return DatabaseUnavailable(f"cannot open database {safe_url(url)}: {reason}")


def database_failed(url: str | sa.URL, exc: sa.exc.DBAPIError | sqlite3.Error) -> str:
    """A database error during an operation as one line: the URL and the driver's
    reason (``disk I/O error``, ``database or disk is full``, ``database is locked``).
    The write that failed was rolled back whole; earlier ones of the same command
    stay."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"database {safe_url(url)} failed: {reason}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def check_sqlite_file(path: Path) -> None:
    """A file where a registry is expected is a SQLite database, or ``UnusableDatabase``
    naming it: a registry file is never empty (it is created whole, see
    ``create_sqlite``), so an empty or foreign file is refused, never adopted."""
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot read database {path}: {exc.strerror}") from None
    if not head:
        raise UnusableDatabase(
            f"{path} is an empty file, not a modelreg registry: delete it to start a new "
            f"registry there, or {RESTORE_HINT}"
        )
    if head != _SQLITE_MAGIC:
        raise UnusableDatabase(
            f"{path} is not a SQLite database (it begins {head[:8]!r}): point --home or --db "
            f"at the registry, or {RESTORE_HINT}"
        )


def check_ours(path: Path) -> None:
    """A SQLite file with tables but none of modelreg's version tables is another
    program's database: ``UnusableDatabase``. Read through a read-only connection
    without the registry's settings, so a foreign or damaged file is left as it was
    (not even switched to WAL)."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            tables = [
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
    except sqlite3.DatabaseError as exc:
        if any(text in str(exc) for text in _DAMAGED):
            raise UnusableDatabase(
                f"sqlite:///{path} is damaged or not a database ({exc}): {RESTORE_HINT}"
            ) from None
        # Not the file's fault (a full disk, an I/O error, no permission): nothing to restore.
        raise DatabaseUnavailable(f"cannot read database {path}: {exc}") from None
    if not any(str(name).endswith("alembic_version") for name in tables):
        shown = ", ".join(sorted(str(name) for name in tables)[:5])
        what = f"another program's database (tables {shown})" if tables else "an empty database"
        raise UnusableDatabase(
            f"sqlite:///{path} is {what}, not a modelreg registry: point --home or --db at "
            f"the registry, or {RESTORE_HINT}"
        )


def create_sqlite(path: Path, build: Callable[[sa.Engine], None]) -> None:
    """Make a new SQLite registry at ``path`` whole: built (``build`` migrates it) in a
    temporary file beside it and linked into place only if nothing is there yet, so
    no process ever sees a half-made registry, and an empty file at ``path`` can only
    be a foreign one. A process that loses the race uses the winner's."""
    _remove_abandoned(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    engine = make_engine(f"sqlite:///{temporary}")
    try:
        build(engine)
    finally:
        engine.dispose()
    try:
        os.link(temporary, path)  # atomic; fails when the path exists
    except FileExistsError:
        pass
    finally:
        for leftover in (temporary, *(Path(f"{temporary}{s}") for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


def _remove_abandoned(path: Path) -> None:
    """Temporary registries of processes that died building one (``create_sqlite``)."""
    for leftover in path.parent.glob(f".{path.name}.*.new*"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            leftover.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def known_revision(revision: str, script_location: Path = _MIGRATIONS) -> bool:
    """Whether ``revision`` is in this modelreg's migration history (a newer modelreg's
    is not)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.script.revision import ResolutionError  # noqa: PLC0415
    from alembic.util.exc import CommandError  # noqa: PLC0415

    try:
        ScriptDirectory.from_config(_alembic_config(script_location)).get_revision(revision)
    except (CommandError, ResolutionError):
        return False
    return True


def current_revision(engine: sa.Engine, *, version_table: str = "alembic_version") -> str | None:
    """The database's revision of one history (None: never migrated), read as Alembic
    does, with plain SQL: its version table has one row per head."""
    with reader(engine).connect() as conn:
        if not sa.inspect(conn).has_table(version_table):
            return None
        table = sa.table(version_table, sa.column("version_num", sa.String))
        rows = conn.execute(sa.select(table.c.version_num)).scalars().all()
    if len(rows) > 1:
        raise UnusableDatabase(
            f"{safe_url(engine.url)} has several schema revisions in {version_table} "
            f"({', '.join(sorted(rows))}): {RESTORE_HINT}"
        )
    return rows[0] if rows else None


def schema_behind(url: str) -> str | None:
    """Why opening the registry at ``url`` would change its schema (an older or an
    unmigrated one), in one line; None when it is at this modelreg's head or there is
    no database there (the open then says so). For readers that must write nothing."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = make_engine(url, create=False)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        return None
    return (
        f"{safe_url(url)} has schema revision {current or 'none'}, not this modelreg's "
        f"{head}: open it once with a registry command (modelreg list) to upgrade it first"
    )


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
    current = current_revision(engine, version_table=version_table)
    if revision == "head" and current == head_revision(script_location):
        return
    cfg = _alembic_config(script_location)
    if current is not None and not known_revision(current, script_location):
        raise UnusableDatabase(
            f"{safe_url(engine.url)} was written by a newer modelreg (its schema revision "
            f"{current} is unknown to this one): upgrade modelreg, or {RESTORE_HINT} "
            "made by this version"
        )
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
        cfg.attributes["connection"] = conn
        from alembic import command  # noqa: PLC0415

        command.upgrade(cfg, revision)
