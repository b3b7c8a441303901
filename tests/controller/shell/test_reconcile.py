"""controller.shell: whole ticks on real SQLite, a real ingest store and the file router."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import Config
from controller.core.causes import Cause
from controller.core.decide import Promote, RollBack, SetWeight
from controller.core.phases import Event, Phase
from controller.errors import CannotStart
from controller.shell.controller import Controller
from monitors import IngestStore
from registry import ModelRegistry
from serving.route import Route, read_table
from tests.clock import Clock

from ..support import config, file_controller, register, traffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Liar(FileRouter):
    """A fake router (no real one can be made to lie on command): while ``lying``,
    ``set`` answers as if it applied the route and keeps the file as it was."""

    lying = True

    def set(self, route: Route) -> None:
        if not self.lying:
            super().set(route)


@dataclass
class World:
    tmp: Path
    registry: ModelRegistry
    ingest: IngestStore
    store: RolloutStore
    clock: Clock
    routes: Path
    config: Config
    controller: Controller
    metrics: CollectorRegistry

    def rebuild(self, **policy: object) -> Controller:
        """A fresh controller on the same database: what a restarted daemon builds."""
        self.config = config(self.tmp, self.routes, f"sqlite:///{self.tmp}/ingest.db", **policy)
        self.metrics = CollectorRegistry()
        self.controller = file_controller(
            self.config, self.registry, RolloutStore(self.store.engine), self.ingest,
            self.routes, self.clock, self.metrics,
        )  # fmt: skip
        return self.controller


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "v1.0.0", "production")
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes" / "routes.json"
    w = World(tmp_path, registry, ingest, store, clock, routes, None, None, None)  # type: ignore[arg-type]
    w.rebuild()
    yield w
    ingest.close()
    store.close()
    registry.close()


def metric(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


class TestReconcile:
    def test_canary_promotes(self, world: World) -> None:
        """Staging v1.1.0 starts a rollout, gets 50%, is judged better and promoted."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        assert world.controller.watch_once() == []  # level-triggered, idempotent
        first = world.controller.reconcile_once(rollout.id)
        assert isinstance(first, SetWeight)
        route = read_table(world.routes)["fraud"]
        assert {b.version: b.weight for b in route.backends} == {"v1.0.0": 50, "v1.1.0": 50}
        world.clock.advance(6)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        decision = world.controller.reconcile_once(rollout.id)
        assert isinstance(decision, Promote), decision
        assert world.registry.resolve("fraud").version.__str__() == "v1.1.0"
        assert world.registry.get_model_version("fraud", "v1.0.0").stage == "archived"
        route = read_table(world.routes)["fraud"]
        assert [(b.version, b.weight) for b in route.backends] == [("v1.1.0", 100)]
        record = world.store.get(rollout.id)
        assert record.phase is Phase.PROMOTED
        assert record.intent is None
        decisions = world.store.decisions(rollout.id)
        assert [d.action for d in decisions] == ["set_weight", "promote"]
        assert all(d.applied for d in decisions)
        assert decisions[-1].numbers["metrics"]["accuracy"]["p_value"] < 0.05
        assert metric(world.metrics, "modelreg_controller_decisions_total", action="promote") == 1
        assert metric(world.metrics, "modelreg_controller_route_weight",
                      model="fraud", version="v1.1.0") == 100  # fmt: skip

    def test_a_candidate_whose_artifact_no_longer_verifies_is_rolled_back(
        self, world: World
    ) -> None:
        """The evidence says promote, but a bit of the candidate's stored artifact
        flipped since it was registered: serving could not load what was measured, so
        the rollout rolls back (typed cause), the candidate is archived and traffic
        goes back to production."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.controller.reconcile_once(rollout.id)
        digest = world.registry.get_model_version("fraud", "v1.1.0").artifact_digest
        assert digest is not None
        blob = world.registry.artifacts.path_for(digest)
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x01
        blob.chmod(0o644)
        blob.write_bytes(bytes(data))
        world.clock.advance(6)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        decision = world.controller.reconcile_once(rollout.id)
        assert isinstance(decision, RollBack), decision
        assert decision.cause is Cause.CORRUPT_ARTIFACT
        assert "v1.1.0's artifact" in decision.reason
        assert "is corrupted" in decision.reason
        assert decision.numbers["metrics"]["accuracy"]["p_value"] < 0.05  # the evidence kept
        assert world.store.get(rollout.id).phase is Phase.ROLLED_BACK
        assert world.registry.resolve("fraud").version.__str__() == "v1.0.0"
        assert world.registry.get_model_version("fraud", "v1.1.0").stage == "archived"
        route = read_table(world.routes)["fraud"]
        assert [(b.version, b.weight) for b in route.backends if b.weight] == [("v1.0.0", 100)]
        assert metric(world.metrics, "modelreg_controller_rollbacks_total",
                      reason="corrupt_artifact") == 1  # fmt: skip

    def test_evidence_is_stored_and_survives_a_restart(self, world: World) -> None:
        """Each judged look stores its analysis state with the rollout; a restarted daemon
        (a new controller on the same database) continues the same tests: the harm test
        keeps its mixture scale and the looks keep counting."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.controller.reconcile_once(rollout.id)
        world.clock.advance(2)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (300, 0.7, 0.01), "v1.1.0": (300, 0.7, 0.01)})  # fmt: skip
        world.controller.reconcile_once(rollout.id)
        stored = world.store.get(rollout.id).evidence
        assert stored is not None
        first = stored.metrics["accuracy"]
        assert first.looks == 1
        world.rebuild()
        world.clock.advance(1)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (300, 0.7, 0.01), "v1.1.0": (300, 0.7, 0.01)}, seed=1)  # fmt: skip
        world.controller.reconcile_once(rollout.id)
        after = world.store.get(rollout.id).evidence
        assert after is not None
        again = after.metrics["accuracy"]
        assert (again.looks, again.tau_worse) == (2, first.tau_worse)
        assert again.p_worse <= first.p_worse
        cause = world.store.decisions(rollout.id)[-1].numbers["cause"]
        assert cause == "dwelling"

    def test_regression_rolls_back(self, world: World) -> None:
        """A candidate with many errors is rolled back: traffic to control, archived, reason."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.controller.reconcile_once(rollout.id)
        world.clock.advance(2)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (300, 0.7, 0.01), "v1.1.0": (300, 0.7, 0.4)})  # fmt: skip
        decision = world.controller.reconcile_once(rollout.id)
        assert isinstance(decision, RollBack)
        candidate = world.registry.get_model_version("fraud", "v1.1.0")
        assert candidate.stage == "archived"
        assert str(world.registry.resolve("fraud").version) == "v1.0.0"
        last = world.registry.history("fraud")[-1]
        assert last.to_stage == "archived"
        assert last.reason is not None
        assert "trigger fired" in last.reason
        route = read_table(world.routes)["fraud"]
        assert [(b.version, b.weight) for b in route.backends] == [("v1.0.0", 100)]
        assert metric(world.metrics, "modelreg_controller_rollbacks_total", reason="trigger") == 1
        assert world.controller.watch_once() == []  # never restarted for the same version

    def test_router_failure_keeps_intent_and_repairs_once(self, world: World) -> None:
        """A router that cannot write leaves the intent; a restarted controller applies it
        once, without a second decision. The step starts when serving took the route
        (the repair), not when it was decided: the traffic before it was the old
        split's, and counting it as the new one's would be a false sample-ratio
        mismatch."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.routes.parent.parent.mkdir(parents=True, exist_ok=True)
        world.routes.parent.write_text("not a directory")  # the router's directory is a file
        decision = world.controller.reconcile_once(rollout.id)
        assert isinstance(decision, SetWeight)
        record = world.store.get(rollout.id)
        assert record.intent is not None
        assert record.phase is Phase.PENDING
        assert "table" in world.controller.router_errors
        assert metric(world.metrics, "modelreg_controller_router_ready", router="table") == 0
        world.routes.parent.unlink()
        world.clock.advance(3)
        restarted = world.rebuild()
        assert restarted.reconcile_once(rollout.id) is None  # only the repair
        record = world.store.get(rollout.id)
        assert record.intent is None
        assert record.phase is Phase.PROGRESSING
        assert record.step_started_at == T0 + timedelta(seconds=3)  # the repair's time
        assert len(world.store.decisions(rollout.id)) == 1
        route = read_table(world.routes)["fraud"]
        assert route.weight_of("v1.1.0") == 50
        assert restarted.desired_route("fraud") == route

    def test_a_router_that_does_not_hold_what_it_took_is_failing(self, world: World) -> None:
        """A push is confirmed by reading the route back: a router that answers yes and
        keeps its old route is failing like one that says no (the intent stays, the
        router is named in router_errors), until it holds what was pushed."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        assert world.controller.reconcile_routers() == {}
        honest = world.controller.routers["table"]
        assert isinstance(honest, FileRouter)
        liar = Liar(path=world.routes)
        world.controller.routers["table"] = liar
        (rollout,) = world.controller.watch_once()
        assert isinstance(world.controller.reconcile_once(rollout.id), SetWeight)
        record = world.store.get(rollout.id)
        assert record.intent is not None
        assert record.phase is Phase.PENDING
        error = world.controller.router_errors["table"]
        assert "took revision" in error
        assert "(v1.0.0 50%, v1.1.0 50%) but holds revision" in error
        assert metric(world.metrics, "modelreg_controller_router_ready", router="table") == 0
        assert world.controller.reconcile_routers() == {"table": error}  # still lying
        liar.lying = False
        world.clock.advance(2)
        assert world.controller.reconcile_once(rollout.id) is None  # the repair
        record = world.store.get(rollout.id)
        assert record.intent is None
        assert record.phase is Phase.PROGRESSING
        assert record.step_started_at == T0 + timedelta(seconds=2)
        assert world.controller.router_errors == {}
        assert read_table(world.routes)["fraud"].weight_of("v1.1.0") == 50

    def test_reconcile_routers_from_database(self, world: World) -> None:
        """On start, a router missing the route (or holding another) gets the database's."""
        assert world.controller.reconcile_routers() == {}
        route = read_table(world.routes)["fraud"]
        assert [(b.version, b.weight) for b in route.backends] == [("v1.0.0", 100)]
        assert route.backends[0].digest == world.registry.resolve("fraud").artifact_digest

    def test_operator_pause_resume_abort(self, world: World) -> None:
        """Pause holds, resume continues, abort returns all traffic to the control."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.controller.reconcile_once(rollout.id)
        paused = world.controller.operate(rollout.id, Event.PAUSE, reason="look", actor="ann")
        assert paused.phase is Phase.PAUSED
        resumed = world.controller.operate(rollout.id, Event.RESUME, reason="ok", actor="ann")
        assert resumed.phase is Phase.PROGRESSING
        aborted = world.controller.operate(rollout.id, Event.ABORT, reason="stop", actor="ann")
        assert aborted.phase is Phase.ABORTED
        assert read_table(world.routes)["fraud"].weight_of("v1.0.0") == 100
        assert world.registry.get_model_version("fraud", "v1.1.0").stage == "staging"

    def test_approval_path(self, world: World) -> None:
        """With approval required, a winning candidate waits; approving promotes it."""
        world.rebuild(require_approval=True)
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.controller.reconcile_once(rollout.id)
        world.clock.advance(6)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        world.controller.reconcile_once(rollout.id)
        assert world.store.get(rollout.id).phase is Phase.AWAITING_APPROVAL
        done = world.controller.operate(rollout.id, Event.APPROVE, reason="lgtm", actor="bob")
        assert done.phase is Phase.PROMOTED
        assert str(world.registry.resolve("fraud").version) == "v1.1.0"


class TestStart:
    def test_no_artifact(self, world: World) -> None:
        """A version registered without an artifact cannot be rolled out."""
        world.registry.register_model("fraud", None, version="v2.0.0", stage="staging")
        with pytest.raises(CannotStart, match="no model artifact"):
            world.controller.start_rollout("fraud", "v2.0.0", reason="manual")

    def test_no_policy(self, world: World) -> None:
        """A model without a policy cannot be rolled out."""
        with pytest.raises(CannotStart, match="no rollout policy"):
            world.controller.start_rollout("other", "v1.0.0", reason="manual")

    def test_one_active_per_model(self, world: World) -> None:
        """A second candidate waits while one rollout is active."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        world.controller.start_rollout("fraud", "v1.1.0", reason="manual")
        register(world.registry, world.tmp, "fraud", "v1.2.0", "dev")
        with pytest.raises(CannotStart, match="already active"):
            world.controller.start_rollout("fraud", "v1.2.0", reason="manual")


class TestScheduler:
    def test_jobs_rebuilt_from_database(self, world: World) -> None:
        """Started on an existing database, the scheduler has one job per active rollout
        (and the watcher), none for finished ones; jobs are in memory, not pickled."""
        from controller.runtime.scheduler import WATCHER, RolloutScheduler
        from monitors.testing import wait_until

        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        scheduler = RolloutScheduler(world.controller)
        scheduler.start()
        try:
            assert scheduler.job_ids() == sorted([f"rollout-{rollout.id}", WATCHER])
            world.controller.operate(rollout.id, Event.ABORT, reason="done", actor="t")
            scheduler.ensure_job(world.store.get(rollout.id))  # runs within 50 ms
            # A finished rollout's job removes itself on its next run.
            assert wait_until(lambda: scheduler.job_ids() == [WATCHER], timeout=10)
        finally:
            scheduler.shutdown()

    def test_jobs_set_ahead_by_a_clock_that_stepped_back_run_now(self, world: World) -> None:
        """APScheduler sets next runs by the wall clock: after it steps back ten minutes
        every job lies ten minutes ahead. ``rewind`` (what the scheduler's clock watcher
        calls) brings each such job to now, and leaves jobs due within their interval."""
        from controller.runtime.scheduler import WATCHER, RolloutScheduler

        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        scheduler = RolloutScheduler(world.controller)
        scheduler.start()
        try:
            assert scheduler.rewind() == []  # nothing stepped
            ahead = datetime.now(UTC) + timedelta(minutes=10)
            job = scheduler._scheduler.get_job(f"rollout-{rollout.id}")
            job.modify(next_run_time=ahead)
            scheduler._scheduler.get_job(WATCHER).modify(next_run_time=ahead)
            assert sorted(scheduler.rewind()) == sorted([f"rollout-{rollout.id}", WATCHER])
            now = datetime.now(UTC)
            for job_id in scheduler.job_ids():
                found = scheduler._scheduler.get_job(job_id)
                assert found.next_run_time <= now + timedelta(seconds=30), job_id
        finally:
            scheduler.shutdown()


class TestRegistryRefusal:
    def test_promotion_refused_is_dropped_not_retried_forever(self, world: World) -> None:
        """If the registry refuses the promotion (the candidate was moved to dev by
        someone), the intent is dropped with the reason and the rollout stays put."""
        register(world.registry, world.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = world.controller.watch_once()
        world.controller.reconcile_once(rollout.id)
        world.registry.promote_model("fraud", "v1.1.0", to_stage="dev", reason="pulled")
        world.clock.advance(6)
        traffic(world.ingest, "fraud", world.clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        decision = world.controller.reconcile_once(rollout.id)
        assert isinstance(decision, Promote)
        record = world.store.get(rollout.id)
        assert record.intent is None
        assert record.phase is Phase.PROGRESSING
        assert "dev" in record.reason
        assert str(world.registry.resolve("fraud").version) == "v1.0.0"
