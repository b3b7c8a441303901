"""``Controller``: the shell's facade, what the runtime, the HTTP app and the CLI hold.

It owns the injected parts (config, registry, rollout store, sources, routers, clock,
metrics), builds the ``Actuator`` (the only code that changes the world) and the
``Measurer``, and hands each job to its module: ``tick`` (one rollout evaluation and
operator actions), ``watch`` (starting rollouts, router reconciliation), ``alerts``
(Alertmanager actions); the guard pass (``guard_pass``) holds a ``Controller`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import structlog

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.notify import DecisionEvent, EventKind
from controller.adapters.request_store import RequestStore
from controller.adapters.rollout_store import RolloutRecord, RolloutStore
from controller.adapters.routing import Router
from controller.config import Config, PolicyConfig
from controller.core.causes import Cause
from controller.core.decisions import Decision
from controller.core.phases import Event
from controller.core.state import Observations
from controller.shell import tick, watch
from controller.shell.actuator import Actuator, Clock
from controller.shell.alerts import handle_alert
from controller.shell.clock_steps import ClockSteps
from controller.shell.measure import Measurer
from controller.shell.membership import Membership
from controller.shell.rounds import Rounds
from monitors import MetricSource
from monitors.alerts import AlertAction
from registry import ModelRegistry
from serving.route import Route

__all__ = ["Clock", "Controller"]

log = structlog.get_logger("controller")


class Controller:
    """Everything a tick needs, injected: config, registry, store, sources, routers, clock."""

    def __init__(
        self,
        *,
        config: Config,
        registry: ModelRegistry,
        store: RolloutStore,
        sources: Mapping[str, MetricSource],
        routers: Mapping[str, Router],
        clock: Clock,
        metrics: ControllerMetrics | None = None,
        actor: str = "modelreg-controller",
        clock_steps: ClockSteps | None = None,
    ) -> None:
        self.config = config
        # None: steps of the wall clock are not looked for (tests move an injected clock).
        self.clock_steps = clock_steps
        self.registry = registry
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.measurer = Measurer(sources=sources, metrics=metrics)
        self.actuator = Actuator(
            registry=registry,
            store=store,
            routers=routers,
            policy=self.policy,
            clock=clock,
            metrics=metrics,
            actor=actor,
        )
        self.routers = self.actuator.routers  # one dict: the actuator's
        self.rounds = Rounds(self)  # the scheduler jobs' batched ticks
        self.on_started: Callable[[RolloutRecord], None] | None = None
        # (model, version) -> why the watcher could not start it, said once (a log line
        # and a notification), not at every pass; said again if the reason changes.
        self._refused_starts: dict[tuple[str, str], str] = {}
        # Several daemons (``ha.enabled``): this member's shard leases; None: one daemon
        # owns every model.
        self.membership: Membership | None = None
        # Several daemons: the durable requests any member records for the owner.
        self.requests: RequestStore | None = None

    @property
    def on_decision(self) -> Callable[[DecisionEvent], None] | None:
        """Told of committed promotions, rollbacks, approval waits and failures."""
        return self.actuator.on_decision

    @on_decision.setter
    def on_decision(self, callback: Callable[[DecisionEvent], None] | None) -> None:
        self.actuator.on_decision = callback

    @property
    def router_errors(self) -> dict[str, str]:
        return self.actuator.router_errors

    def policy(self, model: str) -> PolicyConfig | None:
        return self.config.models.get(model)

    def owns(self, model: str) -> bool:
        """Whether this process acts on ``model`` now: always for one daemon; with
        several, while it holds the lease of the model's shard."""
        return self.membership is None or self.membership.token_for(model) is not None

    def acting(self) -> AbstractContextManager[None]:
        """One unit of work (a tick, a round, an operator's action) on the shards held
        as it begins (``Membership.pinned``): entered before the clock is read and the
        rollout loaded, so nothing it decides is written under a lease taken later."""
        return nullcontext() if self.membership is None else self.membership.pinned()

    # -- the jobs (each in its own module) -------------------------------------

    def start_rollout(self, model: str, version: str, *, reason: str) -> RolloutRecord:
        """Start judging ``version`` against production; ``CannotStart`` says why not."""
        return watch.start_rollout(self, model, version, reason=reason)

    def watch_once(self) -> list[RolloutRecord]:
        """Start a rollout for every staging version never judged (``shell.watch``)."""
        return watch.watch_once(self)

    def reconcile_once(self, rollout_id: int, *, force: bool = False) -> Decision | None:
        """The rollout's tick (``shell.tick``), batched with every other rollout due now
        unless ``force`` (``shell.rounds``); None when there was nothing to do."""
        return tick.reconcile_once(self, rollout_id, force=force)

    def measure(self, policy: PolicyConfig, record: RolloutRecord, now: datetime) -> Observations:
        """Both arms' measurements since the step started plus the settle time."""
        return self.measurer.observe(self.registry, policy, record, now)

    def operate(
        self,
        rollout_id: int,
        event: Event,
        *,
        reason: str,
        actor: str | None = None,
        cause: Cause = Cause.OPERATOR,
    ) -> RolloutRecord:
        """Pause, resume, abort, roll back, approve or reject a rollout (``shell.tick``)."""
        return tick.operate(self, rollout_id, event, reason=reason, actor=actor, cause=cause)

    def desired_route(self, model: str) -> Route | None:
        """What serving should have for ``model`` according to the database."""
        return self.actuator.desired_route(model)

    def reconcile_routers(self, progress: Callable[[], None] | None = None) -> dict[str, str]:
        """Make every router hold the database's routes (``shell.watch``); return the
        failing routers."""
        return watch.reconcile_routers(self, progress)

    def refuse_start(self, model: str, version: str, why: str) -> bool:
        """The watcher could not start ``version``: log it and notify, once per reason
        while this process runs; True when said now."""
        key = (model, version)
        if self._refused_starts.get(key) == why:
            return False
        self._refused_starts[key] = why
        log.warning("rollout_not_started", model=model, version=version, error=why)
        self.actuator.notify(
            DecisionEvent(
                kind=EventKind.NOT_STARTED, model=model, version=version, at=self.clock(),
                reasons=(why,),
            )
        )  # fmt: skip
        return True

    def started(self, model: str, version: str) -> None:
        """``version`` did start: a later refusal of it is news again."""
        self._refused_starts.pop((model, version), None)

    def failing_routers(self) -> dict[str, str]:
        """Each failing router with an error of one of its failing models (a copy)."""
        return self.actuator.failing_routers()

    # -- alerts -------------------------------------------------------------------

    def handle_alert(self, action: AlertAction) -> dict[str, Any]:
        """Apply an Alertmanager alert's action (``controller.shell.alerts``)."""
        return handle_alert(self, action)

    def refresh_phase_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.set_phases(r.phase.value for r in self.store.list_rollouts(limit=100_000))
