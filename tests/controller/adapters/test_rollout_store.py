"""controller.adapters.rollout_store: its own migration history in the registry's database;
the write protocol."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.adapters.rollout_store import RolloutStore
from controller.core.decide import HoldUntil, SetWeight
from controller.core.phases import Event, Phase
from controller.errors import CannotStart, RolloutNotFound
from registry import ModelRegistry
from serving.route import Backend, Route

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _store(tmp_path: Path) -> RolloutStore:
    with ModelRegistry(home=tmp_path) as registry:
        url = registry.url
    return RolloutStore.open(url)


def _create(store: RolloutStore, treatment: str = "v1.1.0"):  # type: ignore[no-untyped-def]
    return store.create(model="m", control="v1.0.0", treatment=treatment, control_digest="a" * 64,
                        treatment_digest="b" * 64, now=T0, reason="test")  # fmt: skip


class TestStore:
    def test_own_version_table(self, tmp_path: Path) -> None:
        """The controller's tables are versioned in controller_alembic_version, beside the
        registry's own history, and reopening is a no-op."""
        store = _store(tmp_path)
        RolloutStore(store.engine)
        names = sa.inspect(store.engine).get_table_names()
        tables = {"controller_rollout", "controller_decision", "controller_alembic_version"}
        assert tables | {"controller_alert_seen"} <= set(names)
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM controller_alembic_version")
                                ).scalar() == "c0008"  # fmt: skip
        store.close()

    def test_one_active_rollout_per_model(self, tmp_path: Path) -> None:
        """The database refuses a second active rollout for a model."""
        store = _store(tmp_path)
        _create(store)
        with pytest.raises(CannotStart):
            _create(store, "v1.2.0")
        store.close()

    def test_intent_then_confirm(self, tmp_path: Path) -> None:
        """An intent is stored with an unapplied decision; confirm applies both."""
        store = _store(tmp_path)
        record = _create(store)
        state = replace(record.state, phase=Phase.PROGRESSING, step=0, weight=10.0,
                        step_started_at=T0 + timedelta(seconds=1))  # fmt: skip
        decision = SetWeight(Event.START, state, ("start",), {"x": 1})
        intent = store.record_intent(record, decision, now=T0, next_eval_at=T0)
        stored = store.get(record.id)
        assert stored.intent == intent
        assert stored.phase is Phase.PENDING
        assert not store.decisions(record.id)[0].applied
        with pytest.raises(RolloutNotFound, match="concurrently"):
            store.record_intent(record, decision, now=T0, next_eval_at=T0)
        store.confirm(record.id, intent, now=T0, reason="start")
        done = store.get(record.id)
        assert (done.phase, done.weight, done.revision, done.intent) == (
            Phase.PROGRESSING, 10.0, 1, None)  # fmt: skip
        assert done.step_started_at == T0 + timedelta(seconds=1)
        assert store.decisions(record.id)[0].applied
        assert store.decisions(record.id)[0].numbers == {"x": 1, "cause": "operator"}
        store.close()

    def test_hold_updates_counters(self, tmp_path: Path) -> None:
        """A hold stores its decision and the new failure counter at once."""
        store = _store(tmp_path)
        record = _create(store)
        hold = HoldUntil(Event.HOLD, replace(record.state, failures=2), ("missing",), {})
        store.record_hold(record, hold, now=T0, next_eval_at=T0 + timedelta(seconds=5))
        stored = store.get(record.id)
        assert stored.failures == 2
        assert stored.next_eval_at == T0 + timedelta(seconds=5)
        assert [d.action for d in store.decisions(record.id)] == ["hold"]
        store.close()

    def test_unknown_rollout(self, tmp_path: Path) -> None:
        """Asking for a missing rollout is RolloutNotFound (a LookupError)."""
        store = _store(tmp_path)
        with pytest.raises(LookupError):
            store.get(42)
        store.close()

    def test_pushed_route_one_row_per_model(self, tmp_path: Path) -> None:
        """The last pushed route per model survives reopening; a newer one replaces it."""
        store = _store(tmp_path)
        assert store.pushed_route("m") is None
        first = Route("m", (Backend("v1.0.0", 100, "a" * 64),), revision=3, salt="m:1")
        store.record_pushed(first, now=T0)
        store.record_pushed(Route("other", (Backend("v2", 100),), revision=9), now=T0)
        second = replace(first, backends=(Backend("v1.1.0", 100, "b" * 64),), revision=4)
        store.record_pushed(second, now=T0)
        reopened = RolloutStore(store.engine)
        assert reopened.pushed_route("m") == second
        assert reopened.pushed_route("other") == Route("other", (Backend("v2", 100),), revision=9)
        store.close()

    def test_unreadable_evidence_restarts_the_tests_not_the_store(self, tmp_path: Path) -> None:
        """A damaged analysis state (not JSON, or not a state) reads as none: the rollout
        and every listing stay readable, and its tests start over."""
        store = _store(tmp_path)
        record = _create(store)
        for damaged in ("{not json", '["a list"]'):
            with store.engine.begin() as conn:
                conn.execute(sa.text("UPDATE controller_rollout SET evidence = :e"), {"e": damaged})
            assert store.get(record.id).evidence is None
            assert [r.id for r in store.active()] == [record.id]

    def test_an_intent_written_by_the_previous_release_loads(self, tmp_path: Path) -> None:
        """Intents stored before the state was typed (a plain dict, no evidence key)."""
        store = _store(tmp_path)
        record = _create(store)
        old = ('{"decision_id": 1, "action": "set_weight", "revision": 1, "next_eval_at": 0.0, '
               '"state": {"phase": "progressing", "step": 0, "weight": 10.0, '
               f'"started_at": {T0.timestamp()}, "step_started_at": {T0.timestamp()}, '
               '"failures": 0, "streaks": {}, "approved": false}}')  # fmt: skip
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE controller_rollout SET intent = :i"), {"i": old})
        intent = store.get(record.id).intent
        assert intent is not None
        assert (intent.state.phase, intent.state.weight, intent.state.model) == (
            Phase.PROGRESSING, 10.0, "m",
        )  # fmt: skip
        assert intent.state.evidence is None
