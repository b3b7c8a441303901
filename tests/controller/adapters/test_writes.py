"""The daemon's writes share the registry's group commit on one SQLite file: concurrent
writes cost one commit, a failing one fails alone, and each runs in its caller's context."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.adapters.rollout_store import PUSHED_ROUTE, RolloutStore
from controller.adapters.writes import Writes
from registry import ModelRegistry

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("test_writes_caller", default="?")


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[ModelRegistry, RolloutStore]]:
    with ModelRegistry(home=tmp_path / "reg", actor="test") as registry:
        store = RolloutStore.open(registry.url)
        assert store.writes.share(registry.store)
        try:
            yield registry, store
        finally:
            store.close()


def _insert(model: str) -> Callable[[sa.Connection], None]:
    def write(conn: sa.Connection) -> None:
        conn.execute(PUSHED_ROUTE.insert(), {"model": model, "route": "{}", "pushed_at": 0.0})

    return write


def _models(store: RolloutStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(PUSHED_ROUTE.c.model)).scalars())


def _behind_a_slow_write(
    registry: ModelRegistry, writes: Writes, others: list[Callable[[sa.Connection], None]]
) -> tuple[list[BaseException], list[threading.Thread], threading.Event]:
    """Run a write that waits inside its transaction until the returned event is set,
    and ``others`` from threads of their own, queued behind it (once this returns)."""
    release, errors = threading.Event(), []

    def slow(conn: sa.Connection) -> None:
        _insert("slow")(conn)
        assert release.wait(10)

    def run(write: Callable[[sa.Connection], None], caller: str) -> None:
        _CALLER.set(caller)
        try:
            writes.run(write)
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=run, args=(slow, "slow"), daemon=True)
    first.start()
    deadline = time.monotonic() + 10
    while not registry.store._leading and time.monotonic() < deadline:
        time.sleep(0.002)
    threads = [
        threading.Thread(target=run, args=(w, f"caller-{i}"), daemon=True)
        for i, w in enumerate(others)
    ]
    for t in threads:
        t.start()
    while len(registry.store._queue) < len(others) and time.monotonic() < deadline:
        time.sleep(0.002)
    return errors, [first, *threads], release


def test_writes_share_only_the_registrys_own_sqlite_file(tmp_path: Path) -> None:
    with ModelRegistry(home=tmp_path / "a", actor="test") as a:
        same = sa.create_engine(f"sqlite:///{tmp_path / 'a' / 'registry.db'}")
        other = sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
        memory = sa.create_engine("sqlite://")
        assert Writes(same).share(a.store)
        assert not Writes(other).share(a.store)
        assert not Writes(memory).share(a.store)
        for engine in (same, other, memory):
            engine.dispose()


def test_writes_queued_meanwhile_share_one_commit(
    shared: tuple[ModelRegistry, RolloutStore],
) -> None:
    registry, store = shared
    commits: list[int] = []
    sa.event.listen(registry.store.engine, "commit", lambda _conn: commits.append(1))
    errors, threads, release = _behind_a_slow_write(
        registry, store.writes, [_insert(f"m{i}") for i in range(5)]
    )
    release.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(commits) == 2, "the slow write's commit, then one for the five queued"
    assert _models(store) == {"slow", *(f"m{i}" for i in range(5))}


def test_a_failing_write_fails_alone(shared: tuple[ModelRegistry, RolloutStore]) -> None:
    registry, store = shared

    def refused(conn: sa.Connection) -> None:
        _insert("refused")(conn)
        raise RuntimeError("refused by its fence")

    errors, threads, release = _behind_a_slow_write(
        registry, store.writes, [_insert("before"), refused, _insert("after")]
    )
    release.set()
    for t in threads:
        t.join(10)
    assert [str(e) for e in errors] == ["refused by its fence"]
    assert _models(store) == {"slow", "before", "after"}


def test_each_write_runs_in_its_callers_context(
    shared: tuple[ModelRegistry, RolloutStore],
) -> None:
    """The leader runs the queued writes; each still sees its own caller's context (a
    member's fence reads the leases its unit of work was pinned to)."""
    registry, store = shared
    seen: dict[str, str] = {}

    def recording(name: str) -> Callable[[sa.Connection], None]:
        def write(conn: sa.Connection) -> None:
            seen[name] = _CALLER.get()
            seen[f"{name}-thread"] = threading.current_thread().name
            _insert(name)(conn)

        return write

    errors, threads, release = _behind_a_slow_write(
        registry, store.writes, [recording("x"), recording("y")]
    )
    release.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert (seen["x"], seen["y"]) == ("caller-0", "caller-1")
    assert seen["x-thread"] == seen["y-thread"], "one of them led and ran both"


def test_the_daemon_shares_the_registrys_writer(tmp_path: Path) -> None:
    from controller.config import parse_config
    from controller.runtime.daemon import Daemon

    config = parse_config(
        {
            "registry": {"home": str(tmp_path / "home")},
            "sources": {"events": {"kind": "ingest",
                                   "options": {"url": f"sqlite:///{tmp_path}/ingest.db"}}},
            "routers": {"table": {"kind": "file",
                                  "options": {"path": str(tmp_path / "routes.json")}}},
        },
        where="test",
    )  # fmt: skip
    daemon = Daemon.build(config)
    try:
        assert daemon.store.writes.shared
    finally:
        daemon.stop()
