"""The audit hash chain: each event's hash covers its content and the previous hash.

Editing, deleting or reordering any stored event changes a hash that a later event
(or the head row) commits to, so ``verify_chain`` finds the first broken link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.schema import GENESIS_HASH


def utc(ts: datetime) -> datetime:
    """Attach UTC to naive timestamps (SQLite drops the zone on the way back)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
"""The hashed form of an event; one encoder for every event (``json.dumps`` with these
arguments builds a new one per call). Changing it would break every stored chain."""


def event_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None,
    prev_hash: str,
) -> str:
    body = {
        "id": id,
        "at": utc(at).isoformat(),
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
        "reason": reason,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    event_id: int
    problem: str


def verify_chain(rows: Iterable[Mapping[str, Any]], head: Mapping[str, Any]) -> ChainBreak | None:
    """Walk events in id order; return the first broken link, or ``None`` if intact."""
    prev = GENESIS_HASH
    expected_id = 1
    last_id = 0
    for row in rows:
        rid = int(row["id"])
        if rid != expected_id:
            return ChainBreak(expected_id, f"event {expected_id} is missing (next is {rid})")
        if row["prev_hash"] != prev:
            return ChainBreak(rid, f"event {rid} does not follow event {rid - 1} (prev_hash)")
        recomputed = event_hash(
            id=rid,
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            before=row["before"],
            after=row["after"],
            reason=row["reason"],
            prev_hash=row["prev_hash"],
        )
        if recomputed != row["hash"]:
            return ChainBreak(rid, f"event {rid} was modified (hash mismatch)")
        prev = row["hash"]
        expected_id += 1
        last_id = rid
    if int(head["last_id"]) != last_id or head["last_hash"] != prev:
        return ChainBreak(
            last_id + 1, f"chain ends at event {last_id} but the head records {head['last_id']}"
        )
    return None
