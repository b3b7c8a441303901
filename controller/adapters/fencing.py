"""Whether this process may still write for a model: the check every write runs inside
its own transaction.

One daemon (the default) may always write. With several daemons on one database the
runtime sets ``fence`` to the member's check (``controller.shell.membership``): the
model's shard must be held with the fencing token it was acquired with, on an
unexpired lease, or the write is refused (``controller.adapters.leases.Fenced``) and
its transaction rolls back. The rollout store, the production ledger, the guard's
table and the request queue share one ``Fencing``; ``member`` names the writer in the
rows that record who acted (decisions, applied requests), and ``token`` gives the
fencing token a model is written under now (None: not this member's).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

__all__ = ["Fencing", "WriteFence"]

WriteFence = Callable[[sa.Connection, str], None]  # raises to refuse a write for a model
TokenOf = Callable[[str], int | None]  # the fencing token a model is held with, if held


class Fencing:
    """The fence of this process's writes; None: a single daemon, no check."""

    def __init__(
        self,
        fence: WriteFence | None = None,
        *,
        member: str | None = None,
        token: TokenOf | None = None,
    ) -> None:
        self.fence = fence
        self.member = member
        self.token = token

    def check(self, conn: sa.Connection, model: str) -> None:
        """Raise unless this process may write for ``model`` (inside ``conn``'s transaction)."""
        if self.fence is not None:
            self.fence(conn, model)

    def token_of(self, model: str) -> int:
        """The fencing token ``model`` is held with now: 0 for a single daemon, -1 when
        this member does not hold it (no claim made with it can pass the fence)."""
        if self.token is None:
            return 0
        found = self.token(model)
        return -1 if found is None else found
