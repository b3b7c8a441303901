"""Reading the audit trail: ``AuditRecord``s, filtered, and the hash chain verified.

Every mutation appends its event inside its own transaction (``Store``/``Tx``);
this module only reads them back. ``registry.audit`` holds the chain's hashing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from registry import names, schema
from registry.audit import ChainBreak, utc, verify_chain
from registry.errors import InvalidInput
from registry.instants import parse_instant
from registry.schema import audit_head_t, audit_t
from registry.store import Store
from registry.versions import split_model_ref


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reason: str | None
    hash: str

    @property
    def model(self) -> str | None:
        if self.target == "*" or " -> " in self.target:
            return None
        try:
            return split_model_ref(self.target)[0]
        except InvalidInput:
            return self.target

    @classmethod
    def from_row(cls, row: Any) -> AuditRecord:
        return cls(
            row.id,
            utc(row.at),
            row.actor,
            row.action,
            row.target,
            row.before,
            row.after,
            row.reason,
            row.hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "hash": self.hash,
        }


def audit_log(
    store: Store,
    model: str | None,
    *,
    since: str | datetime | None,
    until: str | datetime | None,
    limit: int | None,
) -> list[AuditRecord]:
    """``ModelRegistry.audit_log``: oldest first, optionally one model and a time range."""
    a = schema.audit_t.c
    query = sa.select(schema.audit_t).order_by(a.id)
    start = parse_instant(since, end_of_day=False) if since is not None else None
    end = parse_instant(until) if until is not None else None
    if start and end and end < start:
        raise InvalidInput(f"until ({end.isoformat()}) is before since ({start.isoformat()})")
    if start is not None:
        query = query.where(a.at >= start)
    if end is not None:
        query = query.where(a.at <= end)
    if model is not None:
        names.model_name(model)
        query = query.where(sa.or_(a.target == model, a.target.like(f"{model}-v%")))
    with store.read() as conn:
        rows = list(conn.execute(query))
    records = [AuditRecord.from_row(r) for r in rows]
    if model is not None:
        records = [r for r in records if r.model == model]
    return records[-limit:] if limit else records


def verify_audit_chain(store: Store) -> ChainBreak | None:
    with store.read() as conn:
        head = dict(conn.execute(sa.select(audit_head_t)).one()._mapping)
        rows = (dict(r._mapping) for r in conn.execute(sa.select(audit_t).order_by(audit_t.c.id)))
        return verify_chain(rows, head)
