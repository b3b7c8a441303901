"""The guard's memory in the database (tables of migration ``c0002``), so that a
restarted daemon keeps every trigger's streak and every model's cooldown.

Reads load everything in one query per table (one guard pass over 1,000 models
must not cost 1,000 reads); a pass's trigger memories are written in one
transaction at its end. Losing a pass's memories in a crash only delays a firing
by a pass; it can never cause one. Guard actions are written around the registry
call (``begin_action`` before, ``finish_action`` after).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import sqlalchemy as sa

from controller.core.guard import ActionOutcome, GuardAction, TriggerMemory
from controller.store import METADATA

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
ACTION = sa.Table(
    "controller_guard_action",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128)),
    sa.Column("at", sa.Float),
    sa.Column("from_version", sa.String(64)),
    sa.Column("to_version", sa.String(64)),
    sa.Column("outcome", sa.String(32)),
    sa.Column("reason", sa.Text),
    sa.Column("cooldown_until", sa.Float),
)
_OUTCOMES: tuple[ActionOutcome, ...] = ("pending", "rolled_back", "nothing_to_roll_back", "failed")


def _ts(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _action(row: sa.Row[tuple[object, ...]]) -> GuardAction:
    m = row._mapping
    outcome = next(o for o in _OUTCOMES if o == m["outcome"])
    return GuardAction(
        model=str(m["model"]),
        at=_dt(float(m["at"])),
        from_version=str(m["from_version"]),
        to_version=None if m["to_version"] is None else str(m["to_version"]),
        outcome=outcome,
        reason=str(m["reason"]),
        cooldown_until=_dt(float(m["cooldown_until"])),
    )


class GuardStore:
    """The two guard tables on the controller's engine (migrated by ``RolloutStore``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def memories(self) -> dict[str, dict[str, TriggerMemory]]:
        """Every trigger's memory, by model and trigger name."""
        found: dict[str, dict[str, TriggerMemory]] = {}
        with self._engine.connect() as conn:
            for r in conn.execute(sa.select(TRIGGER)):
                found.setdefault(r.model, {})[r.trigger] = TriggerMemory(
                    version=r.version,
                    streak=r.streak,
                    last_fired_at=_dt(r.last_fired_at) if r.last_fired_at is not None else None,
                    status=r.status,
                    value=r.value,
                    samples=r.samples,
                    reason=r.reason,
                    at=_dt(r.at),
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
                "last_fired_at": _ts(m.last_fired_at) if m.last_fired_at else None,
                "status": m.status,
                "value": m.value,
                "samples": m.samples,
                "reason": m.reason[:2000],
                "at": _ts(m.at) if m.at else 0.0,
            }
            for model, memories in by_model.items()
            for name, m in memories.items()
        ]
        models = list(by_model)
        with self._engine.begin() as conn:
            for i in range(0, len(models), 500):
                conn.execute(TRIGGER.delete().where(TRIGGER.c.model.in_(models[i : i + 500])))
            if rows:
                conn.execute(TRIGGER.insert(), rows)

    def last_actions(self) -> dict[str, GuardAction]:
        """The newest guard action of every model that had one."""
        newest = sa.select(sa.func.max(ACTION.c.id)).group_by(ACTION.c.model).scalar_subquery()
        with self._engine.connect() as conn:
            return {
                r.model: _action(r)
                for r in conn.execute(sa.select(ACTION).where(ACTION.c.id.in_(newest)))
            }

    def status(self, *, now: datetime, model: str | None = None) -> list[dict[str, object]]:
        """What the guard knows, per model: each trigger's last judgement and streak, and
        the last guard action with whether its cooldown still holds (``GET /v1/guard``)."""
        memories = self.memories()
        actions = self.last_actions()
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

    def actions(self, model: str) -> list[GuardAction]:
        """A model's guard actions, oldest first."""
        query = sa.select(ACTION).where(ACTION.c.model == model).order_by(ACTION.c.id)
        with self._engine.connect() as conn:
            return [_action(r) for r in conn.execute(query)]

    def begin_action(
        self, model: str, from_version: str, *, now: datetime, until: datetime, reason: str
    ) -> int:
        """Record a rollback about to be made (``pending``), before the registry call."""
        with self._engine.begin() as conn:
            pk = conn.execute(
                ACTION.insert().values(
                    model=model,
                    at=_ts(now),
                    from_version=from_version,
                    to_version=None,
                    outcome="pending",
                    reason=reason[:2000],
                    cooldown_until=_ts(until),
                )
            ).inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def finish_action(
        self, action_id: int, outcome: ActionOutcome, *, to_version: str | None, reason: str
    ) -> None:
        """What became of the rollback recorded by ``begin_action``."""
        with self._engine.begin() as conn:
            conn.execute(
                ACTION.update()
                .where(ACTION.c.id == action_id)
                .values(outcome=outcome, to_version=to_version, reason=reason[:2000])
            )
