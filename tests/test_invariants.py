"""``tests.invariants`` finds what it claims to find: each check passes on a sound
database and names the model or rollout when its invariant is broken (on SQLite), and
each of ``database_intact``'s PostgreSQL consistency checks passes on a sound registry
and names the table, index or constraint it finds broken (in a scratch schema, damaged
the ways a superuser can: triggers bypassed, catalog flags changed)."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from controller.adapters.rollout_store import RolloutStore
from registry import ModelRegistry
from registry.db import make_engine
from registry.schema import audit_t, transitions_t, versions_t
from serving.route import Backend, Route
from tests.invariants import (
    database_intact,
    decisions_follow_policy,
    one_production_per_model,
    promotions_have_passing_analysis,
    router_matches_database,
    stage_changes_audited,
    stage_moves_legal,
    violations,
)


def _fill(url: str, home: Path) -> Path:
    """``fraud`` v1.0.0 in production and v1.1.0 in staging, in the registry at ``url``."""
    with ModelRegistry(url, home=home) as registry:
        for version in ("1.0.0", "1.1.0"):
            artifact = home / f"{version}.bin"
            artifact.write_bytes(version.encode())
            registry.register_model("fraud", str(artifact), version=version, stage="staging")
        registry.promote_model("fraud", "1.0.0", to_stage="production", reason="baseline")
    return home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A registry with ``fraud`` v1.0.0 in production and v1.1.0 in staging."""
    return _fill(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path)


def _url(home: Path) -> str:
    return f"sqlite:///{home / 'registry.db'}"


def _execute(home: Path, statement: Any) -> None:
    engine = make_engine(_url(home))
    with engine.begin() as conn:
        conn.execute(statement)
    engine.dispose()


def test_a_sound_database_has_no_violations(home: Path) -> None:
    """Registration, a promotion and a staged candidate break nothing."""
    assert violations(_url(home), home=home) == []


def test_a_stage_change_without_its_audit_event_is_named(home: Path) -> None:
    """A transition row written behind the registry's back has no audit event."""
    _execute(home, transitions_t.insert().values(
        model_id=1, version_id=2, from_stage="staging", to_stage="archived", kind="promote",
        actor="mallory", reason=None, at=datetime(2024, 1, 1, tzinfo=UTC),
    ))  # fmt: skip
    with ModelRegistry(_url(home), home=home) as registry:
        (found,) = stage_changes_audited(registry)
    assert found.startswith("fraud-v1.1.0: stage change staging -> archived (promote by mallory")
    assert found.endswith("1 in the history, 0 audit events")


def test_an_illegal_or_broken_stage_move_is_named(home: Path) -> None:
    """A promotion the lifecycle does not allow (dev -> production), and a move that
    starts where the version was not, are named; the registry's own moves are legal."""
    with ModelRegistry(_url(home), home=home) as registry:
        registry.promote_model("fraud", "1.1.0", to_stage="production", reason="next")
        registry.rollback("fraud", reason="rehearsal")  # back to 1.0.0, 1.1.0 archived
        assert stage_moves_legal(registry) == []
    late = datetime(2030, 1, 1, tzinfo=UTC)
    _execute(home, transitions_t.insert().values(
        model_id=1, version_id=2, from_stage="dev", to_stage="production", kind="promote",
        actor="mallory", reason=None, at=late,
    ))  # fmt: skip
    with ModelRegistry(_url(home), home=home) as registry:
        found = stage_moves_legal(registry)
    assert found == [
        "fraud v1.1.0: promote dev -> production by mallory: not a legal stage move",
    ], found
    _execute(home, transitions_t.update().where(transitions_t.c.actor == "mallory")
             .values(from_stage="staging", to_stage="archived"))  # fmt: skip
    with ModelRegistry(_url(home), home=home) as registry:
        found = stage_moves_legal(registry)
    assert len(found) == 1
    assert found[0].endswith("staging -> archived by mallory: but it was in archived"), found


def test_an_edited_audit_event_breaks_the_chain(home: Path) -> None:
    _execute(home, audit_t.update().where(audit_t.c.id == 2).values(reason="edited"))
    (found,) = violations(_url(home), home=home)
    assert found == "audit chain broken at event 2: event 2 was modified (hash mismatch)"


def test_two_production_versions_are_named(home: Path) -> None:
    """(The schema's partial unique index forbids it; the check does not rely on that.)"""
    _execute(home, sa.text("DROP INDEX uq_one_production_per_model"))
    _execute(home, versions_t.update().values(stage="production"))
    with ModelRegistry(_url(home), home=home) as registry:
        assert one_production_per_model(registry) == [
            "model fraud: 2 production versions (v1.0.0, v1.1.0)"
        ]


def test_a_promotion_by_the_controller_without_a_rollout_is_named(home: Path) -> None:
    with ModelRegistry(_url(home), home=home) as registry:
        registry.promote_model(
            "fraud", "1.1.0", to_stage="production", reason="rollout 7: promote",
            actor="modelreg-controller",
        )  # fmt: skip
        store = RolloutStore(make_engine(_url(home)))
        (found,) = promotions_have_passing_analysis(registry, store)
        store.close()
    assert found.startswith("model fraud: v1.1.0 moved into production by modelreg-controller")


def test_the_router_must_hold_the_route_the_database_wants(home: Path) -> None:
    """The production route (all traffic to v1.0.0); a router holding another split, or
    none, is named; one holding the recorded last push passes."""
    with ModelRegistry(_url(home), home=home) as registry:
        store = RolloutStore(make_engine(_url(home)))
        digest = registry.resolve("fraud").artifact_digest
        route = Route("fraud", (Backend("v1.0.0", 100, digest),))
        split = Route("fraud", (Backend("v1.0.0", 90, digest), Backend("v1.1.0", 10)))
        store.record_pushed(route, now=datetime.now(UTC))
        assert router_matches_database(registry, store, lambda _: route, ["fraud"], settle=0) == []
        (other,) = router_matches_database(registry, store, lambda _: split, ["fraud"], settle=0)
        (none,) = router_matches_database(registry, store, lambda _: None, ["fraud"], settle=0)
        store.close()
    assert other.startswith("model fraud: router holds ((('v1.0.0', 90,")
    assert none.startswith("model fraud: router holds no route; the database wants")


def _decision(id_: int, action: str, event: str, step: int, weight: float, **numbers: Any) -> Any:
    return {"id": id_, "action": action, "event": event, "phase_from": "progressing",
            "phase_to": "progressing", "step": step, "weight": weight, "applied": True,
            "numbers": numbers}  # fmt: skip


STEPS = (10.0, 25.0, 50.0)
START = _decision(1, "set_weight", "start", 0, 10.0)
HOLD = _decision(2, "hold", "hold", 0, 10.0)
TO_25 = _decision(3, "set_weight", "advance", 1, 25.0)
TO_50 = _decision(4, "set_weight", "advance", 2, 50.0)
PROMOTE = _decision(5, "promote", "promote", 2, 100.0)


@pytest.mark.parametrize(
    ("decisions", "problem"),
    [
        ([START, HOLD, TO_25, TO_50, PROMOTE], None),
        ([START, TO_50], "moved from step 0 to 2 (skipped or repeated a step)"),
        ([START, TO_25, {**TO_25, "id": 9}], "moved from step 1 to 1 (skipped or repeated a step)"),
        ([START, {**START, "id": 9}], "a second start"),
        ([{**START, "weight": 25.0}], "started at step 0, not at 10%"),
        ([START, TO_25, TO_50, PROMOTE, {**PROMOTE, "id": 9}], "after the rollout ended"),
        ([START, _decision(3, "await_approval", "await_approval", 0, 10.0),
          _decision(4, "await_approval", "await_approval", 0, 10.0)], "repeats the one before"),
        ([START, {**TO_25, "applied": False}, {**TO_25, "id": 4}], None),  # abandoned intent
    ],
)  # fmt: skip
def test_decisions_follow_the_policys_steps(
    decisions: list[dict[str, Any]], problem: str | None
) -> None:
    found = decisions_follow_policy(3, decisions, STEPS)
    if problem is None:
        assert found == []
    else:
        assert any(problem in f for f in found), found
        assert all(f.startswith("rollout 3: decision ") for f in found), found


def test_dropping_the_audit_table_rows_is_seen(home: Path) -> None:
    """Deleting the newest audit event (a move's) leaves the head pointing past the end."""
    engine = make_engine(_url(home))
    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(audit_t.c.id))).scalar_one()
        conn.execute(audit_t.delete().where(audit_t.c.id == last))
    engine.dispose()
    found = violations(_url(home), home=home)
    assert any(f.startswith("audit chain broken") for f in found), found
    assert any("1 in the history, 0 audit events" in f for f in found), found


def test_a_bit_flip_in_a_stored_artifact_is_named(home: Path) -> None:
    blob = next(p for p in (home / "artifacts").rglob("*") if p.is_file() and len(p.name) > 40)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0x01
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    found = violations(_url(home), home=home)
    assert any("artifact" in line for line in found), found


def test_a_damaged_database_page_is_named(home: Path) -> None:
    """A registry that still opens but whose pages are damaged: integrity_check says so."""
    path = home / "registry.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(  # an index nothing here reads, so the registry still opens
            "SELECT rootpage FROM sqlite_master WHERE name = 'ix_experiment_increment'"
        ).fetchone()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as file:
        file.seek((root - 1) * page)
        file.write(b"\xff" * 8)  # not a b-tree page type
    found = violations(_url(home), home=home)
    assert any(line.startswith("database:") for line in found), found


# -- PostgreSQL: database_intact's consistency queries ---------------------------------


@pytest.fixture
def pg_home(tmp_path: Path, pg_url: str) -> Path:
    """The ``home`` registry's contents (``fraud`` v1.0.0 in production, v1.1.0 in
    staging), in the scratch schema of ``pg_url``."""
    return _fill(pg_url, tmp_path)


def _superuser(pg_url: str, *statements: str) -> None:
    """``statements`` as the superuser, in one session on the scratch schema (each
    committed on its own)."""
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")  # its search_path too
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.mark.postgres
def test_a_sound_postgres_registry_has_no_violations(pg_url: str, pg_home: Path) -> None:
    """Every index checked by amcheck, every foreign key counted: nothing found."""
    assert database_intact(pg_url) == []
    assert violations(pg_url, home=pg_home) == []


@pytest.mark.postgres
def test_an_orphan_written_with_the_triggers_bypassed_is_named(pg_url: str, pg_home: Path) -> None:
    """``session_replication_role = replica`` skips the foreign key triggers: a version
    whose parent version does not exist (a self-referencing key) and a transition of a
    model that does not exist."""
    _superuser(
        pg_url,
        "SET session_replication_role = replica",
        "UPDATE model_version SET parent_id = 9999 WHERE major = 1 AND minor = 1",
        "INSERT INTO stage_transition (model_id, version_id, to_stage, kind, actor, at) "
        "SELECT 9999, id, 'dev', 'register', 'mallory', now() FROM model_version LIMIT 1",
    )
    assert database_intact(pg_url) == [
        "database: foreign key model_version_parent_id_fkey of model_version (parent_id) -> "
        "model_version (id): 1 row(s) without their parent",
        "database: foreign key stage_transition_model_id_fkey of stage_transition (model_id) -> "
        "registered_model (id): 1 row(s) without their parent",
    ]
    (first, *_) = violations(pg_url, home=pg_home)  # the other checks are not run
    assert first.startswith("database: foreign key model_version_parent_id_fkey")


@pytest.mark.postgres
def test_a_not_valid_foreign_key_and_its_orphans_are_named(pg_url: str) -> None:
    """A key added ``NOT VALID`` over rows that break it, and a key whose triggers are
    disabled (in throwaway tables: nothing names the registry's)."""
    _superuser(
        pg_url,
        'CREATE TABLE "Parent" (id int PRIMARY KEY)',
        "CREATE TABLE child (id int PRIMARY KEY, parent int, other int)",
        'INSERT INTO "Parent" VALUES (1)',
        "INSERT INTO child VALUES (1, 1, 1), (2, 2, 1), (3, NULL, 1), (4, 3, 1)",
        "ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (parent) "
        'REFERENCES "Parent" NOT VALID',  # rows 2 and 4 break it (3: NULL, not checked)
        'ALTER TABLE child ADD CONSTRAINT child_other FOREIGN KEY (other) REFERENCES "Parent"',
        "ALTER TABLE child DISABLE TRIGGER ALL",
        "INSERT INTO child VALUES (5, NULL, 5)",  # breaks child_other, unchecked
    )
    assert database_intact(pg_url) == [
        'database: foreign key child_other of child (other) -> "Parent" (id): 1 row(s) '
        "without their parent",
        'database: foreign key child_parent of child (parent) -> "Parent" (id): 2 row(s) '
        "without their parent",
        "database: foreign key child_other of child is not enforced: its triggers on child are "
        "disabled",
        "database: foreign key child_parent of child is not enforced: its triggers on child are "
        "disabled",
        "database: constraint child_parent of child is NOT VALID (existing rows never checked "
        "against it)",
    ]


@pytest.mark.postgres
def test_an_invalid_index_is_named(pg_url: str, pg_home: Path) -> None:
    """An index marked invalid, as a failed ``CREATE INDEX CONCURRENTLY`` leaves it (in a
    throwaway table), and one of the registry's marked not ready."""
    _superuser(
        pg_url,
        "CREATE TABLE scratch (id int PRIMARY KEY, v int)",
        "CREATE INDEX ix_scratch_v ON scratch (v)",
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_scratch_v'::regclass",
        "UPDATE pg_index SET indisready = false "
        "WHERE indexrelid = 'ix_version_model_stage'::regclass",
    )
    assert database_intact(pg_url) == [
        "database: index ix_scratch_v on scratch is not usable (indisvalid false), as a failed "
        "CREATE INDEX CONCURRENTLY leaves one",
        "database: index ix_version_model_stage on model_version is not usable (indisready "
        "false), as a failed CREATE INDEX CONCURRENTLY leaves one",
    ]


@pytest.mark.postgres
def test_an_index_missing_rows_fails_amcheck(pg_url: str) -> None:
    """Rows inserted while the index was marked not ready were never put in it: the index
    is valid again but lacks them, which only ``heapallindexed`` sees."""
    _superuser(
        pg_url,
        "CREATE TABLE scratch (id int PRIMARY KEY, v int)",
        "CREATE INDEX ix_scratch_v ON scratch (v)",
        "INSERT INTO scratch SELECT g, g FROM generate_series(1, 10) AS g",
        "UPDATE pg_index SET indisready = false WHERE indexrelid = 'ix_scratch_v'::regclass",
    )
    _superuser(  # a new session: its relation cache has the index not ready
        pg_url,
        "INSERT INTO scratch VALUES (11, 11)",
        "UPDATE pg_index SET indisready = true WHERE indexrelid = 'ix_scratch_v'::regclass",
    )
    assert database_intact(pg_url) == [
        "database: index ix_scratch_v on scratch: amcheck: heap tuple (0,11) from table "
        '"scratch" lacks matching index tuple within index "ix_scratch_v"'
    ]


@pytest.mark.postgres
def test_only_the_urls_schema_is_checked(pg_url: str, tmp_path: Path) -> None:
    """A broken table in another schema of the database is not this registry's."""
    other = f"other_{uuid.uuid4().hex[:12]}"
    try:
        _superuser(
            pg_url,
            f"CREATE SCHEMA {other}",
            f"CREATE TABLE {other}.scratch (id int PRIMARY KEY, v int)",
            f"CREATE INDEX ix_other ON {other}.scratch (v)",
            "UPDATE pg_index SET indisvalid = false "
            f"WHERE indexrelid = '{other}.ix_other'::regclass",
        )
        assert database_intact(pg_url) == []
    finally:
        _superuser(pg_url, f"DROP SCHEMA IF EXISTS {other} CASCADE")
