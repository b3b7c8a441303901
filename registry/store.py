"""The registry's database handle: a group-committing writer and snapshot readers.

A durable SQLite commit costs one fsync (hundreds of microseconds here), so one
commit per registration would cap a process at a few thousand writes per second
before any work is done. ``Store.write`` therefore group-commits: concurrent
callers in one process queue their operations; the first of them leads, runs every
queued operation in one transaction, each inside its own savepoint, and commits
once. A failing operation rolls back only its savepoint and raises in its own
caller. The others wait on their own gate, which the leader opens as soon as their
operation is committed (waiting on the writer lock instead kept a caller whose
operation was done waiting behind the next batch), and the oldest operation still
queued leads next. A lone caller pays nothing extra: its batch has one operation.
Consecutive operations that carry the same ``run_group`` (registrations) run in one
call and one savepoint instead, so their rows go in with fewer statements; one of
them refused fails alone, and a group failing as a whole is rolled back and run
operation by operation. ``Tx.memo`` carries what one operation learned to the next
(a model's latest version) while only such operations run.

Every write transaction first locks the single ``audit_head`` row (``BEGIN
IMMEDIATE`` already serialises SQLite; ``SELECT ... FOR UPDATE`` does it on
PostgreSQL), which totally orders mutations and keeps the audit chain linear. The
batch's audit events are hashed as its operations run and inserted together, in
one statement, just before the head moves.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa

from registry import db, faults
from registry.audit import event_hash
from registry.errors import NoRegistry, RegistryError
from registry.fastsql import Cursor, MultiRow, Prepared, json_text, stored_time
from registry.schema import audit_head_t, audit_t

T = TypeVar("T")

_INS_AUDIT = MultiRow(
    audit_t,
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
RunGroup = Callable[["Tx", list[Any]], list[tuple[Any, Exception | None]]]
"""An operation's ``run_group`` attribute: runs the operations of one group queued
together, in order, in one call; returns (result, error) for each it ran, in order,
and may stop early (the next operation then runs alone, by itself). A failed one
must have written nothing; raising rolls back all of them, which then run alone."""
_MAX_BATCH = 32
"""Jobs per shared transaction: enough for the writer threads of a busy process, and
few enough that PostgreSQL keeps every job's savepoint in its per-backend cache of
64 subtransactions (overflowing it slows every other session's snapshots)."""
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
        # Audit rows not yet inserted (``_INS_AUDIT`` rows, encoded): the transaction
        # inserts them all at once, in one statement.
        self._events: list[tuple[Any, ...]] = []
        self.stored_now = stored_time(cur.dialect, now)  # ``now`` as a row stores it
        # What an operation learned for the operations after it in this transaction
        # (see ``remember``); emptied after any operation that did not keep it.
        self.memo: dict[Hashable, Any] = {}
        self._memo_kept = False

    def remember(self, key: Hashable, value: Any) -> None:
        """Record ``value`` in ``memo`` for the next operations of this transaction,
        and keep the memo past this operation.

        Only an operation that calls this keeps the memo: after any other operation
        (which may have changed what it records, knowing nothing of it) or a failed
        one (whose rows are rolled back) the store empties it. So an entry holds
        only while every operation since it was written maintained it."""
        self.memo[key] = value
        self._memo_kept = True

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
        """Append one hash-chained audit event to this transaction. It is inserted
        with the batch's other events just before the commit, so an operation must
        not read audit events back inside its own transaction."""
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
        self._events.append(
            (
                event_id,
                self.stored_now,
                actor,
                action,
                target,
                json_text(before),
                json_text(after),
                reason,
                self._last_hash,
                digest,
            )
        )
        self._last_id, self._last_hash = event_id, digest

    def _mark(self) -> tuple[int, str, int, int]:
        return self._last_id, self._last_hash, len(self.after_commit), len(self._events)

    def _reset(self, mark: tuple[int, str, int, int]) -> None:
        self._last_id, self._last_hash, n, events = mark
        del self.after_commit[n:]
        del self._events[events:]

    def _insert_events(self) -> None:
        if self._events:
            self.cur.insert_rows(_INS_AUDIT, self._events)
            self._events = []


class _Job(Generic[T]):
    __slots__ = ("done", "error", "gate", "op", "result")

    def __init__(self, op: Callable[[Tx], T]) -> None:
        self.op = op
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False
        # Held until a leader opens it: the job ran, or its thread leads next.
        self.gate = threading.Lock()
        self.gate.acquire()


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
        self._leading = False  # a thread is running a batch (under _queue_lock)
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
            follow, self._leading = self._leading, True
        if follow:
            try:
                job.gate.acquire()  # until a leader ran this job or handed it the lead
            except BaseException:  # interrupted (KeyboardInterrupt): orphan nothing
                self._withdraw(job)
                raise
        if not job.done:
            self._lead(job)
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _lead(self, job: _Job[Any]) -> None:
        """Run the oldest queued jobs (``job`` first) in one transaction.

        The batch is taken once the writer is ours, as late as possible, so that it
        holds every job queued meanwhile."""
        batch: list[_Job[Any]] = []
        try:
            with self._writer:
                with self._queue_lock:
                    batch = self._queue[:_MAX_BATCH]
                    del self._queue[:_MAX_BATCH]
                self._run(batch)
        finally:
            self._finish_batch(job, batch)

    def _finish_batch(self, job: _Job[Any], batch: list[_Job[Any]]) -> None:
        """Open the gates of the batch's callers and pass the lead on."""
        for done in batch:
            if not done.done:  # the leader was interrupted before the batch ran
                done.error = RuntimeError("the write was interrupted before it ran")
                done.done = True
            done.gate.release()
        with self._queue_lock:
            if not batch and job in self._queue:  # interrupted before taking it
                self._queue.remove(job)
            self._pass_lead()

    def _pass_lead(self) -> None:
        """Under ``_queue_lock``: open the oldest queued job's gate (its thread leads
        next), or record that nobody leads."""
        self._leading = bool(self._queue)
        if self._queue:
            self._queue[0].gate.release()

    def _withdraw(self, job: _Job[Any]) -> None:
        """A waiting caller was interrupted: drop its job unless a leader already took
        it (then it runs and commits as if waited for), and pass the lead on if it had
        just been handed to it."""
        with self._queue_lock:
            if job not in self._queue:
                return
            self._queue.remove(job)
            if job.gate.acquire(blocking=False):  # open: it was to lead next
                self._pass_lead()

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
        cur = Cursor.of(conn)
        try:
            if conn.dialect.name == "sqlite":
                db.begin_immediate(cur.raw, cur.driver)
            head = cur.one(_LOCK_HEAD, {})
            assert head is not None, "audit_head row missing: database not migrated"
            last_id, last_hash = int(head[0]), str(head[1])
            tx = Tx(conn, cur, self.clock().astimezone(UTC), last_id, last_hash)
            self._run_jobs(batch, tx, cur)
            tx._insert_events()
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
        i = 0
        while i < len(batch):
            group: RunGroup | None = getattr(batch[i].op, "run_group", None)
            end = i + 1
            while group is not None and end < len(batch):
                if getattr(batch[end].op, "run_group", None) is not group:
                    break
                end += 1
            ran = Store._run_group(batch[i:end], group, tx, cur) if group and end > i + 1 else 0
            if ran is None:  # the group failed as a whole: each of its jobs alone
                for job in batch[i:end]:
                    Store._run_alone(job, tx, cur)
                ran = end - i
            elif ran == 0:
                Store._run_alone(batch[i], tx, cur)
                ran = 1
            i += ran

    @staticmethod
    def _run_alone(job: _Job[Any], tx: Tx, cur: Cursor) -> None:
        mark = tx._mark()
        tx._memo_kept = False
        # Raw savepoints: SQLAlchemy's nested transactions cost more per job than
        # the job's own inserts.
        cur.raw("SAVEPOINT modelreg_job")
        try:
            job.result = job.op(tx)
        except Exception as exc:
            cur.raw("ROLLBACK TO SAVEPOINT modelreg_job")
            tx._reset(mark)
            tx._memo_kept = False
            job.error = exc
        if not tx._memo_kept:
            tx.memo.clear()
        cur.raw("RELEASE SAVEPOINT modelreg_job")

    @staticmethod
    def _run_group(jobs: list[_Job[Any]], group: RunGroup, tx: Tx, cur: Cursor) -> int | None:
        """Run consecutive jobs of one group in one call and one savepoint; returns how
        many it ran (the next one runs alone), or None if it failed as a whole (its
        rows are rolled back; each job then runs alone, meeting its own error)."""
        mark = tx._mark()
        tx._memo_kept = False
        cur.raw("SAVEPOINT modelreg_group")
        try:
            outcomes = group(tx, [job.op for job in jobs])
        except Exception:
            cur.raw("ROLLBACK TO SAVEPOINT modelreg_group")
            cur.raw("RELEASE SAVEPOINT modelreg_group")
            tx._reset(mark)
            tx.memo.clear()
            return None
        if not tx._memo_kept:
            tx.memo.clear()
        cur.raw("RELEASE SAVEPOINT modelreg_group")
        for job, (result, error) in zip(jobs, outcomes, strict=False):
            job.result, job.error = result, error
        return len(outcomes)

    # -- reads ----------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A consistent snapshot for several queries; never takes the write lock."""
        with (
            db.reader(self.engine).connect() as conn,
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
