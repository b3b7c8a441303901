"""Shared helpers for the approval-loop tests: a controller ticked to ``awaiting_approval``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from controller.adapters.notify import DecisionEvent
from controller.adapters.rollout_store import RolloutStore
from controller.config import Config
from controller.core.decide import AwaitApproval
from controller.core.phases import Phase
from controller.shell.controller import Controller
from monitors import IngestStore
from registry import ModelRegistry
from serving.route import read_table
from tests.clock import Clock

from .support import config, file_controller, register, traffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
APPROVERS = ["alice", "bob", "carol", "tester"]  # tester registers the versions


@dataclass
class Loop:
    tmp: Path
    registry: ModelRegistry
    ingest: IngestStore
    store: RolloutStore
    clock: Clock
    routes: Path
    config: Config | None = None
    controller: Controller | None = None
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    told: list[DecisionEvent] = field(default_factory=list)

    def build(self, **policy: Any) -> Controller:
        """A controller on the same databases: what a (re)started daemon builds."""
        self.config = config(self.tmp, self.routes, f"sqlite:///{self.tmp}/ingest.db", **policy)
        self.metrics = CollectorRegistry()
        self.controller = file_controller(
            self.config, self.registry, RolloutStore(self.store.engine), self.ingest,
            self.routes, self.clock, self.metrics,
        )  # fmt: skip
        self.controller.on_decision = self.told.append
        return self.controller

    @property
    def ctl(self) -> Controller:
        assert self.controller is not None
        return self.controller

    def route(self) -> dict[str, int]:
        return {b.version: b.weight for b in read_table(self.routes)["fraud"].backends}

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.get_sample_value(name, labels) or 0.0

    def to_approval(self) -> int:
        """Start a rollout of v1.1.0, feed it a clear win and tick until it awaits approval."""
        register(self.registry, self.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = self.ctl.watch_once()
        self.ctl.reconcile_once(rollout.id)  # 50% to the candidate
        self.clock.advance(6)
        traffic(self.ingest, "fraud", self.clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        decision = self.ctl.reconcile_once(rollout.id)
        assert isinstance(decision, AwaitApproval), decision
        assert self.store.get(rollout.id).phase is Phase.AWAITING_APPROVAL
        return rollout.id

    def tick(self, rollout_id: int, seconds: float = 1.0) -> Any:
        self.clock.advance(seconds)
        return self.ctl.reconcile_once(rollout_id)


def make_loop(tmp_path: Path) -> Iterator[Loop]:
    """A registry with fraud v1.0.0 in production, its rollout store and a controller."""
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "v1.0.0", "production")
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    world = Loop(tmp_path, registry, ingest, store, clock, tmp_path / "routes" / "routes.json")
    world.build()
    yield world
    ingest.close()
    store.close()
    registry.close()


def guard(loop: Loop, min_approvals: int = 2) -> None:
    """The registry's production stage for fraud needs ``min_approvals`` of APPROVERS."""
    loop.registry.set_approval_required("production", APPROVERS, min_approvals, model="fraud")
