"""The alert ledger on each database backend (SQLite file, PostgreSQL), and the route
rebasing rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from controller.adapters.alert_ledger import SEEN, AlertLedger, insert_missing
from controller.adapters.rollout_store import RolloutStore
from controller.core.routes import rebased
from monitors.alerts import AlertIntake, AlertRule
from serving.route import Backend, Route

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
STARTS = datetime(2026, 11, 26, 9, 59, 30, 123456, tzinfo=UTC)


def _store(url: str) -> RolloutStore:
    return RolloutStore.open(url)


def _payload(fingerprint: str, status: str = "firing") -> str:
    alert = {"status": status, "fingerprint": fingerprint,
             "startsAt": "2026-11-26T09:59:30.123456789Z",
             "labels": {"alertname": "A", "model": "fraud"}}  # fmt: skip
    return json.dumps(
        {"version": "4", "receiver": "r", "status": status, "groupKey": "g", "alerts": [alert]}
    )


class TestAlertLedger:
    def test_keys_survive_a_new_engine(self, db_url: str) -> None:
        """What one store recorded, a store opened later on the same file loads exactly."""
        store = _store(db_url)
        AlertLedger(store.engine).remember([(("fp", STARTS), T0)], now=T0)
        store.close()
        again = _store(db_url)
        try:
            assert AlertLedger(again.engine).load(now=T0) == {("fp", STARTS): T0}
        finally:
            again.close()

    def test_recording_twice_keeps_the_first_sighting(self, db_url: str) -> None:
        """A replayed key is skipped, not an integrity error, and keeps its first time."""
        store = _store(db_url)
        try:
            ledger = AlertLedger(store.engine)
            ledger.remember([(("fp", STARTS), T0)], now=T0)
            later = T0 + timedelta(minutes=5)
            ledger.remember([(("fp", STARTS), later), (("fp2", STARTS), later)], now=later)
            assert ledger.load(now=later) == {("fp", STARTS): T0, ("fp2", STARTS): later}
        finally:
            store.close()

    def test_the_portable_insert_skips_present_keys(self, db_url: str) -> None:
        """The path for backends without ON CONFLICT (run here on SQLite and
        PostgreSQL): present keys are skipped, new ones inserted, nothing fails."""
        store = _store(db_url)
        try:
            row = {"key": "k1", "fingerprint": "fp", "starts_at": STARTS.isoformat(),
                   "first_seen": T0.timestamp()}  # fmt: skip
            with store.engine.begin() as conn:
                insert_missing(conn, [row])
            with store.engine.begin() as conn:
                insert_missing(conn, [{**row, "first_seen": 0.0}, {**row, "key": "k2"}])
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(SEEN.c.key, SEEN.c.first_seen)).all()
            assert sorted(rows) == [("k1", T0.timestamp()), ("k2", T0.timestamp())]
        finally:
            store.close()

    def test_old_keys_are_pruned(self, db_url: str) -> None:
        """Keys first seen longer than ``remember`` ago are deleted on load."""
        store = _store(db_url)
        try:
            ledger = AlertLedger(store.engine, remember=timedelta(hours=1))
            ledger.remember([(("old", STARTS), T0)], now=T0)
            ledger.remember([(("new", STARTS), T0 + timedelta(minutes=50))], now=T0)
            loaded = ledger.load(now=T0 + timedelta(minutes=70))
            assert loaded == {("new", STARTS): T0 + timedelta(minutes=50)}
        finally:
            store.close()

    def test_remember_must_be_positive(self, db_url: str) -> None:
        """A zero horizon would forget at once: refused, naming the setting."""
        store = _store(db_url)
        try:
            with pytest.raises(ValueError, match="remember must be positive"):
                AlertLedger(store.engine, remember=timedelta(0))
        finally:
            store.close()

    def test_an_intake_loaded_from_the_ledger_acts_no_more(self, db_url: str) -> None:
        """The intake's new keys go to the ledger; a fresh intake loaded from it treats
        the same firing alert as a duplicate, and a resolved one stays resolved."""
        store = _store(db_url)
        try:
            ledger = AlertLedger(store.engine)
            rules = [AlertRule(name="r", action="rollback")]
            first = AlertIntake(rules)
            fired = first.handle(_payload("fp"), now=T0)
            resolved = first.handle(_payload("gone", "resolved"), now=T0)
            assert len(fired.actions) == 1
            ledger.remember([*fired.remembered, *resolved.remembered], now=T0)
            restarted = AlertIntake(rules, seen=ledger.load(now=T0))
            again = restarted.handle(_payload("fp"), now=T0 + timedelta(hours=1))
            late = restarted.handle(_payload("gone"), now=T0 + timedelta(hours=1))
            assert (again.actions, again.duplicates) == ((), 1)
            assert (late.actions, late.duplicates) == ((), 1)
        finally:
            store.close()


_V1 = (Backend("v1.0.0", 100, "a"),)
_V2 = (Backend("v1.1.0", 100, "b"),)


@pytest.mark.parametrize(
    ("route", "held", "expected"),
    [
        (Route("m", _V1, 5, "s"), None, Route("m", _V1, 5, "s")),
        (Route("m", _V1, 0, "s"), Route("m", _V1, 7, "s"), Route("m", _V1, 7, "s")),
        (Route("m", _V1, 0, "s"), Route("m", _V2, 7, "s"), Route("m", _V1, 8, "s")),
        (Route("m", _V1, 7, "s"), Route("m", _V2, 7, "s"), Route("m", _V1, 8, "s")),
        (Route("m", _V1, 9, "s"), Route("m", _V2, 7, "s"), Route("m", _V1, 9, "s")),
        (Route("m", _V1, 3, "new"), Route("m", _V1, 7, "old"), Route("m", _V1, 8, "new")),
    ],
)
def test_rebased(route: Route, held: Route | None, expected: Route) -> None:
    """A pushed revision never goes back; what serving already has is left alone."""
    assert rebased(route, held) == expected
