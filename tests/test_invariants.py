"""``tests.invariants`` finds what it claims to find (on SQLite): each check passes on a
sound database and names the model or rollout when its invariant is broken."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.adapters.rollout_store import RolloutStore
from registry import ModelRegistry
from registry.db import make_engine
from registry.schema import audit_t, transitions_t, versions_t
from serving.route import Backend, Route
from tests.invariants import (
    decisions_follow_policy,
    one_production_per_model,
    promotions_have_passing_analysis,
    router_matches_database,
    stage_changes_audited,
    violations,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A registry with ``fraud`` v1.0.0 in production and v1.1.0 in staging."""
    with ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", home=tmp_path) as registry:
        for version in ("1.0.0", "1.1.0"):
            artifact = tmp_path / f"{version}.bin"
            artifact.write_bytes(version.encode())
            registry.register_model("fraud", str(artifact), version=version, stage="staging")
        registry.promote_model("fraud", "1.0.0", to_stage="production", reason="baseline")
    return tmp_path


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
