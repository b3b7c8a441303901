"""Guarding production: the pure verdict, and guard passes on real SQLite with a hand clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.guard_store import GuardStore
from controller.adapters.notify import DecisionEvent, EventKind
from controller.adapters.rollout_store import RolloutStore
from controller.config import Config, GuardSection, parse_config
from controller.core.causes import Cause
from controller.core.guard import (
    STREAK_GAP_INTERVALS,
    GuardTrigger,
    TriggerMemory,
    from_policy,
    judge,
    merge,
    registered_baseline,
    rolled_back_from_production,
)
from controller.core.phases import Event, Phase
from controller.core.production import ProductionAction, RollbackRequest
from controller.errors import ConfigError
from controller.shell.controller import Controller
from controller.shell.guard_pass import GUARD_ACTOR, Guard
from monitors import IngestStore, Measurement, Status, Subject, TriggerSpec, Window
from registry import ModelRegistry
from serving.route import read_table
from tests.clock import Clock

from ..support import config, file_controller, register, traffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SUBJECT = Subject("fraud", version="v1.1.0")
WINDOW = Window(end=T0, length=timedelta(hours=1))
IV = timedelta(seconds=60)  # the guard interval the pure tests judge with


def _m(value: float | None, n: int = 500, status: Status = Status.OK) -> Measurement:
    return Measurement("error_rate", SUBJECT, WINDOW, status, value, n, "why")


def _trigger(consecutive: int = 1, name: str = "errors", cooldown: float = 600) -> GuardTrigger:
    spec = TriggerSpec(name=name, metric="error_rate", threshold=0.1, min_samples=100,
                       consecutive=consecutive)  # fmt: skip
    return from_policy(spec, window=3600, cooldown=cooldown)


def _action(outcome: Any = "rolled_back", until: datetime = T0 + timedelta(minutes=5),
            from_version: str = "v1.2.0") -> ProductionAction:  # fmt: skip
    return ProductionAction("fraud", T0 - timedelta(minutes=5), from_version, "v1.1.0", outcome,
                       "r", until)  # fmt: skip


class TestJudge:
    def test_breach_rolls_back_with_numbers(self) -> None:
        """One breach with enough samples fires; the reason carries value, threshold, samples."""
        verdict = judge(
            "fraud", "v1.1.0", [_trigger()], {"errors": _m(0.3)}, {}, now=T0, interval=IV
        )
        assert verdict.action == "rollback"
        assert "error_rate 0.3 > threshold 0.1" in verdict.reason
        assert "500 samples" in verdict.reason
        assert "3600s window" in verdict.reason
        assert verdict.cooldown == timedelta(seconds=600)
        memory = verdict.memories["errors"]
        assert (memory.streak, memory.last_fired_at, memory.version) == (0, T0, "v1.1.0")

    @pytest.mark.parametrize(
        "measurement",
        [_m(0.9, n=20), _m(None, status=Status.NODATA), _m(None, status=Status.ERROR), None],
    )
    def test_unjudgeable_never_rolls_back(self, measurement: Measurement | None) -> None:
        """Too few samples, no data, an error or no measurement: nothing happens."""
        measured = {"errors": measurement} if measurement is not None else {}
        verdict = judge("fraud", "v1.1.0", [_trigger()], measured, {}, now=T0, interval=IV)
        assert verdict.action == "none"
        assert verdict.memories["errors"].streak == 0

    def test_consecutive_breaches_from_memory(self) -> None:
        """With consecutive=2 the first breach is remembered, the second fires."""
        first = judge(
            "fraud", "v1.1.0", [_trigger(2)], {"errors": _m(0.3)}, {}, now=T0, interval=IV
        )
        assert first.action == "none"
        assert first.memories["errors"].streak == 1
        second = judge("fraud", "v1.1.0", [_trigger(2)], {"errors": _m(0.3)}, first.memories,
                       now=T0 + timedelta(minutes=1), interval=IV)  # fmt: skip
        assert second.action == "rollback"
        ok = judge(
            "fraud",
            "v1.1.0",
            [_trigger(2)],
            {"errors": _m(0.01)},
            first.memories,
            now=T0,
            interval=IV,
        )
        assert ok.memories["errors"].streak == 0

    def test_stale_streak_starts_over(self) -> None:
        """A breach judged more than STREAK_GAP_INTERVALS guard intervals ago (or at an
        unknown time) does not make a new breach the second in a row; within it, it does."""
        trig, bad = [_trigger(2)], {"errors": _m(0.3)}
        first = judge("fraud", "v1.1.0", trig, bad, {}, now=T0, interval=IV)
        edge = T0 + IV * STREAK_GAP_INTERVALS
        assert judge("fraud", "v1.1.0", trig, bad, first.memories, now=edge,
                     interval=IV).action == "rollback"  # fmt: skip
        late = judge("fraud", "v1.1.0", trig, bad, first.memories,
                     now=edge + timedelta(seconds=1), interval=IV)  # fmt: skip
        assert late.action == "none"
        assert late.memories["errors"].streak == 1
        unknown = {"errors": replace(first.memories["errors"], at=None)}
        assert judge("fraud", "v1.1.0", trig, bad, unknown, now=T0 + IV,
                     interval=IV).action == "none"  # fmt: skip
        slow = judge("fraud", "v1.1.0", trig, bad, first.memories, now=edge,
                     interval=IV / 2)  # fmt: skip
        assert slow.action == "none"  # the gap is measured in the guard's own intervals

    def test_streak_of_another_version_is_ignored(self) -> None:
        """A streak belongs to one production version."""
        old = {"errors": TriggerMemory("v1.0.0", 5, None)}
        verdict = judge(
            "fraud", "v1.1.0", [_trigger(2)], {"errors": _m(0.3)}, old, now=T0, interval=IV
        )
        assert verdict.action == "none"

    def test_cooldown_blocks_then_lapses(self) -> None:
        """A firing within the cooldown of the last action holds; after it, it acts."""
        blocked = judge("fraud", "v1.1.0", [_trigger()], {"errors": _m(0.3)}, {}, now=T0,
                        interval=IV, last_action=_action())  # fmt: skip
        assert blocked.action == "cooldown"
        assert "in cooldown" in blocked.reason
        assert blocked.memories["errors"].status == "cooldown"
        later = judge("fraud", "v1.1.0", [_trigger()], {"errors": _m(0.3)}, {},
                      now=T0 + timedelta(minutes=6), interval=IV,
                      last_action=_action())  # fmt: skip
        assert later.action == "rollback"

    def test_pending_action_not_applied_does_not_block(self) -> None:
        """A rollback recorded but never made (crash) is retried at once."""
        pending = _action("pending", from_version="v1.1.0")
        verdict = judge("fraud", "v1.1.0", [_trigger()], {"errors": _m(0.3)}, {}, now=T0,
                        interval=IV, last_action=pending)  # fmt: skip
        assert verdict.action == "rollback"

    def test_policy_wins_name_clash(self) -> None:
        """Policy triggers come first and shadow registry triggers of the same name."""
        policy, other = _trigger(name="a"), _trigger(name="b")
        stored = replace_origin(_trigger(name="a", cooldown=1))
        assert merge([policy], [stored, other]) == (policy, other)

    def test_registered_accuracy_is_the_drop_baseline(self) -> None:
        """Accuracy 0.70 against a registered 0.90 is a 0.20 drop."""
        spec = TriggerSpec(name="drop", metric="accuracy", threshold=0.1, compare="drop")
        trigger = from_policy(spec, window=3600, cooldown=0)
        measured = Measurement("accuracy", SUBJECT, WINDOW, Status.OK, 0.70, 400)
        base = registered_baseline({"metrics": {"accuracy": 0.9}}, "accuracy", measured)
        assert base is not None
        verdict = judge("fraud", "v1.1.0", [trigger], {"drop": measured}, {}, now=T0, interval=IV,
                        baselines={"drop": base})  # fmt: skip
        assert verdict.action == "rollback"
        assert registered_baseline({}, "accuracy", measured) is None
        no_base = judge("fraud", "v1.1.0", [trigger], {"drop": measured}, {}, now=T0, interval=IV)
        assert no_base.action == "none"


def replace_origin(trigger: GuardTrigger) -> GuardTrigger:
    return GuardTrigger(trigger.spec, trigger.window, trigger.cooldown, "registry")


# -- guard passes on real parts --------------------------------------------------------


@dataclass
class World:
    tmp: Path
    clock: Clock
    registry: ModelRegistry
    ingest: IngestStore
    routes: Path
    metrics: CollectorRegistry
    decisions: list[DecisionEvent]
    controller: Controller
    guard: Guard

    def restart(self, cfg: Config | None = None) -> None:
        """A new controller and guard on the same database, as after a daemon restart."""
        self.controller, self.guard, self.metrics = _build(
            self.tmp, self.clock, self.registry, self.ingest, self.routes,
            cfg or self.controller.config, self.decisions,
        )  # fmt: skip

    def bad(self, version: str, n: int = 200, error_rate: float = 0.5, seed: int = 0) -> None:
        traffic(self.ingest, "fraud", self.clock() - timedelta(seconds=1),
                {version: (n, 0.8, error_rate)}, seed=seed)  # fmt: skip

    def prod(self, model: str = "fraud") -> str:
        return str(self.registry.resolve(model).version)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.get_sample_value(name, labels or {}) or 0.0


Parts = tuple[Controller, Guard, CollectorRegistry]


def _build(tmp: Path, clock: Clock, registry: ModelRegistry, ingest: IngestStore, routes: Path,
           cfg: Config, decisions: list[DecisionEvent]) -> Parts:  # fmt: skip
    collector = CollectorRegistry()
    store = RolloutStore.open(registry.url)
    controller = file_controller(cfg, registry, store, ingest, routes, clock, collector)
    controller.on_decision = decisions.append
    controller.reconcile_routers()
    return controller, Guard(controller, GuardStore(store.engine), metrics=collector), collector


def _config(tmp: Path, policy: bool = True, **guard: Any) -> Config:
    cfg = config(tmp, tmp / "routes.json", f"sqlite:///{tmp}/ingest.db")
    models = cfg.models if policy else {}
    return cfg.model_copy(update={"models": models, "guard": GuardSection(**guard)})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """fraud: 1.0.0 then 1.1.0 in production; solo: one production version only."""
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "1.0.0", "production")
    register(registry, tmp_path, "fraud", "1.1.0", "production")
    register(registry, tmp_path, "solo", "1.0.0", "production")
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    routes = tmp_path / "routes.json"
    decisions: list[DecisionEvent] = []
    parts = _build(tmp_path, clock, registry, ingest, routes, _config(tmp_path, cooldown=600),
                   decisions)  # fmt: skip
    yield World(tmp_path, clock, registry, ingest, routes, parts[2], decisions, *parts[:2])
    ingest.close()
    parts[0].store.close()
    registry.close()


def _routed(world: World) -> list[tuple[str, int]]:
    return [(b.version, b.weight) for b in read_table(world.routes)["fraud"].backends]


class TestGuardPass:
    def test_breach_rolls_back_to_previous_production(self, world: World) -> None:
        """A bad production version is rolled back in the registry (audited, with the
        trigger's numbers), routed away from, told to the notifiers and counted."""
        before = read_table(world.routes)["fraud"].revision
        world.bad("v1.1.0")
        (verdict,) = world.guard.run_once()
        assert verdict.action == "rollback"
        assert world.prod() == "v1.0.0"
        assert world.registry.get_model_version("fraud", "1.1.0").stage == "archived"
        last = world.registry.history("fraud")[-1]
        assert (last.kind, last.actor, str(last.version)) == ("rollback", GUARD_ACTOR, "v1.0.0")
        assert last.reason is not None
        for part in ("guard trigger errors fired", "error_rate", "threshold 0.2", "200 samples",
                     "3600s"):  # fmt: skip
            assert part in last.reason
        audited = [e for e in world.registry.audit_log() if e.actor == GUARD_ACTOR]
        assert {e.action for e in audited} == {"rollback"}
        assert _routed(world) == [("v1.0.0", 100)]
        assert read_table(world.routes)["fraud"].revision > before
        (event,) = world.decisions
        assert (event.kind, event.model, event.version) == (EventKind.ROLLED_BACK, "fraud",
                                                            "v1.1.0")  # fmt: skip
        assert event.details["Production now"] == "v1.0.0"
        assert world.value("modelreg_guard_rollbacks_total", {"model": "fraud"}) == 1
        assert world.value("modelreg_guard_evaluations_total", {"status": "fired"}) == 1
        (action,) = world.guard.store.ledger.actions("fraud")
        assert (action.outcome, action.from_version, action.to_version) == (
            "rolled_back", "v1.1.0", "v1.0.0",
        )  # fmt: skip

    def test_guard_state_over_http(self, world: World) -> None:
        """GET /v1/guard shows each trigger's last judgement and the last action with
        its cooldown; ?model= narrows it; without a guard the route says so."""
        import warnings

        from controller.http.app import ApiDeps, create_app

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

        world.bad("v1.1.0")
        world.guard.run_once()
        deps = ApiDeps(controller=world.controller, metrics=CollectorRegistry(),
                       guard=world.guard.store)  # fmt: skip
        with TestClient(create_app(deps)) as client:
            (fraud,) = client.get("/v1/guard", params={"model": "fraud"}).json()
            assert fraud["triggers"]["errors"]["status"] == "fired"
            assert fraud["triggers"]["errors"]["samples"] == 200
            action = fraud["last_action"]
            assert (action["outcome"], action["from"], action["to"]) == (
                "rolled_back", "v1.1.0", "v1.0.0",
            )  # fmt: skip
            assert action["in_cooldown"] is True
            world.clock.advance(601)
            (later,) = client.get("/v1/guard", params={"model": "fraud"}).json()
            assert later["last_action"]["in_cooldown"] is False
            assert [m["model"] for m in client.get("/v1/guard").json()] == ["fraud"]
        bare = replace(deps, guard=None, metrics=CollectorRegistry())
        with TestClient(create_app(bare)) as client:
            assert client.get("/v1/guard").status_code == 404

    def test_insufficient_samples_do_nothing(self, world: World) -> None:
        """20 events against min_samples 50: no rollback, counted as insufficient."""
        world.bad("v1.1.0", n=20)
        (verdict,) = world.guard.run_once()
        assert verdict.action == "none"
        assert world.prod() == "v1.1.0"
        assert world.value("modelreg_guard_evaluations_total", {"status": "insufficient"}) == 1
        assert world.guard.store.ledger.actions("fraud") == []

    def test_a_canary_trigger_without_min_samples_needs_the_guard_floor(self, world: World) -> None:
        """A policy trigger that leaves min_samples at 0 (as canary triggers do) does not
        roll production back on a handful of failed requests: the guard section's
        min_samples (default 100) is the floor; 150 bad requests do."""
        plain = {"name": "errors", "metric": "error_rate", "threshold": 0.2}
        cfg = config(world.tmp, world.routes, f"sqlite:///{world.tmp}/ingest.db",
                     triggers=[plain])  # fmt: skip
        world.restart(cfg.model_copy(update={"guard": GuardSection(cooldown=600)}))
        world.bad("v1.1.0", n=3, error_rate=1.0)
        (verdict,) = world.guard.run_once()
        assert verdict.action == "none"
        assert world.prod() == "v1.1.0"
        world.bad("v1.1.0", n=150, error_rate=1.0, seed=1)
        (verdict,) = world.guard.run_once()
        assert verdict.action == "rollback"
        assert world.prod() == "v1.0.0"

    def test_healthy_and_unguarded_models(self, world: World) -> None:
        """A healthy version stays; solo has neither policy nor registry triggers."""
        world.bad("v1.1.0", error_rate=0.01)
        verdicts = world.guard.run_once()
        assert [(v.model, v.action) for v in verdicts] == [("fraud", "none")]

    def test_registry_triggers_without_policy_need_consecutive(self, world: World) -> None:
        """Triggers set through the registry API guard a model with no policy, measured on
        the ingest source; consecutive=2 needs two passes in a row."""
        world.restart(_config(world.tmp, policy=False))
        world.registry.set_auto_rollback_triggers(
            "fraud", error_rate_threshold=0.1, window="10m", min_samples=50, consecutive=2
        )
        world.bad("v1.1.0")
        (first,) = world.guard.run_once()
        assert first.action == "none"
        assert world.prod() == "v1.1.0"
        world.clock.advance(60)
        world.bad("v1.1.0", seed=1)
        (second,) = world.guard.run_once()
        assert second.action == "rollback"
        assert world.prod() == "v1.0.0"
        reason = world.registry.history("fraud")[-1].reason or ""
        assert "guard trigger error_rate fired" in reason

    def test_restart_keeps_the_streak(self, world: World) -> None:
        """A breach remembered before a restart counts towards consecutive after it."""
        world.registry.set_auto_rollback_triggers(
            error_rate_threshold=0.1, window="10m", min_samples=50, consecutive=2
        )  # registry-wide; the policy's own trigger (0.2) also watches fraud
        world.bad("v1.1.0", error_rate=0.15)  # breaches only the registry-wide 0.1
        assert world.guard.run_once()[0].action == "none"
        world.restart()
        world.clock.advance(60)
        world.bad("v1.1.0", error_rate=0.15, seed=1)
        verdicts = {v.model: v for v in world.guard.run_once()}
        assert verdicts["fraud"].action == "rollback"
        assert world.prod() == "v1.0.0"
        assert verdicts["solo"].action == "none"  # guarded too, but has no traffic

    def test_streak_does_not_span_a_rollout(self, world: World) -> None:
        """consecutive=2: one breach, then a day-long rollout (the guard skips the model)
        that is rolled back, then one more breach: two breaches a day apart are not two
        in a row, so nothing fires; the next pass's breach is the second in a row."""
        world.registry.set_auto_rollback_triggers(
            "fraud", error_rate_threshold=0.1, window="10m", min_samples=50, consecutive=2
        )  # the policy's own trigger (0.2) is not breached by 0.15
        world.bad("v1.1.0", error_rate=0.15)
        assert world.guard.run_once()[0].action == "none"
        register(world.registry, world.tmp, "fraud", "1.2.0", "staging")
        (rollout,) = world.controller.watch_once()
        assert world.guard.run_once() == []  # the rollout judges fraud now
        world.clock.advance(86400)
        done = world.controller.operate(rollout.id, Event.ROLLBACK, reason="bad", actor="ops")
        assert done.phase is Phase.ROLLED_BACK
        world.bad("v1.1.0", error_rate=0.15, seed=1)
        (after,) = world.guard.run_once()
        assert after.action == "none", after.reason
        assert after.memories["error_rate"].streak == 1
        assert world.prod() == "v1.1.0"
        world.clock.advance(60)
        world.bad("v1.1.0", error_rate=0.15, seed=2)
        assert world.guard.run_once()[0].action == "rollback"
        assert world.prod() == "v1.0.0"

    def test_cooldown_stops_flapping_down_the_chain(self, world: World) -> None:
        """After a guard rollback, the restored version is not rolled back within the
        cooldown, even when it breaches; after the cooldown it is."""
        register(world.registry, world.tmp, "fraud", "1.2.0", "production")
        world.restart()
        world.bad("v1.2.0")
        world.guard.run_once()
        assert world.prod() == "v1.1.0"
        world.clock.advance(60)
        world.bad("v1.1.0")
        (held,) = world.guard.run_once()
        assert held.action == "cooldown"
        assert world.prod() == "v1.1.0"
        world.restart()  # the cooldown lives in the database
        world.clock.advance(600)
        world.bad("v1.1.0", seed=2)
        (acted,) = world.guard.run_once()
        assert acted.action == "rollback"
        assert world.prod() == "v1.0.0"
        assert len(world.decisions) == 2

    def test_nothing_to_roll_back_to_is_recorded_once(self, world: World) -> None:
        """A firing with no earlier production version is recorded, not retried every pass."""
        world.registry.set_auto_rollback_triggers("solo", error_rate_threshold=0.1,
                                                  min_samples=50, cooldown="1h")  # fmt: skip
        traffic(world.ingest, "solo", T0 - timedelta(seconds=1), {"v1.0.0": (200, 0.8, 0.5)})
        verdicts = {v.model: v for v in world.guard.run_once()}
        assert verdicts["solo"].action == "rollback"
        (action,) = world.guard.store.ledger.actions("solo")
        assert action.outcome == "nothing_to_roll_back"
        assert "no earlier production version" in action.reason
        world.clock.advance(60)
        traffic(world.ingest, "solo", world.clock() - timedelta(seconds=1),
                {"v1.0.0": (200, 0.8, 0.5)}, seed=3)  # fmt: skip
        again = {v.model: v for v in world.guard.run_once()}
        assert again["solo"].action == "cooldown"
        assert len(world.guard.store.ledger.actions("solo")) == 1
        assert world.prod("solo") == "v1.0.0"
        assert world.decisions == []

    def test_active_rollout_is_left_to_its_policy(self, world: World) -> None:
        """A model with an active rollout is not guarded: the rollout's triggers judge it."""
        register(world.registry, world.tmp, "fraud", "1.2.0", "staging")
        assert world.controller.watch_once()
        world.bad("v1.1.0")
        assert world.guard.run_once() == []
        assert world.prod() == "v1.1.0"

    def test_disabled_guard_does_nothing(self, world: World) -> None:
        """guard.enabled: false switches the pass off."""
        world.restart(_config(world.tmp, enabled=False))
        world.bad("v1.1.0")
        assert world.guard.run_once() == []
        assert world.prod() == "v1.1.0"


class TestGuardRepairsAndBaselines:
    def test_pending_action_from_a_crash_is_redone(self, world: World) -> None:
        """A rollback recorded as pending but never made (the daemon died before the
        registry call) does not hold the model in cooldown: the next firing acts."""
        crashed = RollbackRequest(
            model="fraud",
            cause=Cause.GUARD,
            actor=GUARD_ACTOR,
            reason="crashed",
            cooldown_until=T0 + timedelta(hours=1),
        )
        world.guard.store.ledger.begin(crashed, "v1.1.0", now=T0 - timedelta(seconds=30))
        world.bad("v1.1.0")
        (verdict,) = world.guard.run_once()
        assert verdict.action == "rollback"
        assert world.prod() == "v1.0.0"
        assert [a.outcome for a in world.guard.store.ledger.actions("fraud")] == [
            "pending",
            "rolled_back",
        ]

    def test_accuracy_drop_against_registered_accuracy(self, world: World) -> None:
        """The seed's accuracy_drop_threshold compares the window's accuracy with the
        accuracy the version was registered with."""
        world.restart(_config(world.tmp, policy=False))
        artifact = world.tmp / "acc.bin"
        artifact.write_bytes(b"acc")
        for version in ("2.0.0", "2.1.0"):
            world.registry.register_model("acc", str(artifact), version=version,
                                          stage="staging", metadata={"accuracy": 0.9})  # fmt: skip
            world.registry.promote_model("acc", version, to_stage="production", reason="base")
        world.registry.set_auto_rollback_triggers("acc", accuracy_drop_threshold=0.1,
                                                  min_samples=50)  # fmt: skip
        traffic(world.ingest, "acc", T0 - timedelta(seconds=1), {"v2.1.0": (300, 0.6, 0.0)})
        (verdict,) = world.guard.run_once()
        assert verdict.action == "rollback"
        assert world.prod("acc") == "v2.0.0"
        reason = world.registry.history("acc")[-1].reason or ""
        assert "accuracy_drop fired" in reason
        assert "accuracy drop 0." in reason
        assert "> threshold 0.1 over" in reason


class TestNeverPromotedAgainAutomatically:
    def test_guard_rolled_back_version_is_not_restarted(self, world: World) -> None:
        """Re-staged after a guard rollback, the version gets no automatic rollout; a new
        version does, and a person may still promote the old one."""
        world.bad("v1.1.0")
        world.guard.run_once()
        world.registry.promote_model("fraud", "1.1.0", to_stage="staging", reason="retry")
        assert world.controller.watch_once() == []
        register(world.registry, world.tmp, "fraud", "1.2.0", "staging")
        (started,) = world.controller.watch_once()
        assert started.treatment == "v1.2.0"
        world.controller.operate(started.id, _abort(), reason="test")
        world.registry.promote_model("fraud", "1.1.0", to_stage="production", reason="by hand")
        assert world.prod() == "v1.1.0"

    def test_operator_rolled_back_version_is_not_restarted(self, world: World) -> None:
        """The same holds for a rollback an operator made through the registry."""
        world.registry.rollback("fraud", reason="bad", actor="ops")
        world.registry.promote_model("fraud", "1.1.0", to_stage="staging", reason="retry")
        assert world.controller.watch_once() == []
        assert rolled_back_from_production(world.registry.history("fraud")) == {"v1.1.0"}


def _abort() -> Any:
    from controller.core.phases import Event

    return Event.ABORT


class TestGuardConfig:
    @pytest.mark.parametrize(
        ("guard", "message"),
        [
            ({"source": "nope"}, "guard.source: unknown source 'nope'"),
            ({"interval": 0}, "guard.interval"),
            ({"cooldown": -1}, "guard.cooldown"),
            ({"every": 5}, "guard.every"),
        ],
    )
    def test_bad_guard_section_is_named(
        self, tmp_path: Path, guard: dict[str, Any], message: str
    ) -> None:
        """A wrong guard section fails validation naming the key."""
        with pytest.raises(ConfigError, match=message):
            parse_config(
                {"routers": {"t": {"kind": "file", "options": {"path": str(tmp_path / "r")}}},
                 "guard": guard},
                where="test",
            )  # fmt: skip


class TestGuardJob:
    def test_one_job_replanned_on_reload(self, world: World) -> None:
        """One guard job for all models at guard.interval; a reload re-plans or removes it."""
        from controller.runtime.scheduler import GUARD, WATCHER, RolloutScheduler

        scheduler = RolloutScheduler(world.controller, world.guard)
        scheduler.start()
        try:
            assert scheduler.job_ids() == [GUARD, WATCHER]
            job = scheduler._scheduler.get_job(GUARD)
            assert job.trigger.interval == timedelta(seconds=60)
            assert (job.coalesce, job.max_instances) == (True, 1)
            world.controller.config = _config(world.tmp, interval=5)
            scheduler.replan()
            assert scheduler._scheduler.get_job(GUARD).trigger.interval == timedelta(seconds=5)
            world.controller.config = _config(world.tmp, enabled=False)
            scheduler.replan()
            assert scheduler.job_ids() == [WATCHER]
        finally:
            scheduler.shutdown()


class TestRolloutStartRace:
    def test_control_is_read_under_the_model_lock(self, world: World) -> None:
        """A production rollback that lands while a rollout is starting (the guard or an
        alert holds the model's lock) is seen by the rollout: its control is the
        restored version, not the one just pulled from production."""
        register(world.registry, world.tmp, "fraud", "1.2.0", "staging")
        started: list[str] = []
        with world.controller.actuator.lock("fraud"):  # as the guard's rollback holds it
            starter = threading.Thread(
                target=lambda: started.append(
                    world.controller.start_rollout("fraud", "1.2.0", reason="race").control
                )
            )
            starter.start()
            starter.join(timeout=0.5)  # it must wait for the lock, not read around it
            world.registry.rollback("fraud", reason="guard fired meanwhile")
        starter.join(timeout=30)
        assert started == ["v1.0.0"]
