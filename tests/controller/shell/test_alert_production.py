"""POST /v1/alerts for a model with no active rollout: production is rolled back."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.notify import DecisionEvent, EventKind
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import AlertRoute
from controller.core.causes import Cause
from controller.http.app import ApiDeps, create_app
from controller.shell.alerts import production_request
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from monitors.alerts import AlertAction, AlertIntake, AlertRule
from registry import ModelRegistry
from serving.route import read_table
from tests.clock import Clock

from ..support import config, register

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class World:
    client: TestClient
    registry: ModelRegistry
    routes: Path
    metrics: CollectorRegistry
    decisions: list[DecisionEvent]
    controller: Controller
    rules: list[AlertRule]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """fraud: 1.0.0 was production, 1.1.0 is now; solo: one production version only."""
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "1.0.0", "production")
    register(registry, tmp_path, "fraud", "1.1.0", "production")
    register(registry, tmp_path, "solo", "1.0.0", "production")
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes.json"
    collector = CollectorRegistry()
    cfg = config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db")
    cfg = cfg.model_copy(update={"models": {**cfg.models, "solo": cfg.models["fraud"]}})
    controller = Controller(
        config=cfg,
        registry=registry,
        store=store,
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=routes)},
        clock=clock,
        metrics=ControllerMetrics(collector),
    )
    controller.reconcile_routers()
    decisions: list[DecisionEvent] = []
    controller.on_decision = decisions.append
    rules = [
        AlertRoute(match={"alertname": "FraudErrors"}, action="rollback").rule(0),
        AlertRoute(match={"alertname": "Slow"}, action="pause").rule(1),
    ]
    app = create_app(ApiDeps(controller=controller, metrics=collector, alerts=AlertIntake(rules)))
    with TestClient(app) as client:
        yield World(client, registry, routes, collector, decisions, controller, rules)
    ingest.close()
    store.close()
    registry.close()


def _webhook(model: str = "fraud", name: str = "FraudErrors", fp: str = "f1",
             starts: str = "2026-03-01T12:00:00Z") -> dict[str, object]:  # fmt: skip
    return {
        "version": "4", "receiver": "modelreg", "status": "firing", "groupKey": "g",
        "alerts": [{"status": "firing", "fingerprint": fp, "startsAt": starts,
                    "labels": {"alertname": name, "model": model}}],
    }  # fmt: skip


def _action(world: World) -> AlertAction:
    """What the intake makes of ``_webhook()`` (without remembering it)."""
    (mapped,) = AlertIntake(world.rules).handle(json.dumps(_webhook()), now=T0).actions
    return mapped


def _routed(routes: Path, model: str) -> list[tuple[str, int]]:
    return [(b.version, b.weight) for b in read_table(routes)[model].backends]


def _observations(metrics: CollectorRegistry) -> float:
    return (
        metrics.get_sample_value("modelreg_alert_action_seconds_count", {"action": "rollback"})
        or 0.0
    )


class TestAlertWithoutRollout:
    def test_rolls_production_back_and_routes_once(self, world: World) -> None:
        """Production goes back to 1.0.0 in the registry and the router before the answer;
        the reason names the alert and its fingerprint; the repeat acts no more."""
        before = read_table(world.routes)["fraud"]
        assert _routed(world.routes, "fraud") == [("v1.1.0", 100)]
        answer = world.client.post("/v1/alerts", json=_webhook())
        assert answer.status_code == 200
        (outcome,) = answer.json()["actions"]
        assert outcome["acted"] is True
        assert outcome["result"] == "production rolled back"
        assert (outcome["from"], outcome["to"]) == ("v1.1.0", "v1.0.0")
        assert str(world.registry.resolve("fraud").version) == "v1.0.0"
        assert world.registry.get_model_version("fraud", "1.1.0").stage == "archived"
        assert _routed(world.routes, "fraud") == [("v1.0.0", 100)]
        assert read_table(world.routes)["fraud"].revision > before.revision
        history = " ".join(t.reason or "" for t in world.registry.history("fraud"))
        assert "FraudErrors" in history
        assert "f1" in history
        assert _observations(world.metrics) == 1
        (event,) = world.decisions  # told to the notifiers after the commit
        assert (event.kind, event.model, event.version) == (
            EventKind.ROLLED_BACK,
            "fraud",
            "v1.1.0",
        )
        assert "FraudErrors" in event.reasons[0]

        repeat = world.client.post("/v1/alerts", json=_webhook()).json()
        assert repeat["duplicates"] == 1
        assert repeat["actions"] == []
        assert str(world.registry.resolve("fraud").version) == "v1.0.0"
        assert _observations(world.metrics) == 1
        text = world.client.get("/metrics").text
        assert "modelreg_alert_action_seconds_bucket" in text

    def test_nothing_to_roll_back_is_explained(self, world: World) -> None:
        """One production version ever, or no model at all: 200, an explanation, no change."""
        before = read_table(world.routes)["solo"]
        answer = world.client.post("/v1/alerts", json=_webhook(model="solo"))
        assert answer.status_code == 200
        (outcome,) = answer.json()["actions"]
        assert outcome["acted"] is False
        assert outcome["result"].startswith("ignored: no active rollout; nothing to roll back")
        assert str(world.registry.resolve("solo").version) == "v1.0.0"
        assert read_table(world.routes)["solo"] == before
        (other,) = world.client.post("/v1/alerts", json=_webhook(model="ghost", fp="f2")).json()[
            "actions"
        ]
        assert other["acted"] is False
        assert "no production version" in other["result"]
        assert _observations(world.metrics) == 0
        assert world.decisions == []

    def test_pause_without_rollout_changes_nothing(self, world: World) -> None:
        """Only rollback acts on production; pause with no rollout is ignored."""
        (outcome,) = world.client.post("/v1/alerts", json=_webhook(name="Slow")).json()["actions"]
        assert outcome["result"] == "ignored: no active rollout"
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"


class TestNotAlertmanager:
    @pytest.mark.parametrize(
        ("body", "named"),
        [
            (b"not json at all", "not valid JSON"),
            (b'[{"labels": {"alertname": "FraudErrors"}}]', "must be a JSON object"),
            (b'{"text": "deploy failed", "channel": "#ml"}', "version"),
            (b'{"version": "4", "status": "firing", "alerts": []}', "'receiver'"),
            (b'{"version": "4", "receiver": "r", "status": "firing", "groupKey": "g", '
             b'"alerts": [{"status": "firing", "labels": {}, "startsAt": '
             b'"2026-03-01T12:00:00Z"}]}', "alerts[0] lacks 'fingerprint'"),
            (b'{"version": "4", "receiver": "r", "status": "burning", "groupKey": "g", '
             b'"alerts": []}', "status must be 'firing' or 'resolved'"),
        ],
    )  # fmt: skip
    def test_rejected_with_the_reason(self, world: World, body: bytes, named: str) -> None:
        """A body that is not Alertmanager's webhook: 422 naming what is wrong, no change."""
        answer = world.client.post(
            "/v1/alerts", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422
        assert named in answer.json()["detail"]
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"
        assert _observations(world.metrics) == 0

    def test_unknown_model_is_answered_without_effect(self, world: World) -> None:
        """An alert naming a model the registry does not know: 200, recorded as no effect,
        and later alerts still act."""
        answer = world.client.post("/v1/alerts", json=_webhook(model="ghost", fp="g1"))
        assert answer.status_code == 200
        (outcome,) = answer.json()["actions"]
        assert (outcome["model"], outcome["acted"]) == ("ghost", False)
        assert "no production version to roll back" in outcome["result"]
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"
        (real,) = world.client.post("/v1/alerts", json=_webhook(fp="f9")).json()["actions"]
        assert real["acted"] is True


class TestCrashBeforeTheLedger:
    def test_a_repeat_finds_the_rollback_in_the_history(self, world: World, tmp_path: Path) -> None:
        """The daemon died after the rollback committed, before the alert was recorded:
        a restarted intake knows nothing, yet Alertmanager's repeat does not roll back a
        second time, because production came from a rollback for that alert instance."""
        register(world.registry, tmp_path, "fraud", "1.2.0", "production")
        (first,) = world.client.post("/v1/alerts", json=_webhook()).json()["actions"]
        assert (first["acted"], first["to"]) == (True, "v1.1.0")
        restarted = create_app(ApiDeps(controller=world.controller, metrics=CollectorRegistry(),
                                       alerts=AlertIntake(world.rules)))  # fmt: skip
        with TestClient(restarted) as client:
            (repeat,) = client.post("/v1/alerts", json=_webhook()).json()["actions"]
            assert repeat["acted"] is False
            assert "after a rollback for this alert instance f1@" in repeat["result"]
            assert str(world.registry.resolve("fraud").version) == "v1.1.0"
            later = _webhook(starts="2026-03-01T13:00:00Z")  # a new instance still acts
            (other,) = client.post("/v1/alerts", json=later).json()["actions"]
            assert (other["acted"], other["to"]) == (True, "v1.0.0")

    def test_a_crash_between_the_registry_and_the_production_ledger(
        self, world: World, tmp_path: Path
    ) -> None:
        """The production ledger's row was written (pending) and the registry rolled back,
        then the daemon died: the repeat sees the pending row and production moved, and
        does nothing. Had the registry call never happened, the repeat finishes the row."""
        register(world.registry, tmp_path, "fraud", "1.2.0", "production")
        action = production_request(_action(world))
        ledger = world.controller.actuator.ledger
        ledger.begin(action, "v1.2.0", now=T0)
        world.registry.rollback("fraud", reason="crashed here", actor=action.actor)
        restarted = create_app(ApiDeps(controller=world.controller, metrics=CollectorRegistry(),
                                       alerts=AlertIntake(world.rules)))  # fmt: skip
        with TestClient(restarted) as client:
            (repeat,) = client.post("/v1/alerts", json=_webhook()).json()["actions"]
        assert repeat["acted"] is False
        assert "after a rollback for this alert instance" in repeat["result"]
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"

    def test_a_crash_before_the_registry_call_is_finished_by_the_repeat(self, world: World) -> None:
        action = production_request(_action(world))
        ledger = world.controller.actuator.ledger
        ledger.begin(action, "v1.1.0", now=T0)  # then the daemon died
        (repeat,) = world.client.post("/v1/alerts", json=_webhook()).json()["actions"]
        assert (repeat["acted"], repeat["to"]) == (True, "v1.0.0")
        (row,) = ledger.actions("fraud")
        assert (row.outcome, row.to_version, row.cause) == ("rolled_back", "v1.0.0", Cause.ALERT)


class TestOneTransaction:
    """On one SQLite file the ledger's row commits in the registry's rollback
    transaction: no ``pending`` row first, and never one without the other."""

    def test_the_move_and_its_row_commit_together(self, world: World) -> None:
        assert world.controller.store.writes.shared
        (done,) = world.client.post("/v1/alerts", json=_webhook()).json()["actions"]
        assert (done["acted"], done["to"]) == (True, "v1.0.0")
        (row,) = world.controller.actuator.ledger.actions("fraud")
        assert (row.outcome, row.from_version, row.to_version) == ("rolled_back", "v1.1.0",
                                                                    "v1.0.0")  # fmt: skip

    def test_a_row_that_cannot_be_written_undoes_the_move(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The row fails inside the registry's transaction: production stays, no row is
        left, and the alert is refused to be sent again (a repeat then acts)."""
        ledger = world.controller.actuator.ledger
        real_record = ledger.record

        def failing(*args: object, **kwargs: object) -> int:
            if kwargs.get("outcome") == "rolled_back":
                raise OSError("disk I/O error")
            return real_record(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(ledger, "record", failing)
        failed = world.client.post("/v1/alerts", json=_webhook())
        assert failed.status_code == 503
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"
        assert ledger.actions("fraud") == []
        monkeypatch.setattr(ledger, "record", real_record)
        (repeat,) = world.client.post("/v1/alerts", json=_webhook()).json()["actions"]
        assert (repeat["acted"], repeat["to"]) == (True, "v1.0.0")


class TestDashboard:
    def test_the_alerts_page_says_what_each_alert_did(self, world: World) -> None:
        (done,) = world.client.post("/v1/alerts", json=_webhook()).json()["actions"]
        assert done["acted"] is True
        slow = _webhook(name="Slow", fp="s1")
        (ignored,) = world.client.post("/v1/alerts", json=slow).json()["actions"]
        assert ignored["acted"] is False
        page = world.client.get("/ui/alerts").text
        received = page.split("Recent alerts, and what each did")[1].split("<h2>")[0]
        assert received.index("Slow") < received.index("FraudErrors")  # newest first
        assert "ignored: no active rollout" in received
        assert "production rolled back" in received


class TestActionFails:
    def test_a_failed_action_is_not_taken_for_a_duplicate(
        self, world: World, tmp_path: Path
    ) -> None:
        """The controller's database breaks under an alert: 503 saying to send it again,
        nothing changed; once repaired, Alertmanager's retry of the same alert acts."""
        import sqlalchemy as sa

        engine = sa.create_engine(world.registry.url)
        with engine.begin() as conn:  # a real fault: the table the controller reads is gone
            conn.exec_driver_sql("ALTER TABLE controller_rollout RENAME TO rollout_away")
        try:
            failed = world.client.post("/v1/alerts", json=_webhook())
            assert failed.status_code == 503
            assert "send it again" in failed.json()["detail"]
            assert str(world.registry.resolve("fraud").version) == "v1.1.0"
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE rollout_away RENAME TO controller_rollout")
            engine.dispose()
        retry = world.client.post("/v1/alerts", json=_webhook()).json()
        assert retry["duplicates"] == 0
        (outcome,) = retry["actions"]
        assert outcome["acted"] is True
        assert str(world.registry.resolve("fraud").version) == "v1.0.0"


class TestOneIncidentOneRollback:
    def test_an_alert_older_than_production_does_not_roll_back_again(
        self, world: World, tmp_path: Path
    ) -> None:
        """An alert that started firing before the current production version went in
        is about the version it replaced: after a rollback (here by another alert, as
        the guard's would be) it does not walk production down a second version. An
        alert that starts after the change still acts."""
        clock = world.controller.clock
        assert isinstance(clock, Clock)
        clock.advance(60)
        register(world.registry, tmp_path, "fraud", "1.2.0", "production")  # at T0+1m
        clock.advance(60)
        first = world.client.post(
            "/v1/alerts", json=_webhook(fp="a", starts="2026-03-01T12:01:30Z")
        )
        assert first.json()["actions"][0]["acted"] is True  # 1.2.0 -> 1.1.0 at T0+2m
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"
        clock.advance(60)
        late = world.client.post("/v1/alerts", json=_webhook(fp="b", starts="2026-03-01T12:01:45Z"))
        (outcome,) = late.json()["actions"]
        assert outcome["acted"] is False
        assert "after this alert started firing" in outcome["result"]
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"
        new = world.client.post("/v1/alerts", json=_webhook(fp="c", starts="2026-03-01T12:02:30Z"))
        assert new.json()["actions"][0]["acted"] is True
        assert str(world.registry.resolve("fraud").version) == "v1.0.0"


class TestAlertOnAStaleRollout:
    """A candidate promoted by hand while its own canary still runs, then an alert
    for it: the alerted version leaves production and routing for good, and the stale
    rollout is ended first with the reason (it must not put the version back)."""

    @pytest.fixture
    def stale(self, world: World, tmp_path: Path) -> int:
        register(world.registry, tmp_path, "solo", "1.1.0", "staging")
        rollout = world.controller.start_rollout("solo", "v1.1.0", reason="test")
        world.controller.reconcile_once(rollout.id, force=True)
        assert ("v1.1.0", 50) in _routed(world.routes, "solo")
        world.registry.promote_model("solo", "1.1.0", to_stage="production", reason="by hand")
        return rollout.id

    @pytest.mark.parametrize("labels", [{}, {"version": "v1.1.0"}])
    def test_the_alerted_version_stays_out(
        self, world: World, stale: int, labels: dict[str, str]
    ) -> None:
        body = _webhook(model="solo")
        body["alerts"][0]["labels"].update(labels)  # type: ignore[index]
        (outcome,) = world.client.post("/v1/alerts", json=body).json()["actions"]
        assert outcome["acted"] is True, outcome
        assert (outcome["from"], outcome["to"]) == ("v1.1.0", "v1.0.0")
        ended = world.controller.store.get(stale)
        assert not ended.active
        assert "production" in (ended.reason or ""), ended.reason
        for _ in range(3):  # later looks and reconciliations change nothing
            world.controller.clock.advance(10)  # type: ignore[attr-defined]
            world.controller.reconcile_once(stale, force=True)
            world.controller.watch_once()
            world.controller.reconcile_routers()
        assert str(world.registry.resolve("solo").version) == "v1.0.0"
        assert world.registry.get_model_version("solo", "1.1.0").stage == "archived"
        assert _routed(world.routes, "solo") == [("v1.0.0", 100)]
        assert world.controller.store.active_for("solo") is None

    def test_its_next_look_ends_it_and_serving_follows_the_registry(
        self, world: World, stale: int
    ) -> None:
        """No alert: the next look ends the rollout (superseded, with the reason) and
        routes the version the registry put in production, not the rollout's control."""
        world.decisions.clear()
        decision = world.controller.reconcile_once(stale, force=True)
        assert decision is not None
        assert decision.cause is Cause.SUPERSEDED
        ended = world.controller.store.get(stale)
        assert ended.phase.value == "aborted"
        assert "v1.1.0 was moved to production outside this rollout" in (ended.reason or "")
        assert _routed(world.routes, "solo") == [("v1.1.0", 100)]
        assert world.controller.desired_route("solo") == read_table(world.routes)["solo"]
        assert [e.kind for e in world.decisions] == [EventKind.FAILED]
        assert str(world.registry.resolve("solo").version) == "v1.1.0"

    def test_another_version_put_in_production_ends_it_too(
        self, world: World, tmp_path: Path
    ) -> None:
        register(world.registry, tmp_path, "solo", "1.1.0", "staging")
        rollout = world.controller.start_rollout("solo", "v1.1.0", reason="test")
        world.controller.reconcile_once(rollout.id, force=True)
        register(world.registry, tmp_path, "solo", "1.2.0", "production")  # a hotfix
        world.controller.reconcile_once(rollout.id, force=True)
        ended = world.controller.store.get(rollout.id)
        assert not ended.active
        assert "v1.2.0 was put in production outside this rollout" in (ended.reason or "")
        assert _routed(world.routes, "solo") == [("v1.2.0", 100)]
        assert world.registry.get_model_version("solo", "1.1.0").stage == "staging"
