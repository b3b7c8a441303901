"""One rollout tick, and operator actions on a rollout.

Order of one tick, and why a crash between any two steps is repaired:

1. **load** the rollout. If it carries an *intent* (a decision recorded whose
   effects were not confirmed), the previous run died after step 4: re-apply the
   intent (steps 5-6) and stop. Nothing is decided twice.
2. **measure** both arms since the step started (after settling); source failures
   come back as error measurements (``controller.shell.measure``).
3. **decide** (pure, ``controller.core.decide``). A hold changes nothing outside the
   database: store it and the new counters in one transaction; done. A promotion
   of a candidate whose stored artifact no longer verifies becomes a rollback
   (``refuse_corrupt``, ``Cause.CORRUPT_ARTIFACT``).
4. **record intent**: the decision row (not applied) and the target state, in one
   transaction, before touching anything outside.
5. **act**: push the route to the router (same revision every time: a replay is
   a no-op) and read it back (a router that says yes and keeps its old route has
   failed), then move the version in the registry (skipped when it is already in
   the target stage: the call is made idempotent by reading first).
6. **confirm**: the rollout takes the target state and the decision is marked
   applied, in one transaction; a new step starts now, when serving took its split,
   not when it was decided.

Steps 4 to 6 are the actuator's (``Actuator.carry_out``). A router failure in step 5
leaves the intent in place; the next tick retries it. All times come from the
injected clock; nothing here reads the wall clock.

This is one rollout's tick (``single_tick``). The scheduler's jobs run ticks batched
over every rollout due at once (``controller.shell.rounds``), which store the plain
holds together and hand every other rollout to its single tick.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from controller.adapters.leases import Fenced
from controller.adapters.notify import EventKind
from controller.adapters.registry_gateway import artifact_problem
from controller.adapters.rollout_store import RolloutRecord
from controller.core.approvals import newly_overdue
from controller.core.causes import Cause
from controller.core.decide import (
    Decision,
    Promote,
    decide,
    operator,
    refuse_corrupt,
)
from controller.core.phases import Event, Phase
from controller.core.superseded import release, superseded
from registry import NotFound

if TYPE_CHECKING:
    from controller.shell.controller import Controller

__all__ = [
    "end_superseded",
    "log_decision",
    "operate",
    "reconcile_once",
    "single_tick",
    "superseded_now",
]

log = structlog.get_logger("controller")


def reconcile_once(
    controller: Controller, rollout_id: int, *, force: bool = False
) -> Decision | None:
    """The scheduler job's tick: a batched round over every rollout due now
    (``controller.shell.rounds``), which leaves to ``single_tick`` whatever acts;
    ``force``: this rollout's ``single_tick`` alone, due or not.

    Returns the decision taken, or None when there was nothing to do: the
    rollout is finished, not due yet, or a pending intent was repaired.
    """
    if force:
        return single_tick(controller, rollout_id, force=True)
    return controller.rounds.tick(rollout_id)


def single_tick(controller: Controller, rollout_id: int, *, force: bool = False) -> Decision | None:
    """Load, measure, decide, record intent, act, confirm one rollout under its lock
    (see the module docstring); the decision, or None when there was nothing to do."""
    record = controller.store.get(rollout_id)
    with controller.actuator.lock(record.model), controller.acting():
        controller.rounds.forget(rollout_id)
        return _tick(controller, rollout_id, force=force)


def _tick(controller: Controller, rollout_id: int, *, force: bool) -> Decision | None:
    record = controller.store.get(rollout_id)
    if not controller.owns(record.model):  # another member's shard: not even a repair
        return None
    if record.intent is not None:  # a crash between intent and confirm: finish it
        controller.actuator.apply(record, record.intent)
        return None
    if not record.active:  # finished: the scheduler drops the job
        return None
    why = superseded_now(controller, record)
    if why is not None:  # moved in the registry by hand: end it, never route it back
        return end_superseded(controller, record, why)
    policy = controller.policy(record.model)
    if policy is None:  # policy removed from config: freeze rather than guess
        log.warning("rollout_without_policy", rollout=record.id, model=record.model)
        return None
    now = controller.clock()
    interval = timedelta(seconds=policy.interval)
    ahead = record.next_eval_at - now  # over two intervals: the clock went back, look now
    if not force and now < record.next_eval_at - interval / 2 and ahead <= 2 * interval:
        return None  # not due (e.g. an early replay)
    # Next to the clock's reading: measuring may take seconds (a slow source), which
    # the monotonic clock would count as a step of the wall clock.
    stepped = (
        0.0 if controller.clock_steps is None else controller.clock_steps.stepped(record.id, now)
    )
    started = time.perf_counter()
    if controller.metrics is not None:
        controller.metrics.lag.observe(max(0.0, (now - record.next_eval_at).total_seconds()))
    observations = replace(controller.measure(policy, record, now), clock_stepped=stepped)
    decision = decide(policy, record.state, observations, now=now)
    if isinstance(decision, Promote):  # only then: a re-hash of the artifact is not free
        broken = artifact_problem(controller.registry, record.model, record.treatment)
        if broken is not None:
            decision = refuse_corrupt(record.state, broken, decision.numbers)
    if controller.metrics is not None:
        controller.metrics.evaluations.inc()
        controller.metrics.decisions.labels(decision.action).inc()
    log_decision(controller, record, decision)
    overdue = decision.state.phase is Phase.AWAITING_APPROVAL and newly_overdue(
        decision, controller.store.decisions(rollout_id, limit=20)
    )
    controller.actuator.carry_out(record, decision, now=now, next_eval=now + interval)
    _approval_wait(controller, record, decision, now, report=overdue)
    if controller.metrics is not None:
        controller.metrics.evaluation_seconds.observe(time.perf_counter() - started)
    return decision


def _approval_wait(
    controller: Controller,
    record: RolloutRecord,
    decision: Decision,
    now: datetime,
    *,
    report: bool,
) -> None:
    """Export how long the rollout has waited for approval (0 once it stops
    waiting) and report a wait past ``approval.max_wait``, once."""
    waiting = decision.state.phase is Phase.AWAITING_APPROVAL
    if controller.metrics is not None and (waiting or record.phase is Phase.AWAITING_APPROVAL):
        waited = (now - decision.state.step_started_at).total_seconds() if waiting else 0.0
        controller.metrics.awaiting_approval.labels(record.model).set(waited)
    if not report:
        return
    log.warning("approval_overdue", rollout=record.id, model=record.model,
                treatment=record.treatment, reason=decision.reason)  # fmt: skip
    if controller.metrics is not None:
        controller.metrics.approval_overdue.labels(record.model).inc()
    controller.actuator.notify_rollout(
        record,
        EventKind.AWAITING_APPROVAL,
        tuple(f"approval overdue: {r}" for r in decision.reasons),
        decision.cause,
    )


def log_decision(controller: Controller, record: RolloutRecord, decision: Decision) -> None:
    """The decision's JSON log line (every look's, batched or single)."""
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


def superseded_now(controller: Controller, record: RolloutRecord) -> str | None:
    """Why the registry no longer matches ``record`` (``controller.core.superseded``)."""
    try:
        version = getattr(controller.registry.resolve(record.model), "version", None)
    except NotFound:
        version = None
    production = None if version is None else str(version)  # None too: MLflow's unadopted
    try:
        stage: str | None = controller.registry.get_model_version(
            record.model, record.treatment
        ).stage
    except NotFound:
        stage = None
    return superseded(record.control, record.treatment, production=production,
                      treatment_stage=stage)  # fmt: skip


def end_superseded(controller: Controller, record: RolloutRecord, why: str) -> Decision:
    """End ``record`` for ``why`` and route the registry's production version; call
    under the model's lock."""
    controller.rounds.forget(record.id)
    decision = release(record.state, why)
    now = controller.clock()
    log.warning("rollout_superseded", rollout=record.id, model=record.model,
                treatment=record.treatment, reason=why)  # fmt: skip
    controller.actuator.carry_out(record, decision, now=now, next_eval=now, hold=False)
    return decision


def operate(
    controller: Controller,
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
    record = controller.store.get(rollout_id)
    if not controller.owns(record.model):  # several daemons: only the owner acts
        raise Fenced(f"this member does not own the shard of {record.model!r}")
    with controller.actuator.lock(record.model), controller.acting():
        record = controller.store.get(rollout_id)
        if record.intent is not None:
            controller.actuator.apply(record, record.intent)
            record = controller.store.get(rollout_id)
        who = actor or "operator"
        said = f"rejected by {who}: {reason}" if event is Event.REJECT else reason
        decision = operator(record.state, event, reason=said, actor=actor, cause=cause)
        if event in (Event.APPROVE, Event.REJECT):  # the registry's word first
            controller.actuator.record_approval(
                record.model, record.treatment, who, reason, approve=event is Event.APPROVE
            )
        now = controller.clock()
        log.info(
            "operator",
            rollout=rollout_id,
            operator_event=event.value,
            actor=actor,
            reason=said,
        )
        # Only endings reach outside (route back, registry); a pause, resume or approval
        # changes the database alone, so it works while a router is down.
        ends = decision.event in (Event.ABORT, Event.ROLLBACK, Event.REJECT)
        controller.actuator.carry_out(record, decision, now=now, next_eval=now, hold=not ends)
        controller.rounds.forget(rollout_id)  # under the lock: after any round's look of it
        _approval_wait(controller, record, decision, now, report=False)
    if event is Event.APPROVE:
        reconcile_once(controller, rollout_id, force=True)
    return controller.store.get(rollout_id)
