"""``kind: file``: the routing table as one JSON file, replaced atomically.

The file maps each model to its route (versions with weights and artifact digest,
revision and salt)::

    {"models": {"fraud": {"model": "fraud", "revision": 3, "salt": "fraud:1",
                          "backends": [{"version": "1.0.0", "weight": 90, "digest": "..."},
                                       {"version": "1.1.0", "weight": 10, "digest": "..."}]}}}

Every ``set`` reads the current table, replaces one model's entry and writes a
temporary file in the same directory, fsyncs it, renames it over the table and
fsyncs the directory: a reader sees the old table or the new one, never half.
Writers are serialised by a lock in the process and an advisory lock (``flock``) on
``<table>.lock`` between processes, so several daemons on one host (``ha``) can share
one table: each read-modify-write sees the others' entries. A writer waits at most
``lock_wait`` seconds (1 s; a write takes milliseconds) for both, then the ``set``
fails with ``RouterError`` and its caller retries: a process stopped while it holds
the table's lock (SIGSTOP) must not hang the others' pushes, which hold their shard's
lease row while they push, for as long as it stays stopped. A ``read`` takes neither
lock: the table is only ever replaced whole, so it never waits for a write.

Concurrent ``set`` calls share a write: each queues its route, and whichever of them
takes the lock next writes every route queued by then, so ten alerts rolling ten
models back at once cost one rewrite and one fsync instead of ten in a row. A caller
whose route went out in another's write returns with that write's outcome.

With a thousand models the table is a few hundred kilobytes: the router keeps the
parsed table with the file's identity (inode, mtime, size) and parses again only
when the file changed, converts only the entry asked for, and writes compact JSON
(the C encoder; an indented dump goes through the pure-Python one, ~20x slower),
re-encoding only the entry that changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from controller.adapters.routing import RouterError, RouterOptions, register_router
from serving.route import Route

__all__ = ["FileOptions", "FileRouter"]

Identity = tuple[int, int, int]  # a table file's (inode, mtime in ns, size)


class FileOptions(RouterOptions):
    """Options of ``kind: file``: where the routing table lives."""

    path: str = Field(
        min_length=1,
        description="The routing table (JSON), replaced atomically on every change; "
        "relative to the config file's directory. Serving code reads it.",
    )


class _Queued:
    """A route waiting for the next write of the table, and that write's outcome."""

    __slots__ = ("done", "error", "route")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.done = threading.Event()
        self.error: str | None = None


class FileRouter:
    """Writes routes into one JSON file with atomic replacement."""

    def __init__(self, *, path: str | Path, lock_wait: float = 1.0) -> None:
        self.path = Path(path)
        self.lock_wait = lock_wait  # seconds a set waits for the table's locks
        self._lock = threading.Lock()
        # The parsed table with the file identity it was read at; replaced whole, never
        # changed in place, so ``read`` needs no lock and never waits for a write.
        self._cached: tuple[Identity, dict[str, Any]] | None = None
        # Under the lock: each model's '"name": {...}' member as last written, and the
        # models in order, valid for the file identity ``_encoded_for``.
        self._encoded: dict[str, str] = {}
        self._names: list[str] = []
        self._encoded_for: Identity | None = None
        self._queue: list[_Queued] = []  # routes for the next write, oldest first
        self._queue_lock = threading.Lock()

    def set(self, route: Route) -> None:
        deadline = time.monotonic() + self.lock_wait
        mine = _Queued(route)
        with self._queue_lock:
            self._queue.append(mine)
        if not self._lock.acquire(timeout=self.lock_wait):
            with self._queue_lock:
                waiting = mine in self._queue
                if waiting:
                    self._queue.remove(mine)
            if waiting:
                raise RouterError(f"file router: {self.path} stayed locked by another writer "
                                  f"of this process for {self.lock_wait:g} s")  # fmt: skip
            mine.done.wait()  # a write holding it is under way: its outcome is ours
        else:
            try:
                if not mine.done.is_set():  # not written by the holder before us
                    self._write_queued(deadline)
            finally:
                self._lock.release()
        if mine.error is not None:
            raise RouterError(mine.error)

    def _write_queued(self, deadline: float) -> None:
        """Under the lock: write every queued route in one replacement of the table and
        tell each caller how it went."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        error: str | None = None
        try:
            with self._between_processes(deadline):
                self._replace([queued.route for queued in batch])
        except RouterError as exc:
            error = str(exc)
        except BaseException as exc:
            error = f"file router: writing {self.path} failed: {exc!r}"
            raise
        finally:
            for queued in batch:
                queued.error = error
                queued.done.set()

    def _replace(self, routes: list[Route]) -> None:
        """Read the table, replace the entries of ``routes`` (a later one of a model
        wins), write it (under both locks)."""
        identity, current = self._table()
        if identity is None or identity != self._encoded_for:  # changed by someone else
            self._encoded, self._names = {}, []
        models = dict(current)
        encoded = self._encoded
        self._encoded_for = None  # until the write is known to have landed
        for route in routes:
            entry = models[route.model] = route.to_dict()
            encoded[route.model] = _member(route.model, entry)
        if len(encoded) != len(models):  # read afresh: encode the others once
            encoded.update((n, _member(n, e)) for n, e in models.items() if n not in encoded)
        if len(self._names) != len(models):
            self._names = sorted(models)
        # json.dumps({"models": models}, sort_keys=True), re-encoding only what changed
        text = '{"models": {' + ", ".join([encoded[name] for name in self._names]) + "}}"
        self._write(text)
        with contextlib.suppress(OSError):  # no cache: the next read parses the file
            written = self._identity()
            self._cached, self._encoded_for = (written, models), written

    @contextlib.contextmanager
    def _between_processes(self, deadline: float) -> Iterator[None]:
        """The table's advisory lock, waited for until ``deadline`` (monotonic)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RouterError(f"file router: cannot open {lock_path}: {exc}") from exc
        try:
            pause = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RouterError(
                            f"file router: {lock_path} stayed locked for {self.lock_wait:g} s "
                            "(another process holds it: one stopped while writing the table?)"
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.02)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def read(self, model: str) -> Route | None:
        entry = self._table()[1].get(model)
        try:
            return None if entry is None else Route.from_dict(entry)
        except (KeyError, TypeError, ValueError) as exc:
            where = f"file router: bad entry for {model!r} in {self.path}"
            raise RouterError(f"{where}: {exc}") from exc

    def _identity(self) -> Identity:
        stat = os.stat(self.path)
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _table(self) -> tuple[Identity | None, dict[str, Any]]:
        """The table's raw entries (not to be changed) with the file identity they were
        read at (None: no file yet); parsed again only when the file changed. Safe
        without the lock: the file is only ever replaced whole, and two threads parsing
        the same change at once only parse it twice."""
        try:
            identity = self._identity()
        except FileNotFoundError:
            return None, {}
        except OSError as exc:
            raise RouterError(f"file router: cannot read {self.path}: {exc}") from exc
        cached = self._cached
        if cached is not None and cached[0] == identity:
            return cached
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise RouterError(f"file router: cannot read {self.path}: {exc}") from exc
        models = data.get("models", {}) if isinstance(data, dict) else None
        if not isinstance(models, dict):
            raise RouterError(f"file router: {self.path} has no 'models' table")
        self._cached = (identity, models)
        return identity, models

    def _write(self, text: str) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        except OSError as exc:
            raise RouterError(f"file router: cannot write in {directory}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise RouterError(f"file router: cannot replace {self.path}: {exc}") from exc


def _member(name: str, entry: Any) -> str:
    """``name``'s member of the table's ``models`` object, as ``json.dumps`` sorts it."""
    return f"{json.dumps(name)}: {json.dumps(entry, sort_keys=True)}"


@register_router("file", options=FileOptions)
def build_file_router(options: FileOptions) -> FileRouter:
    """The factory for ``kind: file``."""
    return FileRouter(path=options.path)
