"""The file router's parsed-table cache never hides a change made by someone else."""

from __future__ import annotations

import fcntl
import json
import os
import threading
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
