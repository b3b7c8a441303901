"""The one place that changes the world: routes, registry stages, notifications, intents.

Every effect the controller has outside its own bookkeeping goes through ``Actuator``,
under the model's lock (one actor per model: rollout ticks, operator actions, alerts
and the guard all take it here):

- ``carry_out(record, decision)``: a rollout's decision. A hold is stored at once; any
  other decision is recorded as an intent first, then acted on and confirmed
  (``apply``), so a crash between any two steps is repaired by re-applying the
  intent, never by deciding twice (``controller.shell.tick``).
- ``push(route)``: make the model's router hold a route, rebased over what serving
  and the database remember (``controller.core.routes.rebased``); router health for
  ``/readyz`` is tracked here.
- ``roll_back_production(request)``: the one production-rollback path for alerts and
  the guard, judged by ``controller.core.production`` and remembered in the production
  ledger; traffic then goes to the restored version.
- ``start(...)``, ``record_approval(...)``: a new rollout and an approver's word in the
  registry.
- ``notify(...)``: every notification is built here, from typed causes and reasons.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from controller.adapters.metrics import ControllerMetrics, rollback_label
from controller.adapters.notify import DecisionEvent, EventKind
from controller.adapters.production_ledger import ProductionLedger
from controller.adapters.registry_gateway import fronts_mlflow, production_entered_at
from controller.adapters.rollout_store import Intent, RolloutRecord, RolloutStore
from controller.adapters.routing import Router, RouterError
from controller.core.causes import Cause
from controller.core.decisions import Decision, HoldUntil
from controller.core.phases import TERMINAL, Phase
from controller.core.policy import PolicyConfig
from controller.core.production import (
    ActionOutcome,
    Allowed,
    ProductionFacts,
    RollbackRequest,
    may_roll_back,
)
from controller.core.routes import production_route, rebased, route_for, split_of
from registry import (
    ApprovalRequired,
    ModelRegistry,
    ModelVersion,
    NotFound,
    RegistryError,
    VersionNotFound,
    faults,
)
from registry.store import Tx
from serving.route import Backend, Route

__all__ = ["Actuator", "Clock", "ProductionOutcome", "record_route"]

Clock = Callable[[], datetime]
_NOTIFIED: Mapping[Phase, EventKind] = {
    Phase.PROMOTED: EventKind.PROMOTED,
    Phase.ROLLED_BACK: EventKind.ROLLED_BACK,
    Phase.AWAITING_APPROVAL: EventKind.AWAITING_APPROVAL,
    Phase.ABORTED: EventKind.FAILED,
}
log = structlog.get_logger("controller")


def record_route(record: RolloutRecord, phase: Phase, weight: float, revision: int) -> Route:
    """The route a rollout in ``phase`` at ``weight`` implies (``core.routes.route_for``)."""
    return route_for(
        record.model,
        record.id,
        Backend(record.control, 0, record.control_digest),
        Backend(record.treatment, 0, record.treatment_digest),
        phase=phase,
        weight=weight,
        revision=revision,
    )


@dataclass(frozen=True, slots=True)
class ProductionOutcome:
    """What ``roll_back_production`` did: ``changed`` once the registry moved, ``acted``
    once it is also routed; ``result`` says what happened, or why nothing did."""

    changed: bool
    acted: bool
    result: str
    from_version: str | None = None
    to_version: str | None = None


class HeldLocks(set[str]):
    """The models whose locks ``Actuator.locked`` holds for its caller."""

    def __init__(self, holders: dict[str, int]) -> None:
        super().__init__()
        self._holders = holders
        self._locks: dict[str, threading.Lock] = {}

    def take(self, model: str, lock: threading.Lock) -> None:
        self._locks[model] = lock
        self._holders[model] = threading.get_ident()
        self.add(model)

    def release(self, model: str) -> None:
        """Let ``model``'s lock go now (a no-op for a model not held)."""
        lock = self._locks.pop(model, None)
        if lock is not None:
            self.discard(model)
            del self._holders[model]
            lock.release()


class Actuator:
    """Pushes routes, moves registry stages, records intents and notifies (see above)."""

    def __init__(
        self,
        *,
        registry: ModelRegistry,
        store: RolloutStore,
        routers: Mapping[str, Router],
        policy: Callable[[str], PolicyConfig | None],
        clock: Clock,
        metrics: ControllerMetrics | None = None,
        actor: str = "modelreg-controller",
    ) -> None:
        self.registry = registry
        self.store = store
        # On one SQLite file, the daemon's writes join the registry's group commit
        # (``controller.adapters.writes``): concurrent ones share a transaction.
        store.writes.share(registry.store)
        self.ledger = ProductionLedger(store.engine, fencing=store.fencing, writes=store.writes)
        self.routers = dict(routers)
        self.policy = policy
        self.clock = clock
        self.metrics = metrics
        self.actor = actor
        # Told of promotions, rollbacks, approval waits and failures once committed;
        # must not block (``controller.adapters.notify.Notifications.post`` queues).
        self.on_decision: Callable[[DecisionEvent], None] | None = None
        self.router_errors: dict[str, str] = {}  # router -> an error of a failing model
        self._failing: dict[str, dict[str, str]] = {}  # router -> model -> last error
        self._locks: dict[str, threading.Lock] = {}
        self._holders: dict[str, int] = {}  # model -> the thread holding its lock
        self._locks_guard = threading.Lock()
        # Guards ``_failing`` and ``router_errors`` (ticks, alerts, the guard and the
        # watcher push from their own threads); never held across router I/O.
        self._failing_lock = threading.Lock()
        # The route last pushed per model, as stored; a model's entry is only touched
        # under that model's lock.
        self._pushed_routes: dict[str, Route | None] = {}

    @contextmanager
    def lock(self, model: str) -> Iterator[None]:
        """The model's lock: one actor at a time changes a model."""
        with self._locks_guard:
            lock = self._locks.setdefault(model, threading.Lock())
        with lock:
            self._holders[model] = threading.get_ident()
            try:
                yield
            finally:
                del self._holders[model]

    @contextmanager
    def locked(self, models: Iterable[str]) -> Iterator[HeldLocks]:
        """The locks of those of ``models`` that are free now, taken without waiting;
        yields the models held (``HeldLocks.release`` lets one go early). A batched
        tick takes a chunk of models this way and leaves a busy one to its single tick:
        it never queues behind an alert or an operator, and two of its callers cannot
        deadlock (nothing waits)."""
        held = HeldLocks(self._holders)
        try:
            for model in sorted(set(models)):
                with self._locks_guard:
                    lock = self._locks.setdefault(model, threading.Lock())
                if lock.acquire(blocking=False):
                    held.take(model, lock)
            yield held
        finally:
            for model in sorted(held, reverse=True):
                held.release(model)

    def _require_lock(self, model: str) -> None:
        """Every effect on a model happens under its lock; a caller that forgot is a bug."""
        if self._holders.get(model) != threading.get_ident():
            raise RuntimeError(f"the actuator changes {model!r} only under its lock")

    # -- rollouts ---------------------------------------------------------------

    def start(
        self,
        model: str,
        *,
        control: tuple[str, str | None],
        candidate: tuple[str, str],
        candidate_stage: str,
        reason: str,
    ) -> RolloutRecord:
        """A new rollout of ``candidate`` (version, digest) against ``control``; a ``dev``
        candidate moves to ``staging``. Call under the model's lock."""
        self._require_lock(model)
        record = self.store.create(
            model=model,
            control=control[0],
            treatment=candidate[0],
            control_digest=control[1],
            treatment_digest=candidate[1],
            now=self.clock(),
            reason=reason,
        )
        if candidate_stage == "dev":
            self.registry.promote_model(
                model, candidate[0], to_stage="staging", reason=f"rollout {record.id}"
            )
        return record

    def record_approval(
        self, model: str, version: str, who: str, reason: str, *, approve: bool
    ) -> None:
        """An approver's word in the registry (which refuses approvers off its list)."""
        if approve:
            self.registry.approve_model(model, version, who, reason)
        else:
            self.registry.reject_model(model, version, who, reason)

    def carry_out(
        self,
        record: RolloutRecord,
        decision: Decision,
        *,
        now: datetime,
        next_eval: datetime,
        hold: bool | None = None,
    ) -> None:
        """Store a hold, or record the decision's intent, act on it and confirm it.

        ``hold``: whether the decision changes nothing outside the database; by default,
        a ``HoldUntil`` that stays in its phase."""
        self._require_lock(record.model)
        if hold is None:
            hold = isinstance(decision, HoldUntil) and decision.state.phase is record.phase
        if hold:
            self.store.record_hold(record, decision, now=now, next_eval_at=next_eval)
            return
        intent = self.store.record_intent(record, decision, now=now, next_eval_at=next_eval)
        faults.point("intent")  # a crash here: the intent is replayed on restart
        self.apply(self.store.get(record.id), intent)

    def apply(self, record: RolloutRecord, intent: Intent) -> None:
        """Act on ``intent`` idempotently (route, registry), then confirm it."""
        self._require_lock(record.model)
        target = intent.state.phase
        reasons: tuple[str, ...] = (record.reason,)
        numbers: Mapping[str, Any] = {}
        decisions = self.store.decisions(record.id, limit=1)
        if decisions and decisions[-1].id == intent.decision_id:
            reasons, numbers = decisions[-1].reasons, decisions[-1].numbers
        reason = "; ".join(reasons)
        cause = _cause(numbers)
        try:
            self._act(record, intent, reason)
        except RouterError:
            return  # the intent stays; the next tick retries it
        except ApprovalRequired as exc:
            log.warning("promotion_needs_approval", rollout=record.id, error=str(exc))
            self.store.abandon(record.id, intent, now=self.clock(), reason=str(exc))
            self.notify_rollout(record, EventKind.FAILED, (str(exc),), None)
            return
        except RegistryError as exc:  # e.g. someone moved the version meanwhile
            log.error("registry_refused", rollout=record.id, action=intent.action, error=str(exc))
            self.store.abandon(record.id, intent, now=self.clock(), reason=str(exc))
            self.notify_rollout(record, EventKind.FAILED, (str(exc),), None)
            return
        faults.point("acted")  # a crash here: acted, not confirmed; the replay is a no-op
        confirmed_at = self.clock()
        self.store.confirm(record.id, _served_from(record, intent, confirmed_at),
                           now=confirmed_at, reason=reason)  # fmt: skip
        kind = _NOTIFIED.get(target)
        if kind is not None and target is not record.phase:
            self.notify_rollout(record, kind, reasons, cause)
        if self.metrics is not None and intent.action == "rollback" and target is Phase.ROLLED_BACK:
            self.metrics.rollbacks.labels(rollback_label(cause)).inc()
        if target in TERMINAL:
            log.info("rollout_finished", rollout=record.id, model=record.model, phase=target.value)

    def _act(self, record: RolloutRecord, intent: Intent, reason: str) -> None:
        """The intent's effects outside the database: routes, then the registry."""
        target = intent.state.phase
        route = record_route(record, target, intent.state.weight, intent.revision)
        if intent.action == "promote":
            self._registry_move(record, "production", reason)
            self.push(route)
        elif intent.action == "release":  # superseded: serving follows the registry
            production = self._production_route(record.model, (record.id, intent.revision))
            if production is not None:
                self.push(production)
        elif intent.action == "rollback":
            self.push(route)  # traffic back to the control first
            if target is Phase.ROLLED_BACK:
                self._registry_move(record, "archived", reason)
        else:
            self.push(route)

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

    # -- production ---------------------------------------------------------------

    def roll_back_production(self, request: RollbackRequest) -> ProductionOutcome:
        """Put the previous production version back, if ``core.production`` allows it,
        remembered in the ledger; then route all traffic to it and notify."""
        model = request.model
        with self.lock(model):
            try:
                production: str | None = str(self.registry.resolve(model).version)
            except RegistryError:
                production = None
            facts = ProductionFacts(
                rollout_active=self.store.active_for(model) is not None,
                production=production,
                # Only an alert without a version label is judged by when production
                # came in: the registry's history is read for it alone.
                entered_at=production_entered_at(self.registry, model)
                if production is not None and request.expected is None
                else None,
                ledger=self.ledger.actions(model, instance=request.instance)
                if request.instance is not None
                else (),
            )
            verdict = may_roll_back(request, facts)
            if not isinstance(verdict, Allowed):
                log.warning("production_rollback_refused", model=model,
                            cause=request.cause.value, actor=request.actor,
                            instance=request.instance, why=verdict.why)  # fmt: skip
                return ProductionOutcome(False, False, verdict.why)
            now = self.clock()
            version = verdict.from_version
            together = self._ledger_joins_registry()
            action_id: int | None = None  # together: written with the registry's move
            if verdict.resume is not None:  # a try cut short: its pending row
                action_id = verdict.resume.id
            elif not together:
                action_id = self.ledger.begin(request, version, now=now)
            try:
                restored = self._registry_rollback(
                    request, version, now=now, action_id=action_id, together=together
                )
            except VersionNotFound as exc:
                self._ledger_outcome(request, version, now, action_id, "nothing_to_roll_back",
                                     f"{request.reason}; {exc}")  # fmt: skip
                log.warning("production_nothing_to_roll_back", model=model, version=version,
                            cause=request.cause.value, error=str(exc))  # fmt: skip
                return ProductionOutcome(False, False, f"nothing to roll back: {exc}", version)
            except RegistryError as exc:
                self._ledger_outcome(request, version, now, action_id, "failed",
                                     f"{request.reason}; {exc}")  # fmt: skip
                log.error("production_rollback_failed", model=model, version=version,
                          cause=request.cause.value, error=str(exc))  # fmt: skip
                return ProductionOutcome(False, False, f"nothing to roll back: {exc}", version)
            to_version = str(restored.version)
            if not together:
                assert action_id is not None
                self.ledger.finish(action_id, "rolled_back", to_version=to_version,
                                   reason=request.reason)  # fmt: skip
            log.info("production_rolled_back", model=model, cause=request.cause.value,
                     actor=request.actor, from_version=version, to_version=to_version,
                     instance=request.instance)  # fmt: skip
            outcome = ProductionOutcome(True, True, "production rolled back", version, to_version)
            try:
                self.route_production(model, restored)
            except RouterError as exc:  # the watcher's router reconciliation retries it
                log.error("production_routing_failed", model=model, error=str(exc))
                outcome = ProductionOutcome(
                    True, False, f"production rolled back; routing failed: {exc}", version,
                    to_version,
                )  # fmt: skip
        self.notify(
            DecisionEvent(
                kind=EventKind.ROLLED_BACK,
                model=model,
                version=version,
                at=self.clock(),
                reasons=(request.reason,),
                cause=request.cause.value,
                details={"Production now": to_version, "By": request.actor},
            )
        )
        return outcome

    def _ledger_joins_registry(self) -> bool:
        """Whether the ledger's row can commit in the registry's rollback transaction:
        one SQLite file (``Writes.shared``) and our own registry (an MLflow front
        mirrors each move to MLflow in its own effect on that transaction)."""
        return self.store.writes.shared and not fronts_mlflow(self.registry)

    def _registry_rollback(
        self,
        request: RollbackRequest,
        version: str,
        *,
        now: datetime,
        action_id: int | None,
        together: bool,
    ) -> ModelVersion:
        """The registry's rollback of ``request.model``. ``together``: its ledger row
        (``rolled_back``, or the ``pending`` row ``action_id`` of an earlier try
        finished) commits in the same transaction, so no ``pending`` row is written
        first and nothing is left to finish: the registry's move and its record land
        together or not at all. The row is written in this thread's context, whichever
        thread leads the group commit (a member's fence reads its pinned leases)."""
        if not together:
            return self.registry.rollback(
                request.model, reason=request.reason[:2000], actor=request.actor
            )

        def record(tx: Tx, restored: ModelVersion) -> ModelVersion:
            to_version = str(restored.version)
            if action_id is None:
                self.ledger.record(tx.conn, request, version, now=now, outcome="rolled_back",
                                   to_version=to_version)  # fmt: skip
            else:
                self.ledger.finish_in(tx.conn, action_id, "rolled_back", to_version=to_version,
                                      reason=request.reason)  # fmt: skip
            return restored

        caller = contextvars.copy_context()
        with self.registry.store.finishing(lambda tx, restored: caller.run(record, tx, restored)):
            return self.registry.rollback(
                request.model, reason=request.reason[:2000], actor=request.actor
            )

    def _ledger_outcome(
        self,
        request: RollbackRequest,
        version: str,
        now: datetime,
        action_id: int | None,
        outcome: ActionOutcome,
        reason: str,
    ) -> None:
        """A rollback the registry refused, in the ledger: the row ``begin`` wrote (or
        an earlier try's) finished, else a row of its own."""
        if action_id is None:
            self.ledger.record_alone(request, version, now=now, outcome=outcome, reason=reason)
        else:
            self.ledger.finish(action_id, outcome, to_version=None, reason=reason)

    # -- routes -------------------------------------------------------------------

    def router_for(self, model: str) -> tuple[str, Router] | None:
        policy = self.policy(model)
        if policy is None:
            return None
        return policy.router, self.routers[policy.router]

    def desired_route(self, model: str) -> Route | None:
        """What serving should have for ``model`` according to the database."""
        record = self.store.active_for(model)
        last = self.store.latest_finished(model) if record is None else None
        return self.desired(model, record, last)

    def desired_routes(self, models: Iterable[str]) -> dict[str, Route | None]:
        """``desired_route`` of several models: one query for their active rollouts and
        one for the newest finished rollout of those without one (per 1,000 models)."""
        wanted = set(models)
        active = self.store.active_for_models(wanted)
        last = self.store.latest_finished_for_models(wanted - set(active))
        return {m: self.desired(m, active.get(m), last.get(m)) for m in sorted(wanted)}

    def load_pushed(self, models: Iterable[str]) -> None:
        """Read the routes last pushed for those of ``models`` not read yet in one query
        (``pushed`` reads one model's): a pass over many models pushes without a read each."""
        missing = [m for m in models if m not in self._pushed_routes]
        if missing:
            self._pushed_routes.update(self.store.pushed_routes(missing))

    def desired(
        self, model: str, record: RolloutRecord | None, last: RolloutRecord | None
    ) -> Route | None:
        """``desired_route`` from the model's active and newest finished rollout."""
        if record is not None:
            if record.intent is not None:
                state = record.intent.state
                return record_route(record, state.phase, state.weight, record.intent.revision)
            return record_route(record, record.phase, record.weight, record.revision)
        return self._production_route(model, None if last is None else (last.id, last.revision))

    def _production_route(self, model: str, last_rollout: tuple[int, int] | None) -> Route | None:
        """All traffic to the registry's production version (None: it has none)."""
        try:
            production = self.registry.resolve(model)
        except NotFound:
            return None
        return _all_to(model, production, last_rollout)

    def route_production(self, model: str, production: ModelVersion) -> None:
        """Route all traffic to ``production``, the version just put back (``push``
        rebases its revision above the held one). Under the model's lock with no active
        rollout, which ``roll_back_production`` made sure of: ``desired_route`` without
        reading either again. A failure is retried by the watcher."""
        last = self.store.latest_finished(model)
        self.push(_all_to(model, production, None if last is None else (last.id, last.revision)))

    def push(self, route: Route) -> None:
        """Make the model's router hold ``route``, rebased over what serving holds.

        The route is rebased over the last one pushed to the router (stored in the
        database before each push, kept across restarts) and then over what the
        router reads back. So a changed route goes above every revision serving may
        hold: when the router cannot say (``read()`` is None: a webhook receiver
        without ``read_url`` after a restart, the ``http`` router before its first
        route), and when a push reached serving but its answer was lost (the router
        still reads the previous route back).

        A push is confirmed by reading the route back: a router that answers yes but
        does not hold the route afterwards (it lies, or serving reverted it) fails
        like one that answered no, so the intent is not confirmed and ``/readyz``
        names the router until it holds what was pushed.
        """
        self._require_lock(route.model)
        found = self.router_for(route.model)
        if found is None:
            return
        name, router = found
        try:
            held = router.read(route.model)
            before = self.pushed(route.model)  # its versions' weights go to 0 if dropped
            route = rebased(rebased(route, before), held)
            self._remember_pushed(route)  # before the push: a crash may follow it
            if held != route:
                with self.store.fenced(route.model):  # several daemons: the owner's push, whole
                    router.set(route)
                _confirm_held(name, router, route)
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
            dropped = {b.version for b in before.backends} if before is not None else set()
            for version in dropped - {b.version for b in route.backends}:
                self.metrics.weight.labels(route.model, version).set(0)

    def pushed(self, model: str) -> Route | None:
        """The route last pushed for ``model`` (by this process or a previous one)."""
        if model not in self._pushed_routes:
            self._pushed_routes[model] = self.store.pushed_route(model)
        return self._pushed_routes[model]

    def _remember_pushed(self, route: Route) -> None:
        """Store ``route`` as the last pushed, when it differs from the stored one."""
        if self.pushed(route.model) != route:
            self.store.record_pushed(route, now=self.clock())
            self._pushed_routes[route.model] = route

    def failing_models(self) -> set[str]:
        """Models whose last push failed, whatever their router."""
        with self._failing_lock:
            return {m for models in self._failing.values() for m in models}

    def failing_routers(self) -> dict[str, str]:
        """Each failing router with an error of one of its failing models (a copy)."""
        with self._failing_lock:
            return dict(self.router_errors)

    def forget_unrouted(self) -> None:
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

    # -- notifications ------------------------------------------------------------

    def notify_rollout(
        self, record: RolloutRecord, kind: EventKind, reasons: tuple[str, ...], cause: Cause | None
    ) -> None:
        """Tell ``on_decision`` about a rollout's committed decision."""
        self.notify(
            DecisionEvent(
                kind=kind,
                model=record.model,
                version=record.treatment,
                at=self.clock(),
                reasons=tuple(r for r in reasons if r),
                rollout_id=str(record.id),
                cause=None if cause is None else cause.value,
                details={"Control": record.control},
            )
        )

    def notify(self, event: DecisionEvent) -> None:
        """Hand ``event`` to ``on_decision``; never raises (a notification must never
        undo or fail a decision)."""
        if self.on_decision is None:
            return
        try:
            self.on_decision(event)
        except Exception as exc:
            log.error("notify_failed", model=event.model, kind=event.kind.value, error=repr(exc))


def _cause(numbers: Mapping[str, Any]) -> Cause | None:
    """A stored decision's cause, typed (None when absent or unknown). A decision stored
    by an earlier release for an alert said ``operator`` with an ``alert:`` actor."""
    value, actor = numbers.get("cause"), numbers.get("actor")
    if value == Cause.OPERATOR and isinstance(actor, str) and actor.startswith("alert:"):
        return Cause.ALERT
    return Cause(value) if isinstance(value, str) and value in set(Cause) else None


def _served_from(record: RolloutRecord, intent: Intent, confirmed_at: datetime) -> Intent:
    """``intent`` with its new step starting when serving took the route, not when it
    was decided: a push that failed for a while (a router down or lying, a crash before
    the replay) must not count the old split's traffic as the new one's. The step's
    window and dwell time start there, so the sample-ratio check compares units with
    the split serving really had."""
    state, before = intent.state, record.state
    started = state.step_started_at
    new_step = started != before.step_started_at or state.weight != before.weight
    if not new_step or confirmed_at <= started:
        return intent
    return replace(intent, state=replace(state, step_started_at=confirmed_at))


def _confirm_held(name: str, router: Router, route: Route) -> None:
    """Raise ``RouterError`` unless ``router`` now serves ``route``'s split (one read).
    The salt is compared when the router reports one (HAProxy's own weights, or a
    receiver that does not echo it, say nothing of it)."""
    held = router.read(route.model)
    said = held if held is None or held.salt else replace(held, salt=route.salt)
    if split_of(said) != split_of(route):
        holds = "nothing" if held is None else f"revision {held.revision} ({_weights(held)})"
        raise RouterError(
            f"router {name} took revision {route.revision} of {route.model}'s route "
            f"({_weights(route)}) but holds {holds}"
        )


def _weights(route: Route) -> str:
    return ", ".join(f"{b.version} {b.weight}%" for b in route.backends if b.weight > 0)


def _all_to(model: str, production: ModelVersion, last_rollout: tuple[int, int] | None) -> Route:
    """All of ``model``'s traffic to ``production`` (``core.routes.production_route``)."""
    backend = Backend(str(production.version), 100, production.artifact_digest)
    return production_route(model, backend, last_rollout=last_rollout)
