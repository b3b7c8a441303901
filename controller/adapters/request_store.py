"""Durable requests: what any member of several daemons received for a model that the
member owning the model's shard must apply (``controller.shell.requests``).

A request is a row of ``controller_request`` (migration ``c0008``) with a unique
``key``: an alert instance's action, or the caller's idempotency key, so the same
alert posted to every member is one request. Its life: ``pending`` (recorded by the
receiver), ``applying`` (claimed by the owner with its fencing token), ``done`` (the
outcome stored for the receiver to answer with) or ``expired`` (nobody applied it
within ``ttl``). Claims and completions are fenced like every write for the model, so
a member that lost the shard can neither claim nor complete; a claim left by a member
that died (or by this member before it lost and regained the shard: another token)
may be claimed again, and the actions it dispatches are idempotent (state-machine
events; production rollbacks keyed by alert instance), so a request acts once. Times
are the database's clock.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controller.adapters.alert_ledger import AlertKey, seen_rows
from controller.adapters.alert_ledger import insert_seen as insert_alert_seen
from controller.adapters.fencing import Fencing
from controller.adapters.leases import db_now
from controller.adapters.rollout_store import METADATA
from controller.core.shards import shard_of
from controller.errors import RequestNotFound
from registry.db import reader

__all__ = ["Outcome", "RequestKind", "RequestRecord", "RequestStatus", "RequestStore"]

REQUEST = sa.Table(
    "controller_request",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), unique=True),
    sa.Column("model", sa.String(128)),
    sa.Column("shard", sa.Integer),
    sa.Column("kind", sa.String(16)),
    sa.Column("payload", sa.Text),
    sa.Column("received_by", sa.String(128)),
    sa.Column("created_at", sa.Float),
    sa.Column("expires_at", sa.Float),
    sa.Column("status", sa.String(16)),
    sa.Column("claimed_by", sa.String(128)),
    sa.Column("claim_token", sa.BigInteger),
    sa.Column("applied_at", sa.Float),
    sa.Column("outcome", sa.Text),
)


class RequestKind(StrEnum):
    OPERATE = "operate"  # pause, resume, abort, approve, reject a rollout
    START = "start"  # start a rollout
    ALERT = "alert"  # an Alertmanager alert's action


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPLYING = "applying"
    DONE = "done"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying a request answered: an HTTP status and a JSON body."""

    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: int
    key: str
    model: str
    shard: int
    kind: RequestKind
    payload: dict[str, Any]
    received_by: str
    created_at: float
    expires_at: float
    status: RequestStatus
    claimed_by: str | None
    claim_token: int | None
    applied_at: float | None
    outcome: Outcome | None

    @property
    def finished(self) -> bool:
        return self.status in (RequestStatus.DONE, RequestStatus.EXPIRED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "model": self.model, "shard": self.shard, "kind": self.kind.value,
            "payload": self.payload, "received_by": self.received_by,
            "created_at": self.created_at, "status": self.status.value,
            "member": self.claimed_by, "applied_at": self.applied_at,
            "outcome": None if self.outcome is None else {
                "status_code": self.outcome.status_code, "body": self.outcome.body},
        }  # fmt: skip


def _record(row: sa.Row[Any]) -> RequestRecord:
    outcome = None
    if row.outcome is not None:
        stored = json.loads(row.outcome)
        outcome = Outcome(int(stored["status_code"]), dict(stored["body"]))
    return RequestRecord(
        id=int(row.id),
        key=str(row.key),
        model=str(row.model),
        shard=int(row.shard),
        kind=RequestKind(row.kind),
        payload=json.loads(row.payload),
        received_by=str(row.received_by),
        created_at=float(row.created_at),
        expires_at=float(row.expires_at),
        status=RequestStatus(row.status),
        claimed_by=row.claimed_by,
        claim_token=None if row.claim_token is None else int(row.claim_token),
        applied_at=None if row.applied_at is None else float(row.applied_at),
        outcome=outcome,
    )


class RequestStore:
    """The request queue of several daemons (tables migrated by ``RolloutStore``)."""

    def __init__(
        self, engine: sa.Engine, *, fencing: Fencing, shards: int, ttl: float = 600.0
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"request ttl must be positive, got {ttl}")
        self._engine = engine
        self._reader = reader(engine)  # reads begin deferred on SQLite
        self.fencing = fencing  # shared with the rollout store: the member's fence
        self.shards = shards
        self.ttl = ttl
        self._now = db_now(engine.dialect.name)

    @contextmanager
    def _writing(self, model: str) -> Iterator[sa.Connection]:
        with self._engine.begin() as conn:
            self.fencing.check(conn, model)
            yield conn

    def submit(
        self, *, key: str, model: str, kind: RequestKind, payload: dict[str, Any], received_by: str
    ) -> tuple[RequestRecord, bool]:
        """Record a request unless one with ``key`` exists; (the request, whether it is
        new). Not fenced: any member may ask."""
        values = {
            "key": key, "model": model, "shard": shard_of(model, self.shards),
            "kind": kind.value, "payload": json.dumps(payload, default=str),
            "received_by": received_by, "created_at": self._now,
            "expires_at": self._now + self.ttl, "status": RequestStatus.PENDING.value,
        }  # fmt: skip
        with self._engine.begin() as conn:
            name = conn.dialect.name
            dialect = postgresql if name == "postgresql" else sqlite if name == "sqlite" else None
            if dialect is None:
                raise ValueError(f"durable requests need PostgreSQL or SQLite, not {name}")
            created = conn.execute(
                dialect.insert(REQUEST)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["key"])
            ).rowcount
            row = conn.execute(sa.select(REQUEST).where(REQUEST.c.key == key)).one()
        return _record(row), bool(created)

    def get(self, request_id: int) -> RequestRecord:
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(REQUEST).where(REQUEST.c.id == request_id)).first()
        if row is None:
            raise RequestNotFound(f"no request {request_id}")
        return _record(row)

    def open_in(
        self, shards: Collection[int], *, limit: int = 100
    ) -> list[tuple[RequestRecord, bool]]:
        """The unfinished requests of ``shards``, oldest first, each with whether it is
        past its ``expires_at`` on the database's clock."""
        if not shards:
            return []
        open_states = (RequestStatus.PENDING.value, RequestStatus.APPLYING.value)
        query = (
            sa.select(REQUEST, (REQUEST.c.expires_at <= self._now).label("due"))
            .where(REQUEST.c.status.in_(open_states), REQUEST.c.shard.in_(sorted(shards)))
            .order_by(REQUEST.c.id)
            .limit(limit)
        )
        with self._reader.connect() as conn:
            return [(_record(row), bool(row.due)) for row in conn.execute(query)]

    def claim(self, record: RequestRecord) -> bool:
        """Take ``record`` to apply it, under the fence: True when this member now holds
        the claim. A pending request, or one claimed by another member or token (a dead
        or deposed owner's), can be claimed; one this member is applying cannot."""
        member, token = self.fencing.member or "", self.fencing.token_of(record.model)
        mine = sa.and_(REQUEST.c.claimed_by == member, REQUEST.c.claim_token == token)
        with self._writing(record.model) as conn:
            return bool(
                conn.execute(
                    REQUEST.update()
                    .where(
                        REQUEST.c.id == record.id,
                        sa.or_(
                            REQUEST.c.status == RequestStatus.PENDING.value,
                            sa.and_(REQUEST.c.status == RequestStatus.APPLYING.value,
                                    sa.not_(mine)),
                        ),
                    )
                    .values(status=RequestStatus.APPLYING.value, claimed_by=member,
                            claim_token=token)
                ).rowcount
            )  # fmt: skip

    def release(self, record: RequestRecord) -> None:
        """Give a claim back (the action failed for a passing reason): pending again."""
        with self._writing(record.model) as conn:
            conn.execute(
                REQUEST.update()
                .where(REQUEST.c.id == record.id, REQUEST.c.status == RequestStatus.APPLYING.value,
                       REQUEST.c.claimed_by == (self.fencing.member or ""))
                .values(status=RequestStatus.PENDING.value, claimed_by=None, claim_token=None)
            )  # fmt: skip

    def complete(
        self, record: RequestRecord, outcome: Outcome, *, alerts: Iterable[AlertKey] = ()
    ) -> bool:
        """Store ``outcome`` under the fence, with the alert instances it answers in the
        alert ledger (same transaction); False when this member's claim was taken."""
        member = self.fencing.member or ""
        body = json.dumps({"status_code": outcome.status_code, "body": outcome.body}, default=str)
        with self._writing(record.model) as conn:
            done = conn.execute(
                REQUEST.update()
                .where(REQUEST.c.id == record.id, REQUEST.c.status == RequestStatus.APPLYING.value,
                       REQUEST.c.claimed_by == member,
                       REQUEST.c.claim_token == self.fencing.token_of(record.model))
                .values(status=RequestStatus.DONE.value, outcome=body, applied_at=self._now)
            ).rowcount  # fmt: skip
            seen = seen_rows(alerts, first_seen=record.created_at)
            if done and seen:
                insert_alert_seen(conn, seen)
        return bool(done)

    def expire(self, record: RequestRecord) -> None:
        """Close an unapplied request whose time ran out (under the fence)."""
        detail = (f"request {record.id} expired: no member owning shard {record.shard} "
                  f"applied it within {self.ttl:g} s")  # fmt: skip
        body = json.dumps({"status_code": 504, "body": {"detail": detail}})
        with self._writing(record.model) as conn:
            conn.execute(
                REQUEST.update()
                .where(REQUEST.c.id == record.id, REQUEST.c.status.in_(
                    (RequestStatus.PENDING.value, RequestStatus.APPLYING.value)))
                .values(status=RequestStatus.EXPIRED.value, outcome=body, applied_at=self._now)
            )  # fmt: skip

    def prune(self, *, keep: float = 7 * 86400.0) -> int:
        """Delete finished requests older than ``keep`` seconds; how many."""
        finished = (RequestStatus.DONE.value, RequestStatus.EXPIRED.value)
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    REQUEST.delete().where(
                        REQUEST.c.status.in_(finished), REQUEST.c.created_at < self._now - keep
                    )
                ).rowcount
            )
