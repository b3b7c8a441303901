"""The registry's database handle: a group-committing writer and snapshot readers.

A durable SQLite commit costs one fsync (hundreds of microseconds here), so one
commit per registration would cap a process at a few thousand writes per second
before any work is done. ``Store.write`` therefore group-commits: concurrent
callers in one process queue their operations; whichever thread holds the writer
runs every queued operation in one transaction, each inside its own savepoint,
and commits once. A failing operation rolls back only its savepoint and raises in
its own caller. A lone caller pays nothing extra: its batch has one operation.

Every write transaction first locks the single ``audit_head`` row (``BEGIN
IMMEDIATE`` already serialises SQLite; ``SELECT ... FOR UPDATE`` does it on
PostgreSQL), which totally orders mutations and keeps the audit chain linear.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa

from registry import db, faults
from registry.audit import event_hash
from registry.errors import NoRegistry, RegistryError
from registry.fastsql import Cursor, Prepared
from registry.schema import audit_head_t, audit_t

T = TypeVar("T")

_INS_AUDIT = Prepared(
    audit_t.insert(),
    ["id", "at", "actor", "action", "target", "before", "after", "reason", "prev_hash", "hash"],
)
_LOCK_HEAD = Prepared(
    sa.select(audit_head_t.c.last_id, audit_head_t.c.last_hash)
    .where(audit_head_t.c.id == 1)
    .with_for_update()
)
_SET_HEAD = Prepared(
    audit_head_t.update()
    .where(audit_head_t.c.id == 1)
    .values(last_id=sa.bindparam("new_id"), last_hash=sa.bindparam("new_hash"))
)
Clock = Callable[[], datetime]
# The effect the next ``Store.write`` of this context finishes with (see ``Store.finishing``).
_FINISH: contextvars.ContextVar[Callable[[Tx, Any], Any] | None] = contextvars.ContextVar(
    "modelreg_store_finish", default=None
)


def _finish_with(op: Callable[[Tx], T], effect: Callable[[Tx, Any], Any], tx: Tx) -> T:
    return cast(T, effect(tx, op(tx)))


def _commit_point(dialect: str) -> None:
    """The ``commit`` failpoint; an injected disk error is raised as SQLite raises
    one (``disk I/O error``, ``database or disk is full``), so it takes the path a
    real one takes."""
    try:
        faults.point("commit")
    except OSError as exc:
        if dialect != "sqlite":
            raise
        text = "database or disk is full" if exc.errno == errno.ENOSPC else "disk I/O error"
        raise sqlite3.OperationalError(text) from exc


def _rollback_quietly(conn: sa.Connection, cur: Cursor) -> None:
    """Best effort: the original error matters more than a failing rollback."""
    with contextlib.suppress(Exception):
        if conn.in_transaction():
            conn.rollback()
    with contextlib.suppress(Exception):
        cur.driver.rollback()


class Tx:
    """What an operation sees inside the write transaction."""

    def __init__(
        self, conn: sa.Connection, cur: Cursor, now: datetime, last_id: int, last_hash: str
    ) -> None:
        self.conn = conn
        self.cur = cur
        self.now = now
        self._last_id = last_id
        self._last_hash = last_hash
        self.after_commit: list[Callable[[], None]] = []

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        """Append one hash-chained audit event in this transaction."""
        event_id = self._last_id + 1
        digest = event_hash(
            id=event_id,
            at=self.now,
            actor=actor,
            action=action,
            target=target,
            before=before,
            after=after,
            reason=reason,
            prev_hash=self._last_hash,
        )
        self.cur.execute(
            _INS_AUDIT,
            {
                "id": event_id,
                "at": self.now,
                "actor": actor,
                "action": action,
                "target": target,
                "before": before,
                "after": after,
                "reason": reason,
                "prev_hash": self._last_hash,
                "hash": digest,
            },
        )
        self._last_id, self._last_hash = event_id, digest

    def _mark(self) -> tuple[int, str, int]:
        return self._last_id, self._last_hash, len(self.after_commit)

    def _reset(self, mark: tuple[int, str, int]) -> None:
        self._last_id, self._last_hash, n = mark
        del self.after_commit[n:]


class _Job(Generic[T]):
    __slots__ = ("done", "error", "op", "result")

    def __init__(self, op: Callable[[Tx], T]) -> None:
        self.op = op
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False


class Store:
    """One database: migrations on open, group-committed writes, snapshot reads."""

    def __init__(
        self, url: str, *, clock: Clock, create: bool = True, own_dir: Path | None = None
    ) -> None:
        self.url = url
        path = db.sqlite_path(url)
        if path is not None and path.exists():  # empty, foreign or damaged: left alone
            db.check_sqlite_file(path)
            db.check_ours(path)
        self.engine = db.make_engine(url, create=create, own_dir=own_dir)
        self.clock = clock
        try:
            if path is not None and create and not path.exists():
                db.create_sqlite(path, db.migrate)  # whole, or not at all
            if not create and db.current_revision(self.engine) is None:
                raise NoRegistry(
                    f"no registry in database {db.safe_url(url)} (nothing was created; "
                    "registering a model makes one)"
                )
            db.migrate(self.engine)
        except sa.exc.DBAPIError as exc:  # refused, denied, not a database file, ...
            self.engine.dispose()
            raise db.unavailable(url, exc) from exc
        except BaseException:
            self.engine.dispose()
            raise
        self._queue: list[_Job[Any]] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()
        self._wconn: sa.Connection | None = None  # used only under self._writer
        self._version_conn = self._open_version_probe()
        self._version_cursor = self._version_conn.cursor() if self._version_conn else None
        self._probe_lock = threading.Lock()
        # Run inside every stage-move transaction with the model's name; raising refuses
        # the move (a controller sharing the database fences its writes with it).
        self.stage_guard: Callable[[sa.Connection, str], None] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        with self._writer:
            if self._wconn is not None:
                self._wconn.close()
                self._wconn = None
        if isinstance(self._version_conn, sqlite3.Connection):
            self._version_conn.close()
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------

    @contextmanager
    def finishing(self, effect: Callable[[Tx, Any], Any]) -> Iterator[None]:
        """Make the next ``write`` started in this block end with ``effect(tx, result)``,
        inside its transaction, after the operation and before the commit; the write
        returns what ``effect`` returns.

        For a change that must also land outside this database (an MLflow tracking
        server mirrors our versions and stages): if the effect raises, the whole
        operation rolls back, so the database never records what the outside did
        not take. Only the first write is wrapped, so a clean-up written after a
        failure runs plain.
        """
        token = _FINISH.set(effect)
        try:
            yield
        finally:
            _FINISH.reset(token)

    def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in a write transaction (possibly shared) and commit it durably."""
        effect = _FINISH.get()
        if effect is not None:
            _FINISH.set(None)
            op = functools.partial(_finish_with, op, effect)
        job: _Job[T] = _Job(op)
        with self._queue_lock:
            self._queue.append(job)
        with self._writer:
            if not job.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch)
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _run(self, batch: list[_Job[Any]]) -> None:
        if self._wconn is None:
            # One long-lived connection for the writer: a pool checkout and reset per
            # batch costs more than a registration's SQL.
            self._wconn = self.engine.connect()
        callbacks: list[Callable[[], None]] = []
        try:
            callbacks = self._transaction(self._wconn, batch)
        except BaseException as exc:
            if not isinstance(exc, RegistryError):
                # A database or unexpected error may have left the connection dead or
                # mid-transaction: drop it so the next batch starts clean.
                self._drop_writer()
            for job in batch:
                if job.error is None:
                    job.error = exc
                    job.result = None
        finally:
            for job in batch:
                job.done = True
        for callback in callbacks:
            callback()

    def _drop_writer(self) -> None:
        conn, self._wconn = self._wconn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def _transaction(self, conn: sa.Connection, batch: list[_Job[Any]]) -> list[Callable[[], None]]:
        """One durable transaction for the batch; returns its after-commit callbacks.

        The transaction is driven on the DBAPI connection: SQLAlchemy's begin and
        commit cost more than a registration's inserts. Operations that use
        SQLAlchemy statements join it (see ``db._on_begin``), and it is then ended
        through SQLAlchemy so its bookkeeping stays right. Any failure, including
        one at COMMIT, rolls back before it propagates: a transaction left open
        would hold SQLite's write lock against every process.
        """
        cur = Cursor(conn)
        try:
            if conn.dialect.name == "sqlite":
                cur.raw("BEGIN IMMEDIATE")
            head = cur.one(_LOCK_HEAD, {})
            assert head is not None, "audit_head row missing: database not migrated"
            last_id, last_hash = int(head[0]), str(head[1])
            tx = Tx(conn, cur, self.clock().astimezone(UTC), last_id, last_hash)
            self._run_jobs(batch, tx, cur)
            if tx._last_id != last_id:
                cur.execute(_SET_HEAD, {"new_id": tx._last_id, "new_hash": tx._last_hash})
            _commit_point(conn.dialect.name)
            if conn.in_transaction():
                conn.commit()
            else:
                cur.driver.commit()
        except BaseException:
            _rollback_quietly(conn, cur)
            raise
        return tx.after_commit

    @staticmethod
    def _run_jobs(batch: list[_Job[Any]], tx: Tx, cur: Cursor) -> None:
        if len(batch) == 1:
            batch[0].result = batch[0].op(tx)  # failure aborts the whole transaction
            return
        for job in batch:
            mark = tx._mark()
            # Raw savepoints: SQLAlchemy's nested transactions cost more per job than
            # the job's own inserts.
            cur.raw("SAVEPOINT modelreg_job")
            try:
                job.result = job.op(tx)
            except Exception as exc:
                cur.raw("ROLLBACK TO SAVEPOINT modelreg_job")
                tx._reset(mark)
                job.error = exc
            cur.raw("RELEASE SAVEPOINT modelreg_job")

    # -- reads ----------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A consistent snapshot for several queries; never takes the write lock."""
        with (
            self.engine.connect().execution_options(**{db.READ_ONLY: True}) as conn,
            conn.begin(),
        ):
            yield conn

    def _open_version_probe(self) -> sqlite3.Connection | None:
        url = sa.make_url(self.url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        conn = sqlite3.connect(url.database, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={db.BUSY_TIMEOUT_MS}")
        return conn

    def generation(self) -> int:
        """A number that changes whenever any process commits a change.

        SQLite: ``PRAGMA data_version`` on a dedicated connection (a few microseconds,
        no I/O when nothing changed). Elsewhere: the audit head's last event id,
        since every mutation appends an audit event.
        """
        if self._version_cursor is not None:
            # One reused cursor: creating a cursor per call doubles the tail latency.
            with self._probe_lock:
                self._version_cursor.execute("PRAGMA data_version")
                row = self._version_cursor.fetchone()
            return int(row[0])
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(audit_head_t.c.last_id).where(audit_head_t.c.id == 1)
                ).scalar_one()
            )
