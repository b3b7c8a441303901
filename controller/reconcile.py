"""The imperative shell: one rollout tick is ``Controller.reconcile_once(rollout_id)``.

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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
import structlog

from controller.approval import newly_overdue, read_approvals
from controller.config import Config, PolicyConfig
from controller.core.decide import (
    Decision,
    HoldUntil,
    Observations,
    decide,
    operator,
)
from controller.core.guard import rolled_back_from_production
from controller.core.phases import TERMINAL, Event, Phase
from controller.core.routes import REVISIONS_PER_ROLLOUT, rebased, route_for
from controller.errors import CannotStart, IllegalMove, RolloutNotFound
from controller.metrics import ControllerMetrics, rollback_label
from controller.notify import DecisionEvent, EventKind
from controller.routing import Backend, Route, Router, RouterError
from controller.store import Intent, RolloutRecord, RolloutStore
from monitors import (
    IngestStore,
    Measurement,
    MetricSource,
    MetricSpec,
    Status,
    Subject,
    Window,
)
from monitors.alerts import AlertAction
from monitors.windows import STAT_COLUMNS, measure_frame
from registry import ApprovalRequired, ModelRegistry, NotFound, RegistryError, Transition

__all__ = ["Clock", "Controller"]

Clock = Callable[[], datetime]
_NOTIFIED: Mapping[Phase, EventKind] = {
    Phase.PROMOTED: EventKind.PROMOTED,
    Phase.ROLLED_BACK: EventKind.ROLLED_BACK,
    Phase.AWAITING_APPROVAL: EventKind.AWAITING_APPROVAL,
    Phase.ABORTED: EventKind.FAILED,
}
log = structlog.get_logger("controller")


def _shape(route: Route | None) -> tuple[tuple[tuple[str, int], ...], str] | None:
    """What serving does with a route: versions, weights and salt (not the revision)."""
    if route is None:
        return None
    return tuple((b.version, b.weight) for b in route.backends), route.salt


def _record_route(record: RolloutRecord, state: Mapping[str, Any], revision: int) -> Route:
    return route_for(
        record.model,
        record.id,
        Backend(record.control, 0, record.control_digest),
        Backend(record.treatment, 0, record.treatment_digest),
        phase=Phase(state["phase"]),
        weight=float(state["weight"]),
        revision=revision,
    )


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
        ingest: Mapping[str, IngestStore] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self.sources = dict(sources)
        self.routers = dict(routers)
        self.clock = clock
        self.metrics = metrics
        self.actor = actor
        # Ingest sources by name: one window of events per version and tick, shared by
        # every ingest metric of the policy, instead of one database read per metric.
        self.ingest = dict(ingest or {})
        self.router_errors: dict[str, str] = {}  # router -> an error of a failing model
        self._failing: dict[str, dict[str, str]] = {}  # router -> model -> last error
        self.on_started: Callable[[RolloutRecord], None] | None = None
        # Told of promotions, rollbacks, approval waits and failures once committed;
        # must not block (``controller.notify.Notifications.post`` queues).
        self.on_decision: Callable[[DecisionEvent], None] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._last_backends: dict[str, tuple[Backend, ...]] = {}
        # Guards ``_failing`` and ``router_errors`` (ticks, alerts, the guard and the
        # watcher push from their own threads); never held across router I/O.
        self._failing_lock = threading.Lock()
        # The route last pushed per model, as stored (``_pushed``); a model's entry is
        # only touched under that model's lock.
        self._pushed_routes: dict[str, Route | None] = {}

    @contextmanager
    def _lock(self, model: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(model, threading.Lock())
        with lock:
            yield

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
        with self._lock(model):
            try:
                control = self.registry.resolve(model)
            except NotFound:
                raise CannotStart(
                    f"{model!r} has no production version to compare against"
                ) from None
            if control.version == candidate.version:
                raise CannotStart(f"{candidate.ref} is already in production")
            record = self.store.create(
                model=model,
                control=str(control.version),
                treatment=str(candidate.version),
                control_digest=control.artifact_digest,
                treatment_digest=candidate.artifact_digest,
                now=self.clock(),
                reason=reason,
            )
            if candidate.stage == "dev":
                self.registry.promote_model(
                    model, candidate.version, to_stage="staging", reason=f"rollout {record.id}"
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
        with self._lock(record.model):
            return self._tick(rollout_id, force=force)

    def _tick(self, rollout_id: int, *, force: bool) -> Decision | None:
        record = self.store.get(rollout_id)
        if record.intent is not None:  # a crash between intent and confirm: finish it
            self._apply(record, record.intent)
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
        next_eval = now + interval
        overdue = decision.state.phase is Phase.AWAITING_APPROVAL and newly_overdue(
            decision, self.store.decisions(rollout_id, limit=20)
        )
        if isinstance(decision, HoldUntil) and decision.state.phase is record.phase:
            self.store.record_hold(record, decision, now=now, next_eval_at=next_eval)
        else:
            intent = self.store.record_intent(record, decision, now=now, next_eval_at=next_eval)
            self._apply(self.store.get(rollout_id), intent)
        self._approval_wait(record, decision, now, report=overdue)
        if self.metrics is not None:
            self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        return decision

    def measure(self, policy: PolicyConfig, record: RolloutRecord, now: datetime) -> Observations:
        """Both arms' measurements since the step started plus the settle time."""
        required, approvals = read_approvals(self.registry, record.model, record.treatment)
        begin = record.step_started_at + timedelta(seconds=policy.settle_seconds)
        if now <= begin or record.phase is Phase.AWAITING_APPROVAL:  # no metric judges a wait
            return Observations(approval_required=required, approvals=approvals)
        window = Window(end=now, length=now - begin)
        # By version, not arm: a version's traffic is its arm's, whatever serving labels.
        subjects = (
            Subject(record.model, version=record.control),
            Subject(record.model, version=record.treatment),
        )
        measured = {}
        frames: dict[tuple[str, str], pd.DataFrame | Measurement] = {}
        for metric in policy.analysis.metrics:
            spec = metric.monitor_spec()
            pair = tuple(self._measure(metric.source, spec, s, window, frames) for s in subjects)
            measured[metric.name] = (pair[0], pair[1])
        units_cfg = policy.analysis.units
        units_source = units_cfg.source or policy.analysis.metrics[0].source
        units_spec = MetricSpec(name="units", query=units_cfg.query, type=units_cfg.type)
        units = tuple(self._measure(units_source, units_spec, s, window, frames) for s in subjects)
        return Observations(
            measured, (units[0], units[1]), approval_required=required, approvals=approvals
        )

    def _measure(
        self,
        source: str,
        spec: MetricSpec,
        subject: Subject,
        window: Window,
        frames: dict[tuple[str, str], pd.DataFrame | Measurement],
    ) -> Measurement:
        try:
            store = self.ingest.get(source)
            if store is not None:
                key = (source, subject.version)
                if key not in frames:
                    try:
                        frames[key] = store.frame(
                            subject.model, window, version=subject.version, columns=STAT_COLUMNS
                        )
                    except sa.exc.SQLAlchemyError as exc:
                        frames[key] = Measurement.error(
                            spec.name, subject, window, f"ingest store failed: {exc}"
                        )
                frame = frames[key]
                if isinstance(frame, Measurement):
                    result = replace(frame, metric=spec.name)
                else:
                    result = measure_frame(frame, spec, subject, window)
            else:
                result = self.sources[source].measure(spec, subject, window)
        except Exception as exc:  # a source must not raise; if one does, it is an error reading
            result = Measurement.error(spec.name, subject, window, f"{type(exc).__name__}: {exc}")
        if result.status is Status.ERROR and self.metrics is not None:
            self.metrics.source_errors.labels(source).inc()
        return result

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
        self._notify(record, EventKind.AWAITING_APPROVAL, f"approval overdue: {decision.reason}")

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

    # -- acting -----------------------------------------------------------------

    def _router_for(self, model: str) -> tuple[str, Router] | None:
        policy = self.policy(model)
        if policy is None:
            return None
        return policy.router, self.routers[policy.router]

    def _push(self, route: Route) -> None:
        """Make the model's router hold ``route``, rebased over what serving holds.

        The route is rebased over the last one pushed to the router (stored in the
        database before each push, kept across restarts) and then over what the
        router reads back. So a changed route goes above every revision serving may
        hold: when the router cannot say (``read()`` is None: a webhook receiver
        without ``read_url`` after a restart, the ``http`` router before its first
        route), and when a push reached serving but its answer was lost (the router
        still reads the previous route back).
        """
        found = self._router_for(route.model)
        if found is None:
            return
        name, router = found
        try:
            held = router.read(route.model)
            route = rebased(rebased(route, self._pushed(route.model)), held)
            self._remember_pushed(route)  # before the push: a crash may follow it
            if held != route:
                router.set(route)
        except RouterError as exc:
            with self._failing_lock:
                self._failing.setdefault(name, {})[route.model] = str(exc)
                self.router_errors[name] = str(exc)
            if self.metrics is not None:
                self.metrics.router_errors.labels(name).inc()
                self.metrics.router_ready.labels(name).set(0)
            log.error("router_failed", router=name, model=route.model, error=str(exc))
            raise
        # Healthy only once no model of this router is failing: another model's
        # success must not hide this one's error from /readyz.
        with self._failing_lock:
            failing = self._failing.get(name, {})
            failing.pop(route.model, None)
            if failing:
                self.router_errors[name] = failing[min(failing)]
            else:
                self.router_errors.pop(name, None)
            unready = bool(failing)
        if self.metrics is not None:
            self.metrics.router_ready.labels(name).set(0 if unready else 1)
            for backend in route.backends:
                self.metrics.weight.labels(route.model, backend.version).set(backend.weight)
            for version in {b.version for b in self._last_backends.get(route.model, ())} - {
                b.version for b in route.backends
            }:
                self.metrics.weight.labels(route.model, version).set(0)
        self._last_backends[route.model] = route.backends

    def _pushed(self, model: str) -> Route | None:
        """The route last pushed for ``model`` (by this process or a previous one)."""
        if model not in self._pushed_routes:
            self._pushed_routes[model] = self.store.pushed_route(model)
        return self._pushed_routes[model]

    def _remember_pushed(self, route: Route) -> None:
        """Store ``route`` as the last pushed, when it differs from the stored one."""
        if self._pushed(route.model) != route:
            self.store.record_pushed(route, now=self.clock())
            self._pushed_routes[route.model] = route

    def _apply(self, record: RolloutRecord, intent: Intent) -> None:
        """Steps 5 and 6: act on ``intent`` idempotently, then confirm it."""
        target = Phase(intent.state["phase"])
        route = _record_route(record, intent.state, intent.revision)
        reason, numbers = record.reason, {}
        decisions = self.store.decisions(record.id, limit=1)
        if decisions and decisions[-1].id == intent.decision_id:
            reason, numbers = "; ".join(decisions[-1].reasons), dict(decisions[-1].numbers)
        try:
            if intent.action == "promote":
                self._registry_move(record, "production", reason)
                self._push(route)
            elif intent.action == "rollback":
                self._push(route)  # traffic back to the control first
                if target is Phase.ROLLED_BACK:
                    self._registry_move(record, "archived", reason)
            else:
                self._push(route)
        except RouterError:
            return  # the intent stays; the next tick retries it
        except ApprovalRequired as exc:
            log.warning("promotion_needs_approval", rollout=record.id, error=str(exc))
            self.store.abandon(record.id, intent, now=self.clock(), reason=str(exc))
            self._notify(record, EventKind.FAILED, str(exc))
            return
        except RegistryError as exc:  # e.g. someone moved the version meanwhile
            log.error("registry_refused", rollout=record.id, action=intent.action, error=str(exc))
            self.store.abandon(record.id, intent, now=self.clock(), reason=str(exc))
            self._notify(record, EventKind.FAILED, str(exc))
            return
        self.store.confirm(record.id, intent, now=self.clock(), reason=reason)
        kind = _NOTIFIED.get(target)
        if kind is not None and target is not record.phase:
            self._notify(record, kind, reason)
        if self.metrics is not None and intent.action == "rollback" and target is Phase.ROLLED_BACK:
            label = rollback_label(numbers.get("cause"), numbers.get("actor"))
            self.metrics.rollbacks.labels(label).inc()
        if target in TERMINAL:
            log.info("rollout_finished", rollout=record.id, model=record.model, phase=target.value)

    def _notify(self, record: RolloutRecord, kind: EventKind, reason: str) -> None:
        """Tell ``on_decision`` about a committed decision; never raises."""
        if self.on_decision is None:
            return
        event = DecisionEvent(
            kind=kind,
            model=record.model,
            version=record.treatment,
            at=self.clock(),
            reasons=tuple(r for r in reason.split("; ") if r),
            rollout_id=str(record.id),
            details={"Control": record.control},
        )
        try:
            self.on_decision(event)
        except Exception as exc:  # a notification must never undo or fail a decision
            log.error("notify_failed", rollout=record.id, kind=kind.value, error=repr(exc))

    def _registry_move(self, record: RolloutRecord, stage: str, reason: str) -> None:
        """Promotion: the treatment becomes production (the registry archives the old one).

        Rollback: the treatment goes from staging to ``archived`` with the reason. Not
        back to ``dev``: a candidate that failed on live traffic is a finished
        experiment, and ``archived -> staging`` remains the way to re-validate it.
        The registry's ``rollback()`` is not used: it restores a previous
        production version, while this canary never reached production.
        """
        current = self.registry.get_model_version(record.model, record.treatment)
        if current.stage == stage:
            return  # done before a crash: the replay is a no-op
        if stage == "archived" and current.stage != "staging":
            return  # moved by someone else meanwhile; leave it
        self.registry.promote_model(
            record.model,
            record.treatment,
            to_stage=stage,
            reason=f"rollout {record.id}: {reason}"[:2000],
            actor=self.actor,
        )

    # -- operators --------------------------------------------------------------

    def operate(
        self, rollout_id: int, event: Event, *, reason: str, actor: str | None = None
    ) -> RolloutRecord:
        """Pause, resume, abort, roll back, approve or reject a rollout on request.

        An approval or rejection is recorded in the registry first, as ``actor``:
        the registry refuses approvers off its policy's list and the version's own
        registrant. Promotion then waits for the registry's count (the next tick).
        """
        record = self.store.get(rollout_id)
        with self._lock(record.model):
            record = self.store.get(rollout_id)
            if record.intent is not None:
                self._apply(record, record.intent)
                record = self.store.get(rollout_id)
            who = actor or "operator"
            said = f"rejected by {who}: {reason}" if event is Event.REJECT else reason
            decision = operator(record.state, event, reason=said, actor=actor)  # legal move?
            if event is Event.APPROVE:
                self.registry.approve_model(record.model, record.treatment, who, reason)
            elif event is Event.REJECT:
                self.registry.reject_model(record.model, record.treatment, who, reason)
            now = self.clock()
            log.info(
                "operator",
                rollout=rollout_id,
                operator_event=event.value,
                actor=actor,
                reason=said,
            )
            if decision.event in (Event.ABORT, Event.ROLLBACK, Event.REJECT):
                intent = self.store.record_intent(record, decision, now=now, next_eval_at=now)
                self._apply(self.store.get(rollout_id), intent)
            else:
                self.store.record_hold(record, decision, now=now, next_eval_at=now)
            self._approval_wait(record, decision, now, report=False)
        if event is Event.APPROVE:
            self.reconcile_once(rollout_id, force=True)
        return self.store.get(rollout_id)

    # -- routers ----------------------------------------------------------------

    def desired_route(self, model: str) -> Route | None:
        """What serving should have for ``model`` according to the database."""
        record = self.store.active_for(model)
        last = self.store.latest_finished(model) if record is None else None
        return self._desired(model, record, last)

    def _desired(
        self, model: str, record: RolloutRecord | None, last: RolloutRecord | None
    ) -> Route | None:
        """``desired_route`` from the model's active and newest finished rollout."""
        if record is not None:
            if record.intent is not None:
                return _record_route(record, record.intent.state, record.intent.revision)
            return _record_route(record, {"phase": record.phase, "weight": record.weight},
                                 record.revision)  # fmt: skip
        try:
            production = self.registry.resolve(model)
        except NotFound:
            return None
        revision = last.id * REVISIONS_PER_ROLLOUT + last.revision if last else 0
        salt = f"{model}:{last.id}" if last else ""
        return Route(
            model=model,
            backends=(Backend(str(production.version), 100, production.artifact_digest),),
            revision=revision,
            salt=salt,
        )

    def _forget_unrouted(self) -> None:
        """Drop failures of models a router no longer serves (the config was reloaded
        without them), so that they do not keep the router unready for good."""
        healed = []
        with self._failing_lock:
            for name, failing in self._failing.items():
                for model in list(failing):
                    policy = self.policy(model)
                    if policy is None or policy.router != name:
                        del failing[model]
                if not failing and name in self.router_errors:
                    del self.router_errors[name]
                    healed.append(name)
        if self.metrics is not None:
            for name in healed:
                self.metrics.router_ready.labels(name).set(1)

    def reconcile_routers(self, progress: Callable[[], None] | None = None) -> dict[str, str]:
        """Make every router hold the database's routes; return the failing routers.

        ``progress`` is called after each model, whatever its outcome: the scheduler
        beats the watchdog's heartbeat with it, so that a pass slowed by many slow
        pushes keeps showing progress while one stuck on a single call does not.
        """
        self._forget_unrouted()
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
        with self._failing_lock:
            failing = {m for models in self._failing.values() for m in models}
        settled = set()
        for model in self.config.models:
            found = self._router_for(model)
            if found is None or model in failing:
                continue
            record = active.get(model)
            if record is not None:
                want = _shape(self._desired(model, record, None))
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
        with self._lock(model):
            try:
                route = self.desired_route(model)
            except (RegistryError, RolloutNotFound) as exc:
                log.warning("desired_route_failed", model=model, error=str(exc))
                return
            if route is None:
                return
            with suppress(RouterError):  # recorded and logged by _push; retried next pass
                self._push(route)

    def failing_routers(self) -> dict[str, str]:
        """Each failing router with an error of one of its failing models (a copy)."""
        with self._failing_lock:
            return dict(self.router_errors)

    def handle_alert(self, action: AlertAction) -> dict[str, Any]:
        """Apply an Alertmanager alert's action to the model's active rollout; with no
        active rollout, a ``rollback`` puts the previous production version back.

        The outcome's ``acted`` says whether anything changed (the routers included).
        """
        record = self.store.active_for(action.model)
        outcome: dict[str, Any] = {"model": action.model, "action": action.action,
                                   "rule": action.rule, "alert": action.alert}  # fmt: skip
        if record is None:
            if action.action == "rollback":
                return self._alert_rollback_production(action, outcome)
            return {**outcome, "acted": False, "result": "ignored: no active rollout"}
        if action.version is not None and action.version not in (
            record.treatment,
            record.treatment.lstrip("v"),
        ):
            why = f"ignored: the rollout's candidate is {record.treatment}"
            return {**outcome, "acted": False, "result": why}
        try:
            done = self.operate(record.id, Event(action.action), reason=action.reason,
                                actor=f"alert:{action.rule}")  # fmt: skip
        except IllegalMove as exc:
            return {**outcome, "acted": False, "rollout": record.id, "result": f"ignored: {exc}"}
        acted = done.intent is None and done.phase is not record.phase
        return {**outcome, "acted": acted, "rollout": record.id, "result": done.phase.value}

    def _alert_rollback_production(
        self, action: AlertAction, outcome: dict[str, Any]
    ) -> dict[str, Any]:
        """No rollout to act on: roll production back in the registry, then route to it."""
        model = action.model

        def no_effect(why: str) -> dict[str, Any]:
            log.warning("alert_no_effect", model=model, rule=action.rule, alert=action.alert,
                        fingerprint=action.fingerprint, reason=why)  # fmt: skip
            return {**outcome, "acted": False, "result": f"ignored: no active rollout; {why}"}

        with self._lock(model):
            if self.store.active_for(model) is not None:  # started meanwhile: leave it be
                return no_effect("a rollout started meanwhile")
            try:
                current = self.registry.resolve(model)
            except RegistryError:
                return no_effect("no production version to roll back")
            version = str(current.version)
            instance = f"alert instance {action.fingerprint}@{action.starts_at.isoformat()}"
            entry = self._production_entry(model)
            if entry is not None and instance in (entry.reason or ""):
                return no_effect(f"{version} is production after a rollback for this {instance}")
            if action.version is not None and action.version not in (version, version.lstrip("v")):
                return no_effect(f"production is {version}, not {action.version}")
            if action.version is None and entry is not None and action.starts_at < entry.at:
                # Firing since before this version went in: the alert is about the one
                # it replaced (a guard or alert rollback, a fix). Acting again would walk
                # production down the version chain on one incident.
                return no_effect(
                    f"{version} entered production at {entry.at.isoformat()}, after this "
                    f"alert started firing ({action.starts_at.isoformat()})"
                )
            reason = (f"alert {action.alert} (rule {action.rule}, fingerprint "
                      f"{action.fingerprint}; {instance}): {action.reason}")  # fmt: skip
            try:
                restored = self.registry.rollback(
                    model, reason=reason[:2000], actor=f"alert:{action.rule}"
                )
            except RegistryError as exc:
                return no_effect(f"nothing to roll back: {exc}")
            log.info("alert_rolled_back_production", model=model, rule=action.rule,
                     alert=action.alert, fingerprint=action.fingerprint,
                     from_version=version, to_version=str(restored.version))  # fmt: skip
            result = {**outcome, "acted": True, "from": version, "to": str(restored.version),
                      "result": "production rolled back"}  # fmt: skip
            try:
                self._push_after_production_change(model)
            except RouterError as exc:
                result.update(acted=False, result=f"production rolled back; routing failed: {exc}")
        if self.on_decision is not None:
            event = DecisionEvent(
                kind=EventKind.ROLLED_BACK,
                model=model,
                version=version,
                at=self.clock(),
                reasons=(reason,),
                details={"Production now": str(restored.version)},
            )
            try:
                self.on_decision(event)
            except Exception as exc:  # never fails the rollback
                log.error("notify_failed", model=model, kind="rolled_back", error=repr(exc))
        return result

    def _production_entry(self, model: str) -> Transition | None:
        """How the current production version got there. Its reason names the alert
        instance when an alert rolled back to it: if the daemon died after that commit
        but before the alert ledger recorded it, Alertmanager's repeat must not roll
        back a second time."""
        for transition in reversed(self.registry.history(model)):
            if transition.to_stage == "production":
                return transition
        return None

    def _push_after_production_change(self, model: str) -> None:
        """Route all traffic to the current production version (``_push`` rebases its
        revision above the held one). A failure is retried by ``reconcile_routers``."""
        route = self.desired_route(model)
        if route is not None:
            self._push(route)

    def refresh_phase_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.set_phases(r.phase.value for r in self.store.list_rollouts(limit=100_000))
