"""The production ledger: every production rollback the controller made or began.

One table (``controller_production_action``, migration ``c0006``) for the guard and
for alerts, so that production has one rollback path with one idempotence record
(``controller.core.production``). On the registry's own SQLite file the row commits
in the registry's rollback transaction (``record``): the move and its row land
together or not at all. Elsewhere (an MLflow front, a separate database) a row is
written ``pending`` before the registry call and finished after it: a crash in between
leaves the pending row, which the rule reads (production moved: it was done;
production did not move: finish it). The guard reads its newest own action for the
cooldown; an alert reads the rows of its instance.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from controller.adapters.epoch import from_epoch, to_epoch
from controller.adapters.fencing import Fencing
from controller.adapters.rollout_store import METADATA
from controller.adapters.writes import Writes
from controller.core.causes import Cause
from controller.core.production import ActionOutcome, ProductionAction, RollbackRequest
from registry.db import reader

__all__ = ["ProductionLedger"]

ACTION = sa.Table(
    "controller_production_action",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128)),
    sa.Column("at", sa.Float),
    sa.Column("from_version", sa.String(64)),
    sa.Column("to_version", sa.String(64)),
    sa.Column("outcome", sa.String(32)),
    sa.Column("reason", sa.Text),
    sa.Column("cooldown_until", sa.Float),
    sa.Column("cause", sa.String(32)),
    sa.Column("instance", sa.Text),
    sa.Column("actor", sa.String(128)),
)
_OUTCOMES: tuple[ActionOutcome, ...] = ("pending", "rolled_back", "nothing_to_roll_back", "failed")
# An alert's rollback runs these; built once (building one costs more than running it).
_OF_MODEL = sa.select(ACTION).where(ACTION.c.model == sa.bindparam("model")).order_by(ACTION.c.id)
_OF_INSTANCE = _OF_MODEL.where(ACTION.c.instance == sa.bindparam("instance"))
_INSERT = ACTION.insert()
_MODEL_OF = sa.select(ACTION.c.model).where(ACTION.c.id == sa.bindparam("action_id"))
_FINISH = ACTION.update().where(ACTION.c.id == sa.bindparam("action_id"))


def _action(row: sa.Row[tuple[object, ...]]) -> ProductionAction:
    m = row._mapping
    outcome = next(o for o in _OUTCOMES if o == m["outcome"])
    return ProductionAction(
        model=str(m["model"]),
        at=from_epoch(float(m["at"])),
        from_version=str(m["from_version"]),
        to_version=None if m["to_version"] is None else str(m["to_version"]),
        outcome=outcome,
        reason=str(m["reason"]),
        cooldown_until=from_epoch(float(m["cooldown_until"])),
        cause=Cause(str(m["cause"])),
        instance=None if m["instance"] is None else str(m["instance"]),
        id=int(str(m["id"])),
    )


class ProductionLedger:
    """The ledger's table on the controller's engine (migrated by ``RolloutStore``)."""

    def __init__(
        self, engine: sa.Engine, *, fencing: Fencing | None = None, writes: Writes | None = None
    ) -> None:
        self._reader = reader(engine)  # reads begin deferred on SQLite
        self.fencing = fencing or Fencing()  # checked inside each write (several daemons)
        self._writes = writes or Writes(engine)  # the rollout store's: group-committed

    def last_actions(self, cause: Cause) -> dict[str, ProductionAction]:
        """The newest action of ``cause`` of every model that had one."""
        newest = (
            sa.select(sa.func.max(ACTION.c.id))
            .where(ACTION.c.cause == cause.value)
            .group_by(ACTION.c.model)
            .scalar_subquery()
        )
        with self._reader.connect() as conn:
            return {
                r.model: _action(r)
                for r in conn.execute(sa.select(ACTION).where(ACTION.c.id.in_(newest)))
            }

    def recent(self, limit: int = 100) -> list[ProductionAction]:
        """The newest actions of every model and cause, newest first."""
        with self._reader.connect() as conn:
            rows = conn.execute(sa.select(ACTION).order_by(ACTION.c.id.desc()).limit(limit))
            return [_action(r) for r in rows]

    def actions(self, model: str, *, instance: str | None = None) -> list[ProductionAction]:
        """A model's actions (of one request instance, if given), oldest first."""
        query, params = (
            (_OF_MODEL, {"model": model})
            if instance is None
            else (_OF_INSTANCE, {"model": model, "instance": instance})
        )
        with self._reader.connect() as conn:
            return [_action(r) for r in conn.execute(query, params)]

    def begin(self, request: RollbackRequest, from_version: str, *, now: datetime) -> int:
        """Record a rollback about to be made (``pending``), before the registry call."""
        return self._writes.run(
            lambda conn: self.record(conn, request, from_version, now=now, outcome="pending")
        )

    def record(
        self,
        conn: sa.Connection,
        request: RollbackRequest,
        from_version: str,
        *,
        now: datetime,
        outcome: ActionOutcome,
        to_version: str | None = None,
        reason: str | None = None,
    ) -> int:
        """In ``conn``'s transaction: a row for ``request`` with ``outcome``; its id.
        ``rolled_back`` in the registry's own rollback transaction needs no ``pending``
        row first: the two commit together or not at all."""
        self.fencing.check(conn, request.model)
        pk = conn.execute(
            _INSERT,
            {
                "model": request.model,
                "at": to_epoch(now),
                "from_version": from_version,
                "to_version": to_version,
                "outcome": outcome,
                "reason": (request.reason if reason is None else reason)[:2000],
                "cooldown_until": to_epoch(request.cooldown_until or now),
                "cause": request.cause.value,
                "instance": request.instance,
                "actor": request.actor[:128],
            },
        ).inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def record_alone(
        self,
        request: RollbackRequest,
        from_version: str,
        *,
        now: datetime,
        outcome: ActionOutcome,
        reason: str,
    ) -> int:
        """``record`` in a transaction of its own (a rollback the registry refused)."""
        return self._writes.run(
            lambda conn: self.record(
                conn, request, from_version, now=now, outcome=outcome, reason=reason
            )
        )

    def finish(
        self, action_id: int, outcome: ActionOutcome, *, to_version: str | None, reason: str
    ) -> None:
        """What became of the rollback recorded by ``begin``."""
        self._writes.run(
            lambda conn: self.finish_in(
                conn, action_id, outcome, to_version=to_version, reason=reason
            )
        )

    def finish_in(
        self,
        conn: sa.Connection,
        action_id: int,
        outcome: ActionOutcome,
        *,
        to_version: str | None,
        reason: str,
    ) -> None:
        """``finish`` in ``conn``'s transaction."""
        model = conn.execute(_MODEL_OF, {"action_id": action_id}).scalar()
        if model is not None:
            self.fencing.check(conn, str(model))
        conn.execute(
            _FINISH,
            {"action_id": action_id, "outcome": outcome, "to_version": to_version,
             "reason": reason[:2000]},
        )  # fmt: skip
