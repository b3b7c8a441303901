"""Rollouts and decisions in the registry's database, through SQLAlchemy Core.

The tables (``controller_rollout``, ``controller_decision`` and
``controller_pushed_route``, the last route pushed to a router per model) have
their own Alembic history under ``controller/migrations`` with the version table
``controller_alembic_version``, applied when the store is opened: the registry
knows nothing of them.

Crash safety is the shell's protocol (``controller.shell.tick``, ``.actuator``), supported by
three writes, each one transaction:

- ``record_intent``: the decision row (``applied = false``) and the rollout's
  ``intent`` (the decision id and the state to reach) together;
- ``confirm``: the rollout takes the intended state, the intent is cleared and
  the decision marked applied, together;
- ``record_hold``: decisions that change nothing outside the database are
  stored and applied at once (``record_holds``: many rollouts' in one transaction, a
  batched tick's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from controller.adapters.epoch import from_epoch, to_epoch
from controller.adapters.fencing import Fencing
from controller.adapters.rollout_records import (
    STATE_COLUMNS,
    DecisionRecord,
    Intent,
    RolloutRecord,
    state_columns,
)
from controller.adapters.writes import Writes
from controller.core.decisions import Decision
from controller.core.phases import ACTIVE, TERMINAL, Phase
from controller.errors import CannotStart, RolloutNotFound
from registry import db as registry_db
from registry.db import make_engine, reader
from serving.route import Route

__all__ = [
    "DecisionRecord",
    "Intent",
    "RolloutRecord",
    "RolloutStore",
    "Scheduled",
    "Stamp",
    "migrate",
    "stamp",
]

T = TypeVar("T")

VERSION_TABLE = "controller_alembic_version"
_MIGRATIONS = Path(__file__).parents[1] / "migrations"
_MIGRATE_LOCK_KEY = 0x6374_726C  # "ctrl"
_IDS_PER_QUERY = 1_000  # bound parameters of one ``IN`` list
# Holds per statement: 13 bound parameters each, under SQLite's 32,766 and PostgreSQL's
# 65,535 (a power of two: the statements are padded to one).
_HOLDS_PER_STATEMENT = 1_024

METADATA = sa.MetaData()
ROLLOUT = sa.Table(
    "controller_rollout",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128)),
    sa.Column("control", sa.String(64)),
    sa.Column("treatment", sa.String(64)),
    sa.Column("control_digest", sa.String(64)),
    sa.Column("treatment_digest", sa.String(64)),
    sa.Column("phase", sa.String(32)),
    sa.Column("step", sa.Integer),
    sa.Column("weight", sa.Float),
    sa.Column("started_at", sa.Float),
    sa.Column("step_started_at", sa.Float),
    sa.Column("next_eval_at", sa.Float),
    sa.Column("failures", sa.Integer),
    sa.Column("streaks", sa.Text),
    sa.Column("approved", sa.Boolean),
    sa.Column("revision", sa.Integer),
    sa.Column("intent", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("updated_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("evidence", sa.Text),
)
DECISION = sa.Table(
    "controller_decision",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.Integer),
    sa.Column("at", sa.Float),
    sa.Column("action", sa.String(32)),
    sa.Column("event", sa.String(32)),
    sa.Column("phase_from", sa.String(32)),
    sa.Column("phase_to", sa.String(32)),
    sa.Column("step", sa.Integer),
    sa.Column("weight", sa.Float),
    sa.Column("reasons", sa.Text),
    sa.Column("numbers", sa.Text),
    sa.Column("applied", sa.Boolean),
    sa.Column("member", sa.String(128)),  # who recorded it (several daemons), else NULL
)
PUSHED_ROUTE = sa.Table(
    "controller_pushed_route",
    METADATA,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("route", sa.Text),
    sa.Column("pushed_at", sa.Float),
)

# The per-model statements every alert and push runs, built once (building one costs
# more than SQLite takes to run it).
_ACTIVE_PHASES = [p.value for p in ACTIVE]
_NEWEST_OF_MODEL = {
    active: sa.select(ROLLOUT)
    .where(
        ROLLOUT.c.model == sa.bindparam("model"),
        ROLLOUT.c.phase.in_(_ACTIVE_PHASES) if active else ROLLOUT.c.phase.not_in(_ACTIVE_PHASES),
    )
    .order_by(ROLLOUT.c.id.desc())
    .limit(1)
    for active in (True, False)
}
_PUSHED_OF_MODEL = sa.select(PUSHED_ROUTE.c.route).where(
    PUSHED_ROUTE.c.model == sa.bindparam("model")
)
_SET_PUSHED = PUSHED_ROUTE.update().where(PUSHED_ROUTE.c.model == sa.bindparam("m"))

# ``record_holds``' two statements: each reads a ``VALUES`` table of bound parameters (one
# row per rollout, padded to a power of two with rows that match nothing), so that a chunk
# of holds is two plain statements. Not ``executemany``: psycopg pipelines it, and a
# member stopped in the middle of a pipeline never goes "idle in transaction" on the
# server, so the lease rows its fence locked would stay locked past the timeout the
# fence sets (``LeaseStore.fence``): the other members could never take its shards.
_DECISION_COLUMNS = [c for c in DECISION.columns if c.name != "id"]
_HOLD_COLUMNS = [ROLLOUT.c.id] + [
    ROLLOUT.c[name] for name in (*STATE_COLUMNS, "next_eval_at", "reason", "updated_at")
]
_NOTHING = -1  # a padding row's rollout id: no rollout has it


def _rows_table(columns: Sequence[sa.Column[Any]], size: int, name: str) -> sa.CTE:
    """``size`` rows of ``columns`` as a ``VALUES`` table of parameters ``r<row>_<column>``."""
    rows = [tuple(sa.bindparam(f"r{k}_{c.name}", type_=c.type) for c in columns)
            for k in range(size)]  # fmt: skip
    return sa.values(*[sa.column(c.name, c.type) for c in columns], name=name).data(rows).cte(name)


def _holds_insert(size: int) -> sa.Insert:
    table = _rows_table(_DECISION_COLUMNS, size, "held")
    names = [c.name for c in _DECISION_COLUMNS]
    rows = sa.select(*[table.c[n] for n in names]).where(table.c.rollout_id != _NOTHING)
    return DECISION.insert().from_select(names, rows)


def _holds_update(size: int) -> sa.Update:
    table = _rows_table(_HOLD_COLUMNS, size, "held")
    return (
        ROLLOUT.update()
        .where(ROLLOUT.c.id == table.c.id)
        .values({c.name: table.c[c.name] for c in _HOLD_COLUMNS[1:]})
    )


_HOLD_STATEMENTS: dict[str, Callable[[int], sa.Insert | sa.Update]] = {
    "insert": _holds_insert,
    "update": _holds_update,
}
_COMPILED_HOLDS: dict[tuple[str, str, int], tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}


def _run_rows(conn: sa.Connection, kind: str, rows: Sequence[dict[str, Any]]) -> None:
    """One of ``record_holds``' statements over ``rows`` (column -> value), padded."""
    size = 1 << (len(rows) - 1).bit_length()
    key = (f"{conn.dialect.name}+{conn.dialect.driver}", kind, size)
    found = _COMPILED_HOLDS.get(key)
    if found is None:
        compiled = _HOLD_STATEMENTS[kind](size).compile(dialect=conn.dialect)
        order = tuple(compiled.positiontup or ()) if conn.dialect.positional else None
        found = _COMPILED_HOLDS[key] = (str(compiled), order, dict(compiled.params))
    sql, order, defaults = found
    values = dict(defaults)
    columns = _DECISION_COLUMNS if kind == "insert" else _HOLD_COLUMNS
    padding = {c.name: None for c in columns} | {
        "rollout_id" if kind == "insert" else "id": _NOTHING
    }
    for k in range(size):
        row = rows[k] if k < len(rows) else padding
        values.update({f"r{k}_{name}": value for name, value in row.items()})
    params: Any = values if order is None else tuple(values[name] for name in order)
    conn.exec_driver_sql(sql, params)


_STAMPS = sa.select(
    ROLLOUT.c.id, ROLLOUT.c.updated_at, ROLLOUT.c.next_eval_at, ROLLOUT.c.revision,
    ROLLOUT.c.intent, ROLLOUT.c.phase, ROLLOUT.c.step, ROLLOUT.c.weight,
    ROLLOUT.c.step_started_at, ROLLOUT.c.failures, ROLLOUT.c.approved, ROLLOUT.c.streaks,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scheduled:
    """An active rollout's schedule (``RolloutStore.schedule``)."""

    id: int
    model: str
    treatment: str
    next_eval_at: datetime
    has_intent: bool


Stamp = tuple[object, ...]
"""What any write of a rollout changes (``RolloutStore.stamps``, ``stamp``): its time
and schedule with the clock, its intent, revision or state."""


def stamp(record: RolloutRecord) -> Stamp:
    """``record``'s stamp, to compare with ``RolloutStore.stamps``."""
    return (
        record.updated_at, record.next_eval_at, record.revision, record.intent is None,
        record.phase, record.step, record.weight, record.step_started_at, record.failures,
        record.approved, dict(record.streaks),
    )  # fmt: skip


def migrate(engine: sa.Engine) -> None:
    """Upgrade the controller's tables (its own history and version table) to head."""
    registry_db.migrate(
        engine,
        script_location=_MIGRATIONS,
        version_table=VERSION_TABLE,
        lock_key=_MIGRATE_LOCK_KEY,
    )


class RolloutStore:
    """The controller's tables; migrated when opened."""

    def __init__(
        self, engine: sa.Engine, *, fencing: Fencing | None = None, migrated: bool = True
    ) -> None:
        self._engine = engine
        self._reader = reader(engine)  # reads begin deferred on SQLite
        # Checked inside every write transaction for a model (several daemons: the
        # shard's lease and fencing token); shared with the ledger and the guard's table.
        self.fencing = fencing or Fencing()
        # Write transactions: group-committed with the registry's once the daemon
        # calls ``writes.share`` (shared with the ledgers).
        self.writes = Writes(engine)
        if migrated:  # False: a reader of tables known to be current (``up_to_date``)
            migrate(engine)

    @contextmanager
    def fenced(self, model: str) -> Iterator[None]:
        """Around an effect outside the database (a route push): raise unless this
        process may still write for ``model``, and hold the fence until the effect is
        done. On PostgreSQL the shard's lease row stays locked meanwhile, so no other
        member can take the shard over between the check and the push: a push is the
        owner's, whole. Nothing to hold without a fence (one daemon)."""
        if self.fencing.fence is None:
            yield
            return
        with self._engine.begin() as conn:  # held across the effect: not a shared write
            self.fencing.check(conn, model)
            yield

    def _write(self, model: str, write: Callable[[sa.Connection], T]) -> T:
        """``write`` in a write transaction for ``model`` (``Writes.run``), fenced first
        when a fence is set."""

        def fenced_write(conn: sa.Connection) -> T:
            self.fencing.check(conn, model)
            return write(conn)

        return self.writes.run(fenced_write)

    @staticmethod
    def up_to_date(engine: sa.Engine) -> bool:
        """Whether the controller's tables are there at this code's revision (a reader
        that must not migrate, like the read-only dashboard, uses them only then)."""
        head = registry_db.head_revision(_MIGRATIONS)
        return registry_db.current_revision(engine, version_table=VERSION_TABLE) == head

    @classmethod
    def open(cls, url: str) -> RolloutStore:
        return cls(make_engine(url))

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    # -- reads -------------------------------------------------------------------

    def get(self, rollout_id: int) -> RolloutRecord:
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(ROLLOUT).where(ROLLOUT.c.id == rollout_id)).first()
        if row is None:
            raise RolloutNotFound(f"no rollout with id {rollout_id}")
        return RolloutRecord.from_row(row)

    def schedule(self) -> list[Scheduled]:
        """Every active rollout's id, model, candidate, ``next_eval_at`` and whether it
        carries an intent, oldest first: one light query (no state parsed), for a
        batched tick to pick the rollouts it owns and that are due before it reads them."""
        query = (
            sa.select(ROLLOUT.c.id, ROLLOUT.c.model, ROLLOUT.c.treatment, ROLLOUT.c.next_eval_at,
                      ROLLOUT.c.intent.is_not(None).label("has_intent"))
            .where(ROLLOUT.c.phase.in_([p.value for p in ACTIVE]))
            .order_by(ROLLOUT.c.id)
        )  # fmt: skip
        with self._reader.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Scheduled(r.id, r.model, r.treatment, from_epoch(r.next_eval_at), bool(r.has_intent))
            for r in rows
        ]

    def get_many(self, ids: Iterable[int]) -> dict[int, RolloutRecord]:
        """The rollouts of ``ids`` that exist, by id: one query per 1,000 ids."""
        wanted = sorted(set(ids))
        found: dict[int, RolloutRecord] = {}
        with self._reader.connect() as conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                for row in conn.execute(sa.select(ROLLOUT).where(ROLLOUT.c.id.in_(chunk))):
                    found[row.id] = RolloutRecord.from_row(row)
        return found

    def stamps(self, ids: Iterable[int]) -> dict[int, Stamp]:
        """``stamp`` of the rollouts of ``ids`` that exist, read without their evidence:
        one light query per 1,000 ids, to tell whether they changed since read."""
        wanted = sorted(set(ids))
        found: dict[int, Stamp] = {}
        with self._reader.connect() as conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                for row in conn.execute(_STAMPS.where(ROLLOUT.c.id.in_(chunk))):
                    found[row.id] = (
                        from_epoch(row.updated_at), from_epoch(row.next_eval_at), row.revision,
                        row.intent is None, Phase(row.phase), row.step, row.weight,
                        from_epoch(row.step_started_at), row.failures, bool(row.approved),
                        json.loads(row.streaks),
                    )  # fmt: skip
        return found

    def list_rollouts(
        self, *, model: str | None = None, active: bool | None = None, limit: int = 100
    ) -> list[RolloutRecord]:
        """Rollouts, newest first."""
        query = sa.select(ROLLOUT).order_by(ROLLOUT.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(ROLLOUT.c.model == model)
        if active is not None:
            phases = [p.value for p in ACTIVE]
            query = query.where(
                ROLLOUT.c.phase.in_(phases) if active else ROLLOUT.c.phase.not_in(phases)
            )
        with self._reader.connect() as conn:
            return [RolloutRecord.from_row(r) for r in conn.execute(query)]

    def active(self) -> list[RolloutRecord]:
        return sorted(self.list_rollouts(active=True, limit=1_000_000), key=lambda r: r.id)

    def active_for(self, model: str) -> RolloutRecord | None:
        return self._newest_of(model, active=True)

    def _newest_of(self, model: str, *, active: bool) -> RolloutRecord | None:
        """``list_rollouts(model=model, active=active, limit=1)``, on a statement built
        once: every alert and push asks it, and building costs more than running it."""
        with self._reader.connect() as conn:
            row = conn.execute(_NEWEST_OF_MODEL[active], {"model": model}).first()
        return None if row is None else RolloutRecord.from_row(row)

    def exists(self, model: str, treatment: str) -> bool:
        with self._reader.connect() as conn:
            return (
                conn.execute(
                    sa.select(ROLLOUT.c.id).where(
                        ROLLOUT.c.model == model, ROLLOUT.c.treatment == treatment
                    )
                ).first()
                is not None
            )

    def latest_finished(self, model: str) -> RolloutRecord | None:
        return self._newest_of(model, active=False)

    def active_for_models(self, models: Iterable[str]) -> dict[str, RolloutRecord]:
        """``active_for`` of several models: one query per 1,000 models."""
        return self._newest_by_model(models, active=True)

    def latest_finished_for_models(self, models: Iterable[str]) -> dict[str, RolloutRecord]:
        """``latest_finished`` of several models: one query per 1,000 models."""
        return self._newest_by_model(models, active=False)

    def latest_finished_by_model(self) -> dict[str, RolloutRecord]:
        """``latest_finished`` of every model in one query (the watcher's snapshot)."""
        return self._newest_by_model(None, active=False)

    def _newest_by_model(
        self, models: Iterable[str] | None, *, active: bool
    ) -> dict[str, RolloutRecord]:
        """Each model's newest active (or finished) rollout, of ``models`` (None: of
        every model), one query per 1,000 models."""
        phases = [p.value for p in ACTIVE]
        in_phase = ROLLOUT.c.phase.in_(phases) if active else ROLLOUT.c.phase.not_in(phases)
        wanted = None if models is None else sorted(set(models))
        chunks = [None] if wanted is None else [
            wanted[k : k + _IDS_PER_QUERY] for k in range(0, len(wanted), _IDS_PER_QUERY)
        ]  # fmt: skip
        found: dict[str, RolloutRecord] = {}
        with self._reader.connect() as conn:
            for chunk in chunks:
                newest = sa.select(sa.func.max(ROLLOUT.c.id)).where(in_phase)
                if chunk is not None:
                    newest = newest.where(ROLLOUT.c.model.in_(chunk))
                query = sa.select(ROLLOUT).where(
                    ROLLOUT.c.id.in_(newest.group_by(ROLLOUT.c.model).scalar_subquery())
                )
                for row in conn.execute(query):
                    found[row.model] = RolloutRecord.from_row(row)
        return found

    def decisions(self, rollout_id: int, *, limit: int = 1000) -> list[DecisionRecord]:
        """The rollout's decisions, oldest first (the last ``limit``)."""
        query = (
            sa.select(DECISION)
            .where(DECISION.c.rollout_id == rollout_id)
            .order_by(DECISION.c.id.desc())
            .limit(limit)
        )
        with self._reader.connect() as conn:
            rows = list(conn.execute(query))
        return [
            DecisionRecord(
                id=r.id,
                rollout_id=r.rollout_id,
                at=from_epoch(r.at),
                action=r.action,
                event=r.event,
                phase_from=r.phase_from,
                phase_to=r.phase_to,
                step=r.step,
                weight=r.weight,
                reasons=tuple(json.loads(r.reasons)),
                numbers=json.loads(r.numbers),
                applied=bool(r.applied),
                member=r.member,
            )
            for r in reversed(rows)
        ]

    def pushed_route(self, model: str) -> Route | None:
        """The last route pushed for ``model`` (``record_pushed``), if any."""
        with self._reader.connect() as conn:
            text = conn.execute(_PUSHED_OF_MODEL, {"model": model}).scalar()
        return Route.from_dict(json.loads(text)) if text is not None else None

    def pushed_routes(self, models: Iterable[str]) -> dict[str, Route | None]:
        """``pushed_route`` of several models (None where none was pushed): one query
        per 1,000 models."""
        wanted = sorted(set(models))
        found: dict[str, Route | None] = dict.fromkeys(wanted)
        with self._reader.connect() as conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                query = sa.select(PUSHED_ROUTE.c.model, PUSHED_ROUTE.c.route).where(
                    PUSHED_ROUTE.c.model.in_(wanted[start : start + _IDS_PER_QUERY])
                )
                for model, text in conn.execute(query):
                    found[model] = Route.from_dict(json.loads(text))
        return found

    # -- writes ------------------------------------------------------------------

    def record_pushed(self, route: Route, *, now: datetime) -> None:
        """Remember ``route`` as the last pushed for its model (one row per model)."""
        values = {"route": json.dumps(route.to_dict(), sort_keys=True), "pushed_at": to_epoch(now)}

        def write(conn: sa.Connection) -> None:
            if not conn.execute(_SET_PUSHED, {"m": route.model, **values}).rowcount:
                conn.execute(PUSHED_ROUTE.insert(), {"model": route.model, **values})

        self._write(route.model, write)

    def create(
        self,
        *,
        model: str,
        control: str,
        treatment: str,
        control_digest: str | None,
        treatment_digest: str,
        now: datetime,
        reason: str,
    ) -> RolloutRecord:
        """A new rollout in ``pending``; ``CannotStart`` if one is active for the model
        or this candidate already had a rollout."""
        t = to_epoch(now)

        def write(conn: sa.Connection) -> Any:
            return conn.execute(
                ROLLOUT.insert().values(
                    model=model,
                    control=control,
                    treatment=treatment,
                    control_digest=control_digest,
                    treatment_digest=treatment_digest,
                    phase=Phase.PENDING.value,
                    step=-1,
                    weight=0.0,
                    started_at=t,
                    step_started_at=t,
                    next_eval_at=t,
                    failures=0,
                    streaks="{}",
                    approved=False,
                    revision=0,
                    intent=None,
                    reason=reason,
                    updated_at=t,
                    finished_at=None,
                )
            ).inserted_primary_key

        try:
            rollout_id = self._write(model, write)
        except sa.exc.IntegrityError:
            raise CannotStart(
                f"{model}: a rollout is already active, or {treatment} already had one"
            ) from None
        assert rollout_id is not None
        return self.get(int(rollout_id[0]))

    def _decision_row(
        self, record: RolloutRecord, decision: Decision, t: float, applied: bool
    ) -> dict[str, object]:
        return {
            "rollout_id": record.id,
            "at": t,
            "action": decision.action,
            "event": decision.event.value,
            "phase_from": record.phase.value,
            "phase_to": decision.state.phase.value,
            "step": decision.state.step,
            "weight": decision.state.weight,
            "reasons": json.dumps(list(decision.reasons)),
            "numbers": json.dumps({**decision.numbers, "cause": decision.cause.value}, default=str),
            "applied": applied,
            "member": self.fencing.member,
        }

    def _insert_decision(
        self,
        conn: sa.Connection,
        record: RolloutRecord,
        decision: Decision,
        t: float,
        applied: bool,
    ) -> int:
        row = self._decision_row(record, decision, t, applied)
        pk = conn.execute(DECISION.insert().values(**row)).inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def record_intent(
        self, record: RolloutRecord, decision: Decision, *, now: datetime, next_eval_at: datetime
    ) -> Intent:
        """Store the decision (not yet applied) and the intent to reach its state."""
        t = to_epoch(now)

        def write(conn: sa.Connection) -> Intent:
            current = conn.execute(
                sa.select(ROLLOUT.c.intent, ROLLOUT.c.updated_at).where(ROLLOUT.c.id == record.id)
            ).first()
            if (
                current is None
                or current.intent is not None
                or current.updated_at != to_epoch(record.updated_at)
            ):
                raise RolloutNotFound(f"rollout {record.id} changed concurrently; re-read it")
            decision_id = self._insert_decision(conn, record, decision, t, applied=False)
            intent = Intent(
                decision_id=decision_id,
                action=decision.action,
                state=decision.state,
                revision=record.revision + 1,
                next_eval_at=to_epoch(next_eval_at),
            )
            conn.execute(
                ROLLOUT.update()
                .where(ROLLOUT.c.id == record.id)
                .values(intent=intent.to_json(), updated_at=t)
            )
            return intent

        return self._write(record.model, write)

    def confirm(self, rollout_id: int, intent: Intent, *, now: datetime, reason: str) -> None:
        """The intent's effects are applied: take its state, mark the decision applied."""
        t = to_epoch(now)
        values = state_columns(intent.state)
        finished = intent.state.phase in TERMINAL

        def write(conn: sa.Connection) -> None:
            conn.execute(
                ROLLOUT.update()
                .where(ROLLOUT.c.id == rollout_id)
                .values(
                    **values,
                    revision=intent.revision,
                    next_eval_at=intent.next_eval_at,
                    intent=None,
                    reason=reason,
                    updated_at=t,
                    finished_at=t if finished else None,
                )
            )
            conn.execute(
                DECISION.update().where(DECISION.c.id == intent.decision_id).values(applied=True)
            )

        self._write(intent.state.model, write)

    def abandon(self, rollout_id: int, intent: Intent, *, now: datetime, reason: str) -> None:
        """The intent cannot be applied (e.g. the registry wants approvals): drop it and
        keep the rollout where it was, with the reason; the decision stays unapplied."""
        self._write(intent.state.model, lambda conn: conn.execute(
            ROLLOUT.update()
            .where(ROLLOUT.c.id == rollout_id)
            .values(intent=None, approved=False, reason=reason, updated_at=to_epoch(now))
        ))  # fmt: skip

    def record_hold(
        self,
        record: RolloutRecord,
        decision: Decision,
        *,
        now: datetime,
        next_eval_at: datetime,
        store_decision: bool = True,
    ) -> None:
        """A decision with no outside effect: update the state and store it, applied."""
        t = to_epoch(now)

        def write(conn: sa.Connection) -> None:
            if store_decision:
                self._insert_decision(conn, record, decision, t, applied=True)
            conn.execute(
                ROLLOUT.update()
                .where(ROLLOUT.c.id == record.id)
                .values(
                    **state_columns(decision.state),
                    next_eval_at=to_epoch(next_eval_at),
                    reason=decision.reason,
                    updated_at=t,
                )
            )

        self._write(record.model, write)

    def record_holds(
        self, holds: Sequence[tuple[RolloutRecord, Decision, datetime]], *, now: datetime
    ) -> None:
        """``record_hold`` of many rollouts, each ``(record, decision, next_eval_at)``, in
        one transaction: every model fenced first (several daemons: a shard once, see
        ``Membership.fence``), then one insert of the decisions and one update of the
        rollouts per 1,024 holds, each a single statement over a table of their values
        (not ``executemany``: see ``_run_rows``). All or nothing: a refused fence or a
        failed write stores none of them."""
        if not holds:
            return
        t = to_epoch(now)
        decisions = [self._decision_row(r, d, t, True) for r, d, _ in holds]
        updates = []
        for record, decision, next_eval_at in holds:
            values = state_columns(decision.state)
            values.update(id=record.id, next_eval_at=to_epoch(next_eval_at),
                          reason=decision.reason, updated_at=t)  # fmt: skip
            updates.append(values)

        def write(conn: sa.Connection) -> None:
            for model in sorted({r.model for r, _, _ in holds}):
                self.fencing.check(conn, model)
            for begin in range(0, len(holds), _HOLDS_PER_STATEMENT):
                _run_rows(conn, "insert", decisions[begin : begin + _HOLDS_PER_STATEMENT])
                _run_rows(conn, "update", updates[begin : begin + _HOLDS_PER_STATEMENT])

        self.writes.run(write)
