"""Invariants of a registry and controller database, checked after any test that
drives the daemon (one daemon or several), on SQLite or PostgreSQL.

``violations(url, ...)`` runs every check and returns one line per violation, each
naming the model, version or rollout it is about (empty: all hold);
``assert_invariants(url, ...)`` fails the test with all of them. The checks, each
also usable on its own with an open registry and store:

- ``database_intact``: SQLite's ``PRAGMA integrity_check`` is ``ok`` and
  ``foreign_key_check`` finds nothing. On PostgreSQL, consistency queries over every
  table and index of the schema the URL's connections use (``current_schema()``, as
  the ``options=-csearch_path=...`` of the test URLs sets it): every index is valid,
  ready and live in ``pg_index`` (a failed ``CREATE INDEX CONCURRENTLY`` leaves one
  that is not); every B-tree index passes ``amcheck``'s ``bt_index_check`` with
  ``heapallindexed`` (its structure is sound and every row is in it: the extension is
  created, in ``public``, when missing, and its absence from the server is itself a
  violation); no row of any foreign key's table lacks its parent row (rows written
  with ``session_replication_role = replica``, or before a ``NOT VALID`` constraint,
  were never checked); no constraint is ``NOT VALID`` and no foreign key has its
  triggers disabled. Nothing names a table: whatever schema the registry, the
  controller and their migrations made is checked.
- ``artifacts_verify``: every artifact a version references is in the store and hashes
  to its digest.
- ``one_production_per_model``: at most one version of a model is in production.
- ``audit_chain_verifies``: the registry's hash-chained audit log is intact
  (``ModelRegistry.verify_audit_chain``).
- ``stage_moves_legal``: every stage change is one the lifecycle allows for its kind
  (registration, promotion along ``registry.stages.LEGAL``, rollback, a forced move
  with a reason) and starts where the version's previous change ended.
- ``stage_changes_audited``: every stage change in a model's history (registration
  included) has exactly one audit event, and every audit event of a stage change has
  exactly one stage change (matched on version, from/to stage, kind, actor and time:
  both are written by one transaction with one timestamp).
- ``router_matches_database``: for each model, the router holds what the database
  says serving should have (``Actuator.desired_route``: the active rollout's split,
  its pending intent's if any, else all traffic to production): the same versions,
  weights, digests and sticky-assignment salt. Revisions are not compared with the
  desired route's (a push rebases its revision above whatever serving held, see
  ``controller.core.routes.rebased``), but the router must hold exactly the route the
  database recorded as last pushed (``controller_pushed_route``), revision included.
  Routes change while rollouts run, so a model that differs is read again until it
  agrees or ``settle`` seconds pass; only a lasting difference is a violation.
- ``promotions_have_passing_analysis``: every promoted rollout has one applied
  ``promote`` decision backed by a passing analysis recorded with it (its numbers'
  ``verdict`` is ``promote``, or, when it was approved, the ``await_approval``
  decision before it says so), and every move into production the controller made
  in the registry (its actor, or a reason naming a rollout) belongs to such a rollout.

``decisions_follow_policy(decisions, steps)`` is the per-rollout check for crash and
takeover tests: the applied state-changing decisions of one rollout start at the
first step, advance one step at a time in the policy's order, record each
transition once and end at most once. It takes decisions as ``DecisionRecord`` or
as the explain API's dicts.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.adapters.rollout_records import DecisionRecord
from controller.adapters.rollout_store import RolloutStore
from controller.core.phases import Phase
from controller.shell.actuator import Actuator
from registry import ModelRegistry, NotFound
from registry.db import make_engine, sqlite_path
from registry.stages import LEGAL, REGISTER_STAGES
from serving.route import Route

__all__ = [
    "CONTROLLER_ACTOR",
    "assert_invariants",
    "audit_chain_verifies",
    "decisions_follow_policy",
    "one_production_per_model",
    "promotions_have_passing_analysis",
    "router_matches_database",
    "stage_changes_audited",
    "violations",
]

CONTROLLER_ACTOR = "modelreg-controller"  # the registry actor of the controller's moves
STATE_CHANGING = frozenset({"set_weight", "promote", "rollback", "pause", "await_approval"})
ReadRoute = Callable[[str], Route | None]
_ROLLOUT_REASON = re.compile(r"^rollout (\d+):")


def violations(
    url: str,
    *,
    home: Path,
    read_route: ReadRoute | None = None,
    models: Iterable[str] | None = None,
    settle: float = 10.0,
    controller_actor: str = CONTROLLER_ACTOR,
) -> list[str]:
    """Every invariant on the database at ``url`` (registry ``home`` for artifacts); the
    router check runs when ``read_route`` is given, over ``models`` (default: every
    model of the registry)."""
    damaged = database_intact(url)
    if damaged:  # the other checks read through it: they would only repeat this
        return damaged
    with ModelRegistry(url, home=home, actor="invariants") as registry:
        store = RolloutStore(make_engine(url))
        try:
            found = artifacts_verify(registry)
            found += one_production_per_model(registry)
            found += audit_chain_verifies(registry)
            found += stage_moves_legal(registry)
            found += stage_changes_audited(registry)
            found += promotions_have_passing_analysis(registry, store, actor=controller_actor)
            if read_route is not None:
                names = list(models) if models is not None else _models(registry)
                found += router_matches_database(registry, store, read_route, names,
                                                 settle=settle)  # fmt: skip
            return found
        finally:
            store.close()


def assert_invariants(url: str, *, home: Path, **options: Any) -> None:
    """Fail the test with every violation of ``violations(url, home=home, **options)``."""
    found = violations(url, home=home, **options)
    if found:
        pytest.fail(f"{len(found)} invariant violation(s):\n  " + "\n  ".join(found))


def _models(registry: ModelRegistry) -> list[str]:
    return sorted({m.name for m in registry.list_models()})


# -- the registry --------------------------------------------------------------------


def database_intact(url: str) -> list[str]:
    """SQLite: ``PRAGMA integrity_check`` and ``foreign_key_check`` find nothing (read
    with a plain connection: a damaged file may not open as a registry at all).
    PostgreSQL: ``_postgres_intact`` over the schema the URL's connections use."""
    path = sqlite_path(url)
    if path is None:
        if sa.make_url(url).get_backend_name() == "postgresql":
            return _postgres_intact(url)
        return []
    try:
        with closing(sqlite3.connect(path)) as conn:
            integrity = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            keys = list(conn.execute("PRAGMA foreign_key_check"))
    except sqlite3.DatabaseError as exc:
        return [f"database: {exc}"]
    found = [] if integrity == ["ok"] else [f"database: integrity_check: {'; '.join(integrity)}"]
    found += [f"database: foreign key broken: {tuple(row)}" for row in keys]
    return found


# The tables' schema: the first one on the search path (the URL's ``options``).
_SCHEMA = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
_AMCHECK_LOCK = 0x6D72_6163  # "mrac": serialises CREATE EXTENSION between sessions

_FLAGS = ("indisvalid", "indisready", "indislive")
_BROKEN_INDEXES = sa.text(f"""
    SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text,
           i.indisvalid, i.indisready, i.indislive
    FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
    WHERE t.relnamespace = {_SCHEMA} AND NOT (i.indisvalid AND i.indisready AND i.indislive)
    ORDER BY 1
""")  # fmt: skip
_BTREE_INDEXES = sa.text(f"""
    SELECT i.indexrelid, i.indexrelid::regclass::text, i.indrelid::regclass::text
    FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
    WHERE t.relnamespace = {_SCHEMA} AND am.amname = 'btree' AND c.relkind = 'i'
      AND i.indisvalid AND i.indisready AND i.indislive
    ORDER BY 2
""")  # fmt: skip
_COLUMNS = """array(SELECT quote_ident(a.attname)
                 FROM unnest(con.{keys}) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = con.{rel} AND a.attnum = k.attnum
                 ORDER BY k.n)"""
_FOREIGN_KEYS = sa.text(f"""
    SELECT con.conname, con.conrelid::regclass::text, con.confrelid::regclass::text,
           {_COLUMNS.format(keys="conkey", rel="conrelid")},
           {_COLUMNS.format(keys="confkey", rel="confrelid")}
    FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
    WHERE con.contype = 'f' AND t.relnamespace = {_SCHEMA}
    ORDER BY 2, 1
""")  # fmt: skip
_NOT_VALID = sa.text(f"""
    SELECT con.conname, CASE WHEN con.conrelid <> 0 THEN con.conrelid::regclass::text
                             ELSE 'domain ' || con.contypid::regtype::text END
    FROM pg_constraint con
    WHERE NOT con.convalidated AND con.connamespace = {_SCHEMA}
    ORDER BY 2, 1
""")  # fmt: skip
_DISABLED_KEYS = sa.text(f"""
    SELECT DISTINCT con.conname, con.conrelid::regclass::text, tg.tgrelid::regclass::text
    FROM pg_trigger tg JOIN pg_constraint con ON con.oid = tg.tgconstraint
         JOIN pg_class t ON t.oid = con.conrelid
    WHERE con.contype = 'f' AND tg.tgenabled = 'D' AND t.relnamespace = {_SCHEMA}
    ORDER BY 2, 1, 3
""")  # fmt: skip


def _postgres_intact(url: str) -> list[str]:
    """PostgreSQL, over every table and index of the URL's schema (``current_schema()``):
    every index valid, ready and live; every valid B-tree index passes ``amcheck``'s
    ``bt_index_check`` with ``heapallindexed`` (every row it should index is in it);
    no child row of a foreign key lacks its parent (MATCH SIMPLE: rows with a NULL key
    column are not checked); no constraint is NOT VALID; no foreign key's triggers are
    disabled. One line per violation, naming the index, table and constraint."""
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if conn.execute(sa.text("SELECT current_schema()")).scalar() is None:
                return ["database: no schema of the search path exists (nothing to check)"]
            return _pg_indexes(conn) + _pg_foreign_keys(conn) + _pg_constraints(conn)
    except sa.exc.OperationalError as exc:  # cannot connect (the checks' own errors are caught)
        return [f"database: {_error(exc)}"]
    finally:
        engine.dispose()


def _error(exc: sa.exc.DBAPIError) -> str:
    """The server's message, its first line (without DETAIL or HINT)."""
    return str(exc.orig or exc).strip().splitlines()[0]


def _pg_indexes(conn: sa.Connection) -> list[str]:
    found = []
    for index, table, *flags in conn.execute(_BROKEN_INDEXES):
        false = ", ".join(f"{name} false" for name, flag in zip(_FLAGS, flags, strict=True)
                          if not flag)  # fmt: skip
        found.append(f"database: index {index} on {table} is not usable ({false}), as a "
                     "failed CREATE INDEX CONCURRENTLY leaves one")  # fmt: skip
    amcheck = _amcheck_schema(conn)
    if amcheck is None:
        return [*found, "database: the amcheck extension is not available on this server: "
                        "B-tree indexes not checked"]  # fmt: skip
    check = sa.text(f"SELECT {amcheck}.bt_index_check(CAST(CAST(:oid AS oid) AS regclass), true)")
    for oid, index, table in conn.execute(_BTREE_INDEXES).all():
        try:
            conn.execute(check, {"oid": oid})
        except sa.exc.DBAPIError as exc:
            found.append(f"database: index {index} on {table}: amcheck: {_error(exc)}")
    return found


def _amcheck_schema(conn: sa.Connection) -> str | None:
    """The (quoted) schema of the ``amcheck`` extension, created if need be (in
    ``public`` when there is one, so that dropping a test's schema does not drop it);
    None when the server does not have it. A server that has it but will not create
    it here (no privilege) raises: that is the test setup's fault, not the database's."""
    installed = sa.text("SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n "
                        "ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'")  # fmt: skip
    schema = conn.execute(installed).scalar()
    if schema is not None:
        return str(schema)
    available = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'")
    if conn.execute(available).scalar() is None:
        return None
    public = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).scalar()
    lock = {"key": _AMCHECK_LOCK}  # a session lock: the connection autocommits
    conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), lock)
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS amcheck"
                             + (" SCHEMA public" if public else "")))  # fmt: skip
    finally:
        conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), lock)
    return str(conn.execute(installed).scalar_one())


def _pg_foreign_keys(conn: sa.Connection) -> list[str]:
    found = []
    for name, child, parent, columns, parent_columns in conn.execute(_FOREIGN_KEYS).all():
        present = " AND ".join(f"c.{col} IS NOT NULL" for col in columns)
        joined = " AND ".join(f"p.{pc} = c.{col}" for col, pc in zip(columns, parent_columns,
                                                                       strict=True))  # fmt: skip
        orphans = sa.text(f"SELECT count(*) FROM {child} AS c WHERE {present} AND NOT EXISTS "
                          f"(SELECT 1 FROM {parent} AS p WHERE {joined})")  # fmt: skip
        try:
            count = conn.execute(orphans).scalar_one()
        except sa.exc.DBAPIError as exc:
            found.append(f"database: foreign key {name} of {child}: cannot check: {_error(exc)}")
            continue
        if count:
            found.append(f"database: foreign key {name} of {child} ({', '.join(columns)}) -> "
                         f"{parent} ({', '.join(parent_columns)}): {count} row(s) without "
                         "their parent")  # fmt: skip
    for name, child, table in conn.execute(_DISABLED_KEYS):
        found.append(f"database: foreign key {name} of {child} is not enforced: its triggers "
                     f"on {table} are disabled")  # fmt: skip
    return found


def _pg_constraints(conn: sa.Connection) -> list[str]:
    return [f"database: constraint {name} of {owner} is NOT VALID (existing rows never "
            "checked against it)" for name, owner in conn.execute(_NOT_VALID)]  # fmt: skip


def artifacts_verify(registry: ModelRegistry) -> list[str]:
    """Every version's artifact is stored and hashes to its digest."""
    found = []
    for model in registry.list_models():
        for version in registry.list_versions(model.name):
            if version.artifact_digest is None:
                continue
            try:
                registry.artifacts.verify(version.artifact_digest)
            except Exception as exc:
                found.append(f"{model.name} {version.version}: artifact: {exc}")
    return found


def one_production_per_model(registry: ModelRegistry) -> list[str]:
    """At most one production version per model."""
    found = []
    for name in _models(registry):
        production = registry.list_versions(name, stage="production")
        if len(production) > 1:
            versions = ", ".join(sorted(str(v.version) for v in production))
            found.append(f"model {name}: {len(production)} production versions ({versions})")
    return found


def audit_chain_verifies(registry: ModelRegistry) -> list[str]:
    """The audit hash chain is intact."""
    broken = registry.verify_audit_chain()
    if broken is None:
        return []
    return [f"audit chain broken at event {broken.event_id}: {broken.problem}"]


_StageKey = tuple[str, str | None, str, str, str, datetime]  # target, from, to, kind, actor, at


def _audit_key(event: Any) -> _StageKey | None:
    """The stage change an audit event records, or None when it records none.
    Registration is ``register`` (``version`` for a bump); a move is ``before.stage ->
    after.stage`` with its kind as the action (approvals name a stage but move none)."""
    before, after = event.before or {}, event.after or {}
    at = event.at.astimezone(UTC)
    if event.action in ("register", "version"):
        return (event.target, None, str(after.get("stage", "dev")), "register", event.actor, at)
    if "stage" in before and "stage" in after:
        return (event.target, before["stage"], after["stage"], event.action, event.actor, at)
    return None


def stage_moves_legal(registry: ModelRegistry) -> list[str]:
    """Every stage change in a model's history is one the lifecycle allows for its kind
    (``registry.stages.LEGAL``): a registration into dev or staging; a promotion along
    the table; a rollback out of production to archived, or into production; a forced
    move only with a reason; and each version's changes chain (each starts where the
    previous one ended)."""
    found = []
    for name in _models(registry):
        where: dict[str, str] = {}
        for t in registry.history(name):
            move = f"{name} {t.version}: {t.kind} {t.from_stage} -> {t.to_stage} by {t.actor}"
            previous = where.get(str(t.version))
            if t.kind == "register":
                legal = t.from_stage is None and t.to_stage in REGISTER_STAGES
            elif t.kind == "promote":
                legal = (t.from_stage, t.to_stage) in LEGAL
            elif t.kind == "rollback":
                legal = t.to_stage == "production" or (t.from_stage, t.to_stage) == (
                    "production", "archived")  # fmt: skip
            elif t.kind == "force":
                legal = bool(t.reason and t.reason.strip()) and t.from_stage != t.to_stage
            else:
                legal = False
            if not legal:
                found.append(f"{move}: not a legal stage move")
            elif t.kind != "register" and previous != t.from_stage:
                found.append(f"{move}: but it was in {previous}")
            where[str(t.version)] = t.to_stage
    return found


def stage_changes_audited(registry: ModelRegistry) -> list[str]:
    """Stage changes and their audit events, one to one."""
    changes: Counter[_StageKey] = Counter()
    for name in _models(registry):
        for t in registry.history(name):
            changes[(f"{name}-{t.version}", t.from_stage, t.to_stage, t.kind, t.actor,
                     t.at.astimezone(UTC))] += 1  # fmt: skip
    events: Counter[_StageKey] = Counter()
    for event in registry.audit_log():
        key = _audit_key(event)
        if key is not None:
            events[key] += 1
    found = []
    for key in sorted(changes.keys() | events.keys(), key=lambda k: (k[0], k[5])):
        target, from_stage, to_stage, kind, actor, at = key
        if changes[key] != 1 or events[key] != 1:
            found.append(
                f"{target}: stage change {from_stage} -> {to_stage} ({kind} by {actor} at "
                f"{at.isoformat()}): {changes[key]} in the history, {events[key]} audit events"
            )
    return found


# -- the controller --------------------------------------------------------------------


def _as_dict(decision: DecisionRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    return decision.to_dict() if isinstance(decision, DecisionRecord) else decision


def _passed(decision: Mapping[str, Any]) -> bool:
    return (decision.get("numbers") or {}).get("verdict") == "promote"


def promotions_have_passing_analysis(
    registry: ModelRegistry, store: RolloutStore, *, actor: str = CONTROLLER_ACTOR
) -> list[str]:
    """Every promotion rests on a passing analysis recorded with the rollout."""
    found = []
    backed: set[int] = set()
    for record in store.list_rollouts(active=False, limit=1_000_000):
        if record.phase is not Phase.PROMOTED:
            continue
        where = f"rollout {record.id} ({record.model} {record.treatment})"
        decisions = [_as_dict(d) for d in store.decisions(record.id, limit=1_000_000)]
        promotes = [d for d in decisions if d["action"] == "promote" and d["applied"]]
        if len(promotes) != 1:
            found.append(f"{where}: promoted with {len(promotes)} applied promote decisions")
            continue
        promote = promotes[0]
        waits = [d for d in decisions
                 if d["action"] == "await_approval" and d["id"] < promote["id"]]  # fmt: skip
        evidence = promote if _passed(promote) or not waits else waits[-1]
        if not _passed(evidence):
            cause = (promote.get("numbers") or {}).get("cause")
            found.append(
                f"{where}: promoted (decision {promote['id']}, cause {cause}) without a passing "
                f"analysis recorded: verdict {(evidence.get('numbers') or {}).get('verdict')!r} "
                f"in decision {evidence['id']}"
            )
            continue
        backed.add(record.id)
    for name in _models(registry):
        for t in registry.history(name):
            if t.to_stage != "production" or t.kind not in ("promote", "force"):
                continue
            match = _ROLLOUT_REASON.match(t.reason or "")
            if match is None and t.actor != actor:
                continue  # a person's promotion, not the controller's
            rollout = int(match.group(1)) if match else None
            if rollout not in backed:
                found.append(
                    f"model {name}: {t.version} moved into production by {t.actor} at "
                    f"{t.at.isoformat()} ({t.reason!r}) without a promoted rollout backed by "
                    "a passing analysis"
                )
    return found


@dataclass(frozen=True, slots=True)
class _RouteCheck:
    model: str
    problem: str | None


def _route_problem(
    model: str, actuator: Actuator, store: RolloutStore, read_route: ReadRoute
) -> str | None:
    try:
        desired = actuator.desired_route(model)
    except NotFound:
        desired = None
    held = read_route(model)
    pushed = store.pushed_route(model)
    if desired is None:
        return None if held is None else f"router holds {held}, the database wants no route"
    if held is None:
        return f"router holds no route; the database wants {_shape(desired)}"
    if _shape(held) != _shape(desired):
        return (f"router holds {_shape(held)} (revision {held.revision}); the database wants "
                f"{_shape(desired)} (revision {desired.revision})")  # fmt: skip
    if pushed != held:
        return f"router holds {held}, the database recorded {pushed} as last pushed"
    return None


def _shape(route: Route) -> tuple[tuple[tuple[str, int, str | None], ...], str]:
    """What serving acts on: versions, weights, digests and salt (not the revision)."""
    return tuple((b.version, b.weight, b.digest) for b in route.backends), route.salt


def router_matches_database(
    registry: ModelRegistry,
    store: RolloutStore,
    read_route: ReadRoute,
    models: Sequence[str],
    *,
    settle: float = 10.0,
) -> list[str]:
    """For each of ``models``, the router holds the database's route (see the module
    docstring), within ``settle`` seconds."""
    actuator = Actuator(registry=registry, store=store, routers={}, policy=lambda _: None,
                        clock=lambda: datetime.now(UTC))  # fmt: skip
    deadline = time.monotonic() + settle
    pending = list(models)
    while True:
        checks = [_RouteCheck(m, _route_problem(m, actuator, store, read_route)) for m in pending]
        pending = [c.model for c in checks if c.problem is not None]
        if not pending or time.monotonic() >= deadline:
            return [f"model {c.model}: {c.problem}" for c in checks if c.problem is not None]
        time.sleep(0.2)


def decisions_follow_policy(
    rollout: int | str,
    decisions: Iterable[DecisionRecord | Mapping[str, Any]],
    steps: Sequence[float],
) -> list[str]:
    """One rollout's applied state-changing decisions follow ``steps`` (the policy's
    analysed canary steps, in percent) without skipping one and without recording a
    transition twice (see the module docstring)."""
    changes = [d for d in map(_as_dict, decisions)
               if d["action"] in STATE_CHANGING and d["applied"]]  # fmt: skip
    changes.sort(key=lambda d: d["id"])
    where = f"rollout {rollout}"
    found = []
    step = None
    ended = None
    for d in changes:
        label = f"{where}: decision {d['id']} ({d['action']} {d['event']} at {d['weight']:g}%)"
        if ended is not None:
            found.append(f"{label} after the rollout ended with decision {ended}")
        if d["action"] == "set_weight" and d["event"] == "start":
            if step is not None:
                found.append(f"{label}: a second start")
            elif d["step"] != 0 or d["weight"] != steps[0]:
                found.append(f"{label}: started at step {d['step']}, not at {steps[0]:g}%")
            step = d["step"]
        elif d["action"] == "set_weight" and d["event"] == "advance":
            expected = None if step is None else step + 1
            # A step's split back after a wait on the control: the same step again.
            restored = (d.get("numbers") or {}).get("cause") == "restored" and d["step"] == step
            if step is None:
                found.append(f"{label}: advanced before any start")
            elif not restored and d["step"] != expected:
                found.append(f"{label}: moved from step {step} to {d['step']} (skipped or "
                             "repeated a step)")  # fmt: skip
            elif not 0 <= d["step"] < len(steps) or d["weight"] != steps[d["step"]]:
                found.append(f"{label}: weight is not the policy's step {d['step']}")
            step = d["step"]
        elif d["action"] in ("promote", "rollback"):
            ended = d["id"]
    previous = None
    for d in changes:
        key = (d["action"], d["event"], d["phase_from"], d["phase_to"], d["step"], d["weight"])
        if key == previous and d["action"] not in ("set_weight",):  # set_weight: checked above
            found.append(f"{where}: decision {d['id']} repeats the one before it: {key}")
        previous = key
    return found
