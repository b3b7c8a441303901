"""Shard leases and members in the shared database, timed by the database's clock.

Every time here is the database's (``db_now``: PostgreSQL's ``clock_timestamp()``,
SQLite's ``julianday('now')``), never a daemon's, so daemons with skewed clocks agree
on who holds what. A lease is taken only when free or expired, and each acquisition
increments the shard's fencing token in the same statement. ``fence`` is the check a
state-changing write runs in its own transaction: the row is locked (``FOR KEY SHARE``
on PostgreSQL), so an acquisition by another member (``FOR UPDATE SKIP LOCKED``)
skips the shard until that write commits and cannot slip in between the check and
the commit, while the holder's own renewals pass; a member whose lease expired or
was taken has every later write refused (``Fenced``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controller.adapters.rollout_store import METADATA
from controller.core.shards import Lease
from registry.db import reader

__all__ = ["Fenced", "LeaseStore", "db_now"]

LEASE = sa.Table(
    "controller_shard_lease",
    METADATA,
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(128)),
    sa.Column("token", sa.BigInteger),
    sa.Column("expires_at", sa.Float),
    sa.Column("acquired_at", sa.Float),
    sa.Column("renewed_at", sa.Float),
)
MEMBER = sa.Table(
    "controller_member",
    METADATA,
    sa.Column("member_id", sa.String(128), primary_key=True),
    sa.Column("address", sa.String(256)),
    sa.Column("started_at", sa.Float),
    sa.Column("renewed_at", sa.Float),
    sa.Column("expires_at", sa.Float),
)


class Fenced(Exception):
    """This member no longer holds the shard's lease with that token: nothing written."""


def db_now(dialect: str) -> sa.ColumnElement[float]:
    """The database's current time in epoch seconds, as an SQL expression."""
    if dialect == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    if dialect == "sqlite":
        return (sa.func.julianday("now") - 2440587.5) * 86400.0
    raise ValueError(f"leases need PostgreSQL (or SQLite for one node), not {dialect}")


class LeaseStore:
    """One member's view of the lease and member tables (migrated by ``RolloutStore``)."""

    def __init__(self, engine: sa.Engine, *, member: str, shards: int, ttl: float) -> None:
        if not member:
            raise ValueError("a member needs a non-empty id")
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        self._engine = engine
        self._reader = reader(engine)  # reads begin deferred on SQLite
        self.member = member
        self.shards = shards
        self.ttl = ttl
        self._now = db_now(engine.dialect.name)
        self._fence_query = self._fence_statement(engine.dialect.name)

    def _fence_statement(self, dialect: str) -> sa.Select[Any]:
        """``fence``'s query, built once: it runs before every write of every owned
        rollout, and building the expression anew each time cost more CPU than the
        round trip (the bench's member ticks)."""
        columns: list[sa.ColumnElement[Any]] = [LEASE.c.shard]
        if dialect == "postgresql":
            limit = str(max(1, round(self.ttl * 1000)))
            columns.append(
                sa.func.set_config("idle_in_transaction_session_timeout", limit, sa.true())
            )
        return (
            sa.select(*columns)
            .where(
                LEASE.c.shard == sa.bindparam("shard"),
                LEASE.c.owner == self.member,
                LEASE.c.token == sa.bindparam("token"),
                LEASE.c.expires_at > self._now,
            )
            .with_for_update(read=True, key_share=True)
        )

    def now(self) -> float:
        """The database's clock, epoch seconds."""
        with self._reader.connect() as conn:
            return float(conn.execute(sa.select(self._now)).scalar_one())

    # -- members ------------------------------------------------------------------

    def join(self, address: str = "") -> None:
        """Record (or refresh) this member, live for one ``ttl``."""
        with self._engine.begin() as conn:
            updated = conn.execute(
                MEMBER.update()
                .where(MEMBER.c.member_id == self.member)
                .values(address=address, renewed_at=self._now, expires_at=self._now + self.ttl)
            ).rowcount
            if not updated:
                conn.execute(
                    MEMBER.insert().values(
                        member_id=self.member,
                        address=address,
                        started_at=self._now,
                        renewed_at=self._now,
                        expires_at=self._now + self.ttl,
                    )
                )

    def heartbeat(self) -> bool:
        """Extend this member's liveness; False when its row is gone (it must rejoin)."""
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    MEMBER.update()
                    .where(MEMBER.c.member_id == self.member)
                    .values(renewed_at=self._now, expires_at=self._now + self.ttl)
                ).rowcount
            )

    def leave(self) -> None:
        """Forget this member and free its leases (a clean stop)."""
        with self._engine.begin() as conn:
            conn.execute(
                LEASE.update()
                .where(LEASE.c.owner == self.member)
                .values(owner=None, expires_at=self._now)
            )
            conn.execute(MEMBER.delete().where(MEMBER.c.member_id == self.member))

    def members(self) -> list[str]:
        """The live members (heartbeat within their ttl), sorted."""
        with self._reader.connect() as conn:
            rows = conn.execute(
                sa.select(MEMBER.c.member_id).where(MEMBER.c.expires_at > self._now)
            )
            return sorted(str(r.member_id) for r in rows)

    def status(self) -> dict[str, object]:
        """Members (live or not yet forgotten) with their shards and lease expiry, and
        the database's clock: what ``GET /v1/cluster`` shows."""
        with self._reader.connect() as conn:
            now = float(conn.execute(sa.select(self._now)).scalar_one())
            members = list(conn.execute(sa.select(MEMBER).order_by(MEMBER.c.member_id)))
            leases = list(conn.execute(sa.select(LEASE).order_by(LEASE.c.shard)))
        out = []
        for m in members:
            held = [lease for lease in leases if lease.owner == m.member_id]
            out.append({
                "member": m.member_id, "address": m.address, "live": m.expires_at > now,
                "started_at": m.started_at, "renewed_at": m.renewed_at,
                "expires_at": m.expires_at,
                "shards": [lease.shard for lease in held if lease.expires_at > now],
                "lease_expires_at": min((lease.expires_at for lease in held), default=None),
            })  # fmt: skip
        free = [lease.shard for lease in leases if lease.owner is None or lease.expires_at <= now]
        return {"now": now, "shards": self.shards, "members": out, "unowned": free}

    # -- leases -------------------------------------------------------------------

    def ensure_shards(self) -> None:
        """Create the lease rows of every shard (free), keeping the existing ones."""
        rows = [
            {"shard": s, "owner": None, "token": 0, "expires_at": 0.0, "acquired_at": 0.0,
             "renewed_at": 0.0}
            for s in range(self.shards)
        ]  # fmt: skip
        with self._engine.begin() as conn:
            name = conn.dialect.name
            if name == "postgresql":
                conn.execute(postgresql.insert(LEASE).on_conflict_do_nothing(), rows)
            elif name == "sqlite":
                conn.execute(sqlite.insert(LEASE).on_conflict_do_nothing(), rows)
            else:
                raise ValueError(f"leases need PostgreSQL or SQLite, not {name}")

    def leases(self) -> dict[int, Lease]:
        """Every shard's lease as stored."""
        with self._reader.connect() as conn:
            return {
                int(r.shard): Lease(int(r.shard), r.owner, int(r.token), float(r.expires_at))
                for r in conn.execute(sa.select(LEASE))
            }

    def acquire(self, shard: int) -> int | None:
        """Take ``shard`` if it is free or its lease expired; its new fencing token, or
        None when another member holds it. A row locked by a write in flight (its
        holder's fence: ``FOR KEY SHARE``, which this ``FOR UPDATE`` conflicts with) is
        skipped for this round, never waited for: a holder stalled inside that write
        must not stall the taker's whole round (``fence``)."""
        free = sa.or_(LEASE.c.owner.is_(None), LEASE.c.expires_at <= self._now)
        unlocked = (
            sa.select(LEASE.c.shard)
            .where(LEASE.c.shard == shard, free)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self._engine.begin() as conn:
            row = conn.execute(
                LEASE.update()
                .where(LEASE.c.shard == unlocked, free)
                .values(
                    owner=self.member,
                    token=LEASE.c.token + 1,
                    expires_at=self._now + self.ttl,
                    acquired_at=self._now,
                    renewed_at=self._now,
                )
                .returning(LEASE.c.token)
            ).first()
        return None if row is None else int(row.token)

    def renew(self, held: Mapping[int, int]) -> set[int]:
        """Extend the leases this member still holds (``held``: shard -> token) by one
        ``ttl``; the shards renewed. One that is missing was lost: its lease expired
        before the renewal, or another member took it."""
        renewed: set[int] = set()
        if not held:
            return renewed
        with self._engine.begin() as conn:
            for shard, token in held.items():
                count = conn.execute(
                    LEASE.update()
                    .where(
                        LEASE.c.shard == shard,
                        LEASE.c.owner == self.member,
                        LEASE.c.token == token,
                        LEASE.c.expires_at > self._now,
                    )
                    .values(expires_at=self._now + self.ttl, renewed_at=self._now)
                ).rowcount
                if count:
                    renewed.add(shard)
        return renewed

    def release(self, shards: Iterable[tuple[int, int]]) -> None:
        """Give up leases (shard, token) at once, so their next owner need not wait."""
        with self._engine.begin() as conn:
            for shard, token in shards:
                conn.execute(
                    LEASE.update()
                    .where(
                        LEASE.c.shard == shard,
                        LEASE.c.owner == self.member,
                        LEASE.c.token == token,
                    )
                    .values(owner=None, expires_at=self._now)
                )

    def fence(self, conn: sa.Connection, shard: int, token: int) -> None:
        """In the caller's transaction: raise ``Fenced`` unless this member holds
        ``shard`` with ``token`` and an unexpired lease. The lease row stays locked
        until the caller commits (PostgreSQL), so no acquisition lands in between.

        The lock is ``FOR KEY SHARE``, the weakest that does the job: it conflicts with
        the ``FOR UPDATE`` an acquisition takes (which skips the row this round), but
        not with a plain ``UPDATE`` of non-key columns. So this member's own renewals
        and releases pass a write in flight (a route push can hold the fence across a
        slow router), and its fenced writes do not queue behind one another.

        A member stalled inside that transaction (SIGSTOP, a long pause) must neither
        keep the row locked for ever nor commit late: the same statement sets the
        transaction's ``idle_in_transaction_session_timeout`` to one lease TTL, so
        PostgreSQL ends a transaction that sits idle that long, releasing the row (the
        shard's next round takes it) and leaving nothing to commit."""
        query = self._fence_query
        if conn.execute(query, {"shard": shard, "token": token}).first() is None:
            raise Fenced(f"member {self.member} no longer holds shard {shard} with token {token}")
