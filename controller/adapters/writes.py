"""The daemon's write transactions, group-committed with the registry's on SQLite.

A durable SQLite commit costs an fsync, and a file has one writer at a time. Each
write of the daemon's tables (a production rollback begun and finished, the route
pushed, an alert remembered) used to be its own transaction: ten alerts in flight
made some forty commits queue, one fsync each, on the file's one writer. The daemon's
tables live in the registry's database, so ``Writes.share`` hands their writes to
the registry's group-committing writer (``registry.store.Store.write``): concurrent
writes, the registry's own stage moves among them, share one transaction and one
fsync, each in its own savepoint, and a failing one fails alone.

Whichever thread leads a batch runs the others' writes, so each write runs in its
caller's context (``contextvars``): a member's fence reads the leases its unit of
work was pinned to (``controller.shell.membership``), never the leader's.

PostgreSQL keeps one transaction per write: it has no single writer to share, and
the registry's writer locks the audit head, which would serialise every member's
writes behind each other's.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from registry.db import sqlite_path
from registry.store import Store, Tx

__all__ = ["Writes"]

T = TypeVar("T")


class Writes:
    """Runs a write of the daemon's tables in a transaction of its own, or in the
    registry writer's shared one once ``share`` found the same SQLite file."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._group: Store | None = None

    @property
    def shared(self) -> bool:
        """Whether writes are group-committed with the registry's."""
        return self._group is not None

    def share(self, store: Store) -> bool:
        """Group-commit with ``store`` from now on if it writes the same SQLite file as
        this engine; returns whether it does."""
        ours = self._engine.url.database
        theirs = sqlite_path(store.url)
        if (
            self._engine.dialect.name == "sqlite"
            and ours not in (None, "", ":memory:")
            and theirs is not None
            and os.path.realpath(ours) == os.path.realpath(theirs)
        ):
            self._group = store
        return self.shared

    def run(self, write: Callable[[sa.Connection], T]) -> T:
        """``write(conn)`` in a write transaction, committed durably before this returns;
        what it raises rolls back its own changes only, and is raised here."""
        group = self._group
        if group is None:
            with self._engine.begin() as conn:
                return write(conn)
        caller = contextvars.copy_context()

        def op(tx: Tx) -> T:
            return caller.run(write, tx.conn)

        return group.write(op)
