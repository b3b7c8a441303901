"""Group commit: concurrent writes of one process share a transaction, each with its own
outcome, audit event and error, on SQLite and PostgreSQL.

A batch is made deterministic by blocking the leader inside its operation until the
other writers have queued behind it: they then run together in the next batch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from registry import ModelRegistry, SemVer, store
from registry.errors import Conflict
from registry.fastsql import Prepared
from registry.schema import audit_t, models_t, versions_t
from registry.store import Store, Tx


@pytest.fixture
def reg(db_url: str, tmp_path: Path) -> Iterator[ModelRegistry]:
    with ModelRegistry(db_url, home=tmp_path / "home", actor="t") as registry:
        yield registry


class _Batches:
    """Records the size of every batch the store runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = Store._run_jobs

        def spy(batch: list[Any], tx: Tx, cur: Any) -> None:
            self.sizes.append(len(batch))
            real(batch, tx, cur)

        monkeypatch.setattr(Store, "_run_jobs", staticmethod(spy))


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _queued(s: Store) -> int:
    with s._queue_lock:
        return len(s._queue)


def _one_batch(s: Store, calls: list[Callable[[], Any]]) -> list[tuple[str, Any]]:
    """Run each call in its own thread, queued in order behind a blocked leader, so they
    share the next batch; returns ("ok", result) or ("error", exception) per call."""
    release = threading.Event()
    leader = threading.Thread(target=s.write, args=(lambda tx: release.wait(10),))
    leader.start()
    _wait_for(lambda: s._leading and _queued(s) == 0)
    outcomes: list[tuple[str, Any]] = [("missing", None)] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = ("ok", calls[i]())
        except Exception as exc:
            outcomes[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for i, t in enumerate(threads):
        t.start()
        _wait_for(lambda i=i: _queued(s) == i + 1)
    release.set()
    for t in [leader, *threads]:
        t.join(timeout=30)
    return outcomes


def _add_model(name: str, *, fail: bool = False) -> Callable[[Tx], str]:
    """An operation that inserts a model row and its audit event, then fails if asked."""

    def op(tx: Tx) -> str:
        tx.conn.execute(models_t.insert().values(name=name, created_at=tx.now))
        tx.audit(actor="t", action="create_model", target=name)
        if fail:
            raise ValueError(f"{name} refused after writing")
        return name

    return op


def _audit_targets(reg: ModelRegistry) -> list[str]:
    with reg.store.read() as conn:
        return list(conn.execute(sa.select(audit_t.c.target).order_by(audit_t.c.id)).scalars())


class TestOneBatch:
    def test_a_job_failing_after_its_writes_rolls_back_alone(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In one shared transaction, the job that fails loses its row and its audit
        event and raises in its own caller; the jobs around it commit."""
        batches = _Batches(monkeypatch)
        s = reg.store
        names = ["a", "b", "c", "d"]
        calls = [(lambda n=n: s.write(_add_model(n, fail=n == "b"))) for n in names]
        outcomes = _one_batch(s, calls)
        assert batches.sizes == [1, 4]
        assert [o[0] for o in outcomes] == ["ok", "error", "ok", "ok"]
        assert "refused after writing" in str(outcomes[1][1])
        with s.read() as conn:
            stored = set(conn.execute(sa.select(models_t.c.name)).scalars())
        assert stored == {"a", "c", "d"}
        assert _audit_targets(reg) == ["a", "c", "d"]
        assert reg.verify_audit_chain() is None

    def test_one_bad_registration_does_not_fail_its_batch(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A registration that conflicts fails with Conflict; the four beside it in the
        same transaction get consecutive versions and one audit event each."""
        reg.register_model("m", None, version="v1.0.0", requirements="")
        batches = _Batches(monkeypatch)
        calls = [
            (lambda v=v: reg.register_model("m", None, version=v, requirements=""))
            for v in (None, None, "v1.0.0", None, None)
        ]
        outcomes = _one_batch(reg.store, calls)
        assert batches.sizes == [1, 5]
        assert [o[0] for o in outcomes] == ["ok", "ok", "error", "ok", "ok"]
        assert isinstance(outcomes[2][1], Conflict)
        made = sorted(o[1].version for o in outcomes if o[0] == "ok")
        assert made == [SemVer(1, 0, i) for i in range(1, 5)]
        assert sorted(v.version for v in reg.list_versions("m")) == [
            SemVer(1, 0, i) for i in range(5)
        ]
        assert _audit_targets(reg).count("m-v1.0.0") == 1
        assert reg.verify_audit_chain() is None

    def test_batches_are_capped(self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
        """More writers than a batch holds are split over several transactions."""
        batches = _Batches(monkeypatch)
        n = store._MAX_BATCH + 5
        calls = [(lambda i=i: reg.store.write(_add_model(f"m{i}"))) for i in range(n)]
        outcomes = _one_batch(reg.store, calls)
        assert all(o[0] == "ok" for o in outcomes)
        assert batches.sizes == [1, store._MAX_BATCH, 5]
        assert len(_audit_targets(reg)) == n
        assert reg.verify_audit_chain() is None


class TestManyThreads:
    def test_concurrent_registrations_all_land_with_a_valid_chain(self, reg: ModelRegistry) -> None:
        """8 threads registering 25 versions each, some refused: every other version is
        there once, numbered without gaps, each with its audit event; the chain holds."""
        refused: list[BaseException] = []
        lock = threading.Lock()

        def work(k: int) -> None:
            for i in range(25):
                version = "v1.0.0" if (k, i) in ((0, 5), (3, 7), (7, 20)) else None
                try:
                    reg.register_model("m", None, version=version, metadata={"k": k, "i": i})
                except Conflict as exc:
                    with lock:
                        refused.append(exc)

        reg.register_model("m", None, version="v1.0.0", requirements="")
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(refused) == 3
        versions = sorted(v.version for v in reg.list_versions("m"))
        assert versions == [SemVer(1, 0, i) for i in range(1 + 8 * 25 - 3)]
        targets = _audit_targets(reg)
        assert sorted(t for t in targets if t.startswith("m-v")) == sorted(
            f"m-{v}" for v in versions
        )
        assert reg.verify_audit_chain() is None


class _Interrupt(BaseException):
    """Stands in for KeyboardInterrupt, which only the main thread receives."""


class TestInterruptedWaiter:
    def test_a_waiter_interrupted_as_it_is_handed_the_lead_passes_it_on(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A caller interrupted while waiting never runs its job, and the lead it was
        being handed goes to the next writer instead of leaving everyone waiting."""
        s = reg.store
        doomed = _add_model("doomed")

        class Gate:
            """A gate whose blocking wait is interrupted the moment it opens."""

            def __init__(self) -> None:
                self.lock = threading.Lock()
                self.lock.acquire()

            def acquire(self, blocking: bool = True) -> bool:
                if not blocking:
                    return self.lock.acquire(blocking=False)
                self.lock.acquire()
                self.lock.release()
                raise _Interrupt

            def release(self) -> None:
                self.lock.release()

        class Job(store._Job[Any]):
            def __init__(self, op: Callable[[Tx], Any]) -> None:
                super().__init__(op)
                if op is doomed:
                    self.gate = Gate()  # type: ignore[assignment]

        monkeypatch.setattr(store, "_Job", Job)

        def interrupted() -> str:
            try:
                s.write(doomed)
            except _Interrupt:
                return "interrupted"
            return "ran"

        outcomes = _one_batch(s, [interrupted, lambda: s.write(_add_model("next"))])
        assert outcomes == [("ok", "interrupted"), ("ok", "next")]
        assert _audit_targets(reg) == ["next"]
        assert not s._leading
        assert s.write(_add_model("later")) == "later"


class TestWriterConnection:
    def test_the_writer_holds_no_snapshot_between_writes(self, tmp_path: Path) -> None:
        """The writer's cursor is kept across transactions, yet once a write returns
        another connection can checkpoint the whole WAL (no statement left mid-result)."""
        with ModelRegistry(home=tmp_path, actor="t") as reg:
            for _ in range(3):
                reg.register_model("m", None, requirements="")
            every_version = Prepared(sa.select(versions_t.c.id))  # three rows, one read
            reg.store.write(lambda tx: tx.cur.one(every_version, {}))
            other = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
            try:
                busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                other.close()
            assert busy == 0
