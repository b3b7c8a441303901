"""Whether this process may still write for a model: the check every write runs inside
its own transaction.

One daemon (the default) may always write. With several daemons on one database the
runtime sets ``fence`` to the member's check (``controller.shell.membership``): the
model's shard must be held with the fencing token it was acquired with, on an
unexpired lease, or the write is refused (``controller.adapters.leases.Fenced``) and
its transaction rolls back. The rollout store, the production ledger and the guard's
table share one ``Fencing``.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

__all__ = ["Fencing", "WriteFence"]

WriteFence = Callable[[sa.Connection, str], None]  # raises to refuse a write for a model


class Fencing:
    """The fence of this process's writes; None: a single daemon, no check."""

    def __init__(self, fence: WriteFence | None = None) -> None:
        self.fence = fence

    def check(self, conn: sa.Connection, model: str) -> None:
        """Raise unless this process may write for ``model`` (inside ``conn``'s transaction)."""
        if self.fence is not None:
            self.fence(conn, model)
