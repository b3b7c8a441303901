"""``Controller``: the shell's facade; one rollout tick is ``reconcile_once(rollout_id)``.

Order of one tick, and why a crash between any two steps is repaired:

1. **load** the rollout. If it carries an *intent* (a decision recorded whose
   effects were not confirmed), the previous run died after step 4: re-apply the
   intent (steps 5-6) and stop. Nothing is decided twice.
2. **measure** both arms since the step started (after settling); source failures
   come back as error measurements.
3. **decide** (pure). A hold changes nothing outside the database: store it and
   the new counters in one transaction; done.
4. **record intent**: the decision row (not applied) and the target state, in one
   transaction, before touching anything outside.
5. **act**: push the route to the router (same revision every time: a replay is
   a no-op), then move the version in the registry (skipped when it is already in
   the target stage: the call is made idempotent by reading first).
6. **confirm**: the rollout takes the target state and the decision is marked
   applied, in one transaction.

A router failure in step 5 leaves the intent in place; the next tick retries it.
All times come from the injected ``clock``; nothing here reads the wall clock.

Steps 4 to 6, operator actions' effects, route pushes and production rollbacks are
the actuator's (``controller.shell.actuator``); measuring is ``controller.shell.measure``;
alerts are ``controller.shell.alerts``; this class decides what to ask of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.notify import DecisionEvent, EventKind
from controller.adapters.rollout_store import RolloutRecord, RolloutStore
from controller.adapters.routing import Router, RouterError
from controller.config import Config, PolicyConfig
from controller.core.approvals import newly_overdue
from controller.core.causes import Cause
from controller.core.decide import Decision, Observations, decide, operator
from controller.core.guard import rolled_back_from_production
from controller.core.phases import Event, Phase
from controller.errors import CannotStart, RolloutNotFound
from controller.shell.actuator import Actuator, Clock
from controller.shell.alerts import handle_alert
from controller.shell.measure import Measurer
from monitors import MetricSource
from monitors.alerts import AlertAction
from registry import ModelRegistry, NotFound, RegistryError
from serving.route import Route

__all__ = ["Clock", "Controller"]

log = structlog.get_logger("controller")


def _shape(route: Route | None) -> tuple[tuple[tuple[str, int], ...], str] | None:
    """What serving does with a route: versions, weights and salt (not the revision)."""
    if route is None:
        return None
    return tuple((b.version, b.weight) for b in route.backends), route.salt


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
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self.routers = dict(routers)
        self.clock = clock
        self.metrics = metrics
        self.measurer = Measurer(sources=sources, metrics=metrics)
        self.actuator = Actuator(
            registry=registry,
            store=store,
            routers=self.routers,
            policy=self.policy,
            clock=clock,
            metrics=metrics,
            actor=actor,
        )
        self.on_started: Callable[[RolloutRecord], None] | None = None

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

    # -- starting ---------------------------------------------------------------

    def start_rollout(self, model: str, version: str, *, reason: str) -> RolloutRecord:
        """Start judging ``version`` against production; ``CannotStart`` says why not."""
        if self.policy(model) is None:
            raise CannotStart(f"{model!r} has no rollout policy in {self.config.source_file}")
        try:
            candidate = self.registry.get_model_version(model, version)
        except (RegistryError, ValueError) as exc:
            raise CannotStart(f"{model} {version}: {exc}") from None
        if candidate.artifact_digest is None:
            raise CannotStart(f"{candidate.ref} has no model artifact: nothing to serve")
        if candidate.stage not in ("dev", "staging"):
            raise CannotStart(
                f"{candidate.ref} is in {candidate.stage!r}; a rollout needs a staging candidate"
            )
        # Production is read under the model's lock: a guard or alert rollback between
        # the read and the new record would leave the rollout's control on the version
        # just pulled from production.
        with self.actuator.lock(model):
            try:
                control = self.registry.resolve(model)
            except NotFound:
                raise CannotStart(
                    f"{model!r} has no production version to compare against"
                ) from None
            if control.version == candidate.version:
                raise CannotStart(f"{candidate.ref} is already in production")
            record = self.actuator.start(
                model,
                control=(str(control.version), control.artifact_digest),
                candidate=(str(candidate.version), candidate.artifact_digest),
                candidate_stage=candidate.stage,
                reason=reason,
            )
        log.info(
            "rollout_started",
            rollout=record.id,
            model=model,
            control=record.control,
            treatment=record.treatment,
            reason=reason,
        )
        if self.on_started is not None:
            self.on_started(record)
        return record

    def watch_once(self) -> list[RolloutRecord]:
        """Level-triggered: start a rollout for every staging version of a model with a
        policy that never had one (oldest first, one active rollout per model).

        A version that was ever rolled back from production (by the guard, an alert
        or an operator) is never started again automatically; a person may promote it.
        """
        started = []
        for model in self.config.models:
            try:
                staged = self.registry.list_versions(model, stage="staging")
            except NotFound:
                continue
            demoted: set[str] | None = None
            for version in sorted(staged, key=lambda v: v.version):
                if self.store.active_for(model) is not None:
                    break
                if self.store.exists(model, str(version.version)):
                    continue
                if demoted is None:
                    demoted = rolled_back_from_production(self.registry.history(model))
                if str(version.version) in demoted:
                    log.debug("rollout_not_started", model=model, version=str(version.version),
                              reason="rolled back from production before")  # fmt: skip
                    continue
                try:
                    started.append(
                        self.start_rollout(model, str(version.version), reason="entered staging")
                    )
                except CannotStart as exc:
                    log.warning("rollout_not_started", model=model, error=str(exc))
        return started

    # -- one tick ---------------------------------------------------------------

    def reconcile_once(self, rollout_id: int, *, force: bool = False) -> Decision | None:
        """Load, measure, decide, record intent, act, confirm (see the module docstring).

        Returns the decision taken, or None when there was nothing to do: the
        rollout is finished, not due yet, or a pending intent was repaired.
        """
        record = self.store.get(rollout_id)
        with self.actuator.lock(record.model):
            return self._tick(rollout_id, force=force)

    def _tick(self, rollout_id: int, *, force: bool) -> Decision | None:
        record = self.store.get(rollout_id)
        if record.intent is not None:  # a crash between intent and confirm: finish it
            self.actuator.apply(record, record.intent)
            return None
        if not record.active:  # finished: the scheduler drops the job
            return None
        policy = self.policy(record.model)
        if policy is None:  # policy removed from config: freeze rather than guess
            log.warning("rollout_without_policy", rollout=record.id, model=record.model)
            return None
        now = self.clock()
        interval = timedelta(seconds=policy.interval)
        if not force and now < record.next_eval_at - interval / 2:  # not due (e.g. early replay)
            return None
        started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.lag.observe(max(0.0, (now - record.next_eval_at).total_seconds()))
        observations = self.measure(policy, record, now)
        decision = decide(policy, record.state, observations, now=now)
        if self.metrics is not None:
            self.metrics.evaluations.inc()
            self.metrics.decisions.labels(decision.action).inc()
        self._log_decision(record, decision)
        overdue = decision.state.phase is Phase.AWAITING_APPROVAL and newly_overdue(
            decision, self.store.decisions(rollout_id, limit=20)
        )
        self.actuator.carry_out(record, decision, now=now, next_eval=now + interval)
        self._approval_wait(record, decision, now, report=overdue)
        if self.metrics is not None:
            self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        return decision

    def measure(self, policy: PolicyConfig, record: RolloutRecord, now: datetime) -> Observations:
        """Both arms' measurements since the step started plus the settle time."""
        return self.measurer.observe(self.registry, policy, record, now)

    def _approval_wait(
        self, record: RolloutRecord, decision: Decision, now: datetime, *, report: bool
    ) -> None:
        """Export how long the rollout has waited for approval (0 once it stops
        waiting) and report a wait past ``approval.max_wait``, once."""
        waiting = decision.state.phase is Phase.AWAITING_APPROVAL
        if self.metrics is not None and (waiting or record.phase is Phase.AWAITING_APPROVAL):
            waited = (now - decision.state.step_started_at).total_seconds() if waiting else 0.0
            self.metrics.awaiting_approval.labels(record.model).set(waited)
        if not report:
            return
        log.warning("approval_overdue", rollout=record.id, model=record.model,
                    treatment=record.treatment, reason=decision.reason)  # fmt: skip
        if self.metrics is not None:
            self.metrics.approval_overdue.labels(record.model).inc()
        self.actuator.notify_rollout(
            record,
            EventKind.AWAITING_APPROVAL,
            tuple(f"approval overdue: {r}" for r in decision.reasons),
            decision.cause,
        )

    def _log_decision(self, record: RolloutRecord, decision: Decision) -> None:
        log.info(
            "decision",
            rollout=record.id,
            model=record.model,
            control=record.control,
            treatment=record.treatment,
            action=decision.action,
            phase_event=decision.event.value,
            phase_from=record.phase.value,
            phase_to=decision.state.phase.value,
            step=decision.state.step,
            weight=decision.state.weight,
            reasons=list(decision.reasons),
            numbers=dict(decision.numbers),
        )

    def operate(
        self,
        rollout_id: int,
        event: Event,
        *,
        reason: str,
        actor: str | None = None,
        cause: Cause = Cause.OPERATOR,
    ) -> RolloutRecord:
        """Pause, resume, abort, roll back, approve or reject a rollout on request.

        An approval or rejection is recorded in the registry first, as ``actor``:
        the registry refuses approvers off its policy's list and the version's own
        registrant. Promotion then waits for the registry's count (the next tick).
        """
        record = self.store.get(rollout_id)
        with self.actuator.lock(record.model):
            record = self.store.get(rollout_id)
            if record.intent is not None:
                self.actuator.apply(record, record.intent)
                record = self.store.get(rollout_id)
            who = actor or "operator"
            said = f"rejected by {who}: {reason}" if event is Event.REJECT else reason
            decision = operator(record.state, event, reason=said, actor=actor, cause=cause)
            if event in (Event.APPROVE, Event.REJECT):  # the registry's word first
                self.actuator.record_approval(record.model, record.treatment, who, reason,
                                              approve=event is Event.APPROVE)  # fmt: skip
            now = self.clock()
            log.info(
                "operator",
                rollout=rollout_id,
                operator_event=event.value,
                actor=actor,
                reason=said,
            )
            self.actuator.carry_out(record, decision, now=now, next_eval=now)
            self._approval_wait(record, decision, now, report=False)
        if event is Event.APPROVE:
            self.reconcile_once(rollout_id, force=True)
        return self.store.get(rollout_id)

    # -- routers ----------------------------------------------------------------

    def desired_route(self, model: str) -> Route | None:
        """What serving should have for ``model`` according to the database."""
        return self.actuator.desired_route(model)

    def reconcile_routers(self, progress: Callable[[], None] | None = None) -> dict[str, str]:
        """Make every router hold the database's routes; return the failing routers.

        ``progress`` is called after each model, whatever its outcome: the scheduler
        beats the watchdog's heartbeat with it, so that a pass slowed by many slow
        pushes keeps showing progress while one stuck on a single call does not.
        """
        self.actuator.forget_unrouted()
        settled = self._settled_models()
        for model in self.config.models:
            if model not in settled:
                self._reconcile_router(model)
            if progress is not None:
                progress()
        return self.failing_routers()

    def _settled_models(self) -> set[str]:
        """Models whose router already holds the versions, weights and salt the
        database implies, judged from one snapshot (three queries a pass, not three
        per model: active rollouts, newest finished ones, production versions).

        Only a fast path: any model that differs, is failing or cannot be judged is
        reconciled the careful way, under its lock with fresh reads. A model that
        changes after the snapshot is pushed by whoever changed it (a tick, an alert,
        the guard) and is looked at again next pass. Digests are not compared: a
        version's artifact never changes.
        """
        try:
            active = {r.model: r for r in self.store.active()}
            finished = self.store.latest_finished_by_model()
            production = {m.name: str(m.production) for m in self.registry.list_models()
                          if m.production is not None}  # fmt: skip
        except (sa.exc.SQLAlchemyError, RegistryError) as exc:
            log.warning("route_snapshot_failed", error=str(exc))
            return set()
        failing = self.actuator.failing_models()
        settled = set()
        for model in self.config.models:
            found = self.actuator.router_for(model)
            if found is None or model in failing:
                continue
            record = active.get(model)
            if record is not None:
                want = _shape(self.actuator.desired(model, record, None))
            elif model in production:
                last = finished.get(model)
                want = (((production[model], 100),), f"{model}:{last.id}" if last else "")
            else:
                settled.add(model)  # nothing to route: the careful path would do nothing
                continue
            try:
                held = found[1].read(model)
            except RouterError:
                continue
            if held is not None and _shape(held) == want:
                settled.add(model)
        return settled

    def _reconcile_router(self, model: str) -> None:
        with self.actuator.lock(model):
            try:
                route = self.desired_route(model)
            except (RegistryError, RolloutNotFound) as exc:
                log.warning("desired_route_failed", model=model, error=str(exc))
                return
            if route is None:
                return
            with suppress(RouterError):  # recorded and logged by the actuator; retried
                self.actuator.push(route)

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
