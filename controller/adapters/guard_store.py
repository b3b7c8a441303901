"""The guard's memory in the database (``controller_guard_trigger``, migration ``c0002``),
so that a restarted daemon keeps every trigger's streak; its actions, and so every
model's cooldown, are rows of the production ledger (``production_ledger``).

Reads load everything in one query per table (one guard pass over 1,000 models
must not cost 1,000 reads); a pass's trigger memories are written in one
transaction at its end. Losing a pass's memories in a crash only delays a firing
by a pass; it can never cause one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa

from controller.adapters.epoch import from_epoch, to_epoch
from controller.adapters.fencing import Fencing
from controller.adapters.production_ledger import ProductionLedger
from controller.adapters.rollout_store import METADATA
from controller.adapters.writes import Writes
from controller.core.causes import Cause
from controller.core.guard import TriggerMemory
from registry.db import reader

__all__ = ["GuardStore"]

TRIGGER = sa.Table(
    "controller_guard_trigger",
    METADATA,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("trigger", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(64)),
    sa.Column("streak", sa.Integer),
    sa.Column("last_fired_at", sa.Float),
    sa.Column("status", sa.String(32)),
    sa.Column("value", sa.Float),
    sa.Column("samples", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.Column("at", sa.Float),
)


class GuardStore:
    """The guard's trigger table on the controller's engine (migrated by ``RolloutStore``)."""

    def __init__(
        self, engine: sa.Engine, *, fencing: Fencing | None = None, writes: Writes | None = None
    ) -> None:
        self._reader = reader(engine)  # reads begin deferred on SQLite
        self.fencing = fencing or Fencing()  # each model's rows are written fenced
        self._writes = writes or Writes(engine)  # the rollout store's: group-committed
        # The guard's actions are the production ledger's rows.
        self.ledger = ProductionLedger(engine, fencing=self.fencing, writes=self._writes)

    def memories(self) -> dict[str, dict[str, TriggerMemory]]:
        """Every trigger's memory, by model and trigger name."""
        found: dict[str, dict[str, TriggerMemory]] = {}
        with self._reader.connect() as conn:
            for r in conn.execute(sa.select(TRIGGER)):
                found.setdefault(r.model, {})[r.trigger] = TriggerMemory(
                    version=r.version,
                    streak=r.streak,
                    last_fired_at=from_epoch(r.last_fired_at)
                    if r.last_fired_at is not None
                    else None,
                    status=r.status,
                    value=r.value,
                    samples=r.samples,
                    reason=r.reason,
                    at=from_epoch(r.at),
                )
        return found

    def save_memories(self, by_model: Mapping[str, Mapping[str, TriggerMemory]]) -> None:
        """Replace the memories of these models (triggers no longer present are dropped)."""
        if not by_model:
            return
        rows = [
            {
                "model": model,
                "trigger": name,
                "version": m.version,
                "streak": m.streak,
                "last_fired_at": to_epoch(m.last_fired_at) if m.last_fired_at else None,
                "status": m.status,
                "value": m.value,
                "samples": m.samples,
                "reason": m.reason[:2000],
                "at": to_epoch(m.at) if m.at else 0.0,
            }
            for model, memories in by_model.items()
            for name, m in memories.items()
        ]
        models = list(by_model)

        def write(conn: sa.Connection) -> None:
            for model in models:
                self.fencing.check(conn, model)
            for i in range(0, len(models), 500):
                conn.execute(TRIGGER.delete().where(TRIGGER.c.model.in_(models[i : i + 500])))
            if rows:
                conn.execute(TRIGGER.insert(), rows)

        self._writes.run(write)

    def status(self, *, now: datetime, model: str | None = None) -> list[dict[str, object]]:
        """What the guard knows, per model: each trigger's last judgement and streak, and
        the last guard action with whether its cooldown still holds (``GET /v1/guard``)."""
        memories = self.memories()
        actions = self.ledger.last_actions(Cause.GUARD)
        known = set(memories) | set(actions)
        names = sorted(known & {model} if model else known)
        out: list[dict[str, object]] = []
        for name in names:
            action = actions.get(name)
            out.append({
                "model": name,
                "triggers": {
                    trigger: {"version": m.version, "status": m.status, "value": m.value,
                              "samples": m.samples, "streak": m.streak, "reason": m.reason,
                              "at": m.at.isoformat() if m.at else None}
                    for trigger, m in sorted(memories.get(name, {}).items())
                },
                "last_action": None if action is None else {
                    "at": action.at.isoformat(), "outcome": action.outcome,
                    "from": action.from_version, "to": action.to_version,
                    "reason": action.reason,
                    "cooldown_until": action.cooldown_until.isoformat(),
                    "in_cooldown": now < action.cooldown_until,
                },
            })  # fmt: skip
        return out
