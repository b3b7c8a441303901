"""The file router's parsed-table cache never hides a change made by someone else."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pytest

from controller.adapters.routers.file import FileRouter
from controller.adapters.routing import RouterError
from serving.route import Backend, Route, read_table


def _route(model: str, version: str, revision: int) -> Route:
    return Route(model, (Backend(version, 100, "d"),), revision, f"{model}:1")


class TestFileRouter:
    def test_set_keeps_the_other_models(self, tmp_path: Path) -> None:
        """Setting one model rewrites only its entry; the file is plain JSON for readers."""
        path = tmp_path / "routes.json"
        router = FileRouter(path=path)
        router.set(_route("a", "v1", 1))
        router.set(_route("b", "v2", 1))
        router.set(_route("a", "v3", 2))
        assert read_table(path) == {"a": _route("a", "v3", 2), "b": _route("b", "v2", 1)}
        table = {"a": _route("a", "v3", 2).to_dict(), "b": _route("b", "v2", 1).to_dict()}
        assert path.read_text() == json.dumps({"models": table}, sort_keys=True)
        assert router.read("a") == _route("a", "v3", 2)
        assert router.read("missing") is None

    def test_a_file_replaced_by_someone_else_is_read_again(self, tmp_path: Path) -> None:
        """After an outside rewrite (a new inode) ``read`` sees the new content."""
        path = tmp_path / "routes.json"
        router = FileRouter(path=path)
        router.set(_route("a", "v1", 1))
        assert router.read("a") == _route("a", "v1", 1)
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"models": {"a": _route("a", "v9", 7).to_dict()}}))
        other.replace(path)
        assert router.read("a") == _route("a", "v9", 7)
        router.set(_route("b", "v2", 1))
        assert read_table(path)["a"] == _route("a", "v9", 7)

    @pytest.mark.parametrize(
        ("content", "named"),
        [("{not json", "cannot read"), ('{"models": []}', "no 'models' table"),
         ('{"models": {"a": {"backends": []}}}', "bad entry for 'a'")],
    )  # fmt: skip
    def test_a_broken_file_is_refused(self, tmp_path: Path, content: str, named: str) -> None:
        """Unreadable content raises ``RouterError`` naming the problem, not a crash."""
        path = tmp_path / "routes.json"
        path.write_text(content)
        with pytest.raises(RouterError, match=named):
            FileRouter(path=path).read("a")

    def test_several_writers_share_one_table(self, tmp_path: Path) -> None:
        """Routers in several processes (``ha``: one table per host) each set their own
        models concurrently; the advisory lock keeps every entry. Two routers here stand
        for two processes: only the file lock serialises them, not the in-process one."""
        path = tmp_path / "routes.json"
        routers = [FileRouter(path=path), FileRouter(path=path)]

        def write(which: int) -> None:
            for i in range(40):
                routers[which].set(_route(f"m{which}-{i}", "v1", i + 1))

        threads = [threading.Thread(target=write, args=(w,)) for w in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        table = read_table(path)
        assert len(table) == 80
        assert table["m1-39"] == _route("m1-39", "v1", 40)

    def test_a_table_locked_by_a_stopped_writer_fails_the_set_in_time(self, tmp_path: Path) -> None:
        """A writer stopped (SIGSTOP) while it holds the table's lock keeps it. A set waits
        a bounded time for the lock, then fails with ``RouterError`` (its caller retries)
        rather than hanging its thread, and the lease row its push holds, for as long as
        the other process stays stopped."""
        path = tmp_path / "routes.json"
        holder = os.open(tmp_path / "routes.json.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(holder, fcntl.LOCK_EX)  # another process, stopped inside a write
        errors: list[str] = []

        def write() -> None:
            try:
                FileRouter(path=path).set(_route("a", "v1", 1))
            except RouterError as exc:
                errors.append(str(exc))

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            writer.join(timeout=5)
            assert not writer.is_alive(), "the set waits for the lock for good"
            assert len(errors) == 1
            assert "locked" in errors[0], errors
        finally:
            os.close(holder)
            writer.join(timeout=5)
        FileRouter(path=path).set(_route("a", "v1", 1))
        assert read_table(path) == {"a": _route("a", "v1", 1)}


class TestSharedWrites:
    """Concurrent sets share a rewrite of the table: ten models rolled back at once cost
    one write and one fsync after the one under way, not ten in a row."""

    @staticmethod
    def _queue_behind_a_held_table(
        tmp_path: Path, router: FileRouter, routes: list[Route]
    ) -> tuple[list[threading.Thread], list[str], int]:
        """Start a set per route while another process holds the table's lock, wait
        until all but the first (which waits for that lock) are queued; returns the
        threads, their errors and the held lock's descriptor (closing it lets go)."""
        holder = os.open(tmp_path / "routes.json.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(holder, fcntl.LOCK_EX)
        errors: list[str] = []

        def write(route: Route) -> None:
            try:
                router.set(route)
            except RouterError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=write, args=(r,), daemon=True) for r in routes]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while len(router._queue) < len(routes) - 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        return threads, errors, holder

    def test_sets_queued_meanwhile_go_out_in_one_write(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "routes.json"
        router = FileRouter(path=path, lock_wait=10)
        writes: list[str] = []
        real_write = router._write

        def counted(text: str) -> None:
            writes.append(text)
            real_write(text)

        monkeypatch.setattr(router, "_write", counted)
        routes = [_route(f"m{i}", "v1", 1) for i in range(10)]
        threads, errors, holder = self._queue_behind_a_held_table(tmp_path, router, routes)
        os.close(holder)
        for t in threads:
            t.join(timeout=10)
        assert not errors
        assert len(writes) == 2, "the first set's write, then one for the nine queued"
        assert read_table(path) == {r.model: r for r in routes}
        router.set(_route("m3", "v2", 2))  # alone again: its own write
        assert len(writes) == 3
        assert read_table(path)["m3"] == _route("m3", "v2", 2)

    def test_a_failed_shared_write_fails_every_set_in_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each caller whose route was in the failed write gets the router's error (its
        caller retries), and the table keeps what it had."""
        path = tmp_path / "routes.json"
        router = FileRouter(path=path, lock_wait=10)
        router.set(_route("kept", "v1", 1))
        real_write = router._write
        calls: list[str] = []

        def failing_after_the_first(text: str) -> None:
            calls.append(text)
            if len(calls) > 1:
                raise RouterError(f"file router: cannot replace {path}: disk full")
            real_write(text)

        monkeypatch.setattr(router, "_write", failing_after_the_first)
        routes = [_route(f"m{i}", "v1", 1) for i in range(5)]
        threads, errors, holder = self._queue_behind_a_held_table(tmp_path, router, routes)
        os.close(holder)
        for t in threads:
            t.join(timeout=10)
        assert len(errors) == 4, errors
        assert all("disk full" in e for e in errors), errors
        table = read_table(path)
        assert "kept" in table
        assert len(set(table) - {"kept"}) == 1  # the first set's own write

    def test_a_read_does_not_wait_for_a_write_under_way(self, tmp_path: Path) -> None:
        """A push reads the held route first: it must not queue behind another model's
        write (and its fsyncs), let alone one stuck waiting for the table's lock."""
        path = tmp_path / "routes.json"
        router = FileRouter(path=path, lock_wait=10)
        router.set(_route("a", "v1", 1))
        threads, errors, holder = self._queue_behind_a_held_table(
            tmp_path, router, [_route("b", "v1", 1)]
        )
        try:
            assert threads[0].is_alive(), "the set waits for the table's lock"
            started = time.monotonic()
            assert router.read("a") == _route("a", "v1", 1)
            assert router.read("b") is None
            assert time.monotonic() - started < 1.0
        finally:
            os.close(holder)
            for t in threads:
                t.join(timeout=10)
        assert not errors
        assert router.read("b") == _route("b", "v1", 1)
