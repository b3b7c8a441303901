"""The controller's brain: ``decide(policy, state, observations, *, now) -> Decision``.

Pure: no clock (``now`` is passed in), no I/O. The shell (``controller.shell.tick``)
measures, calls ``decide`` and applies the returned ``Decision``; each decision
carries the next ``RolloutState``, the phase-table ``event`` it is, one-line
``reasons`` and the ``numbers`` behind them (for the log, the database and
``rollout explain``).

The decision rule (the same everywhere: ``abtest.analysis``, this module, the README):
**harm is a rollback** — any metric with a direction, primary or guardrail, that is
significantly worse than control on its anytime-valid harm test rolls the rollout
back at that look, whatever the step or dwell time; **promotion** needs a primary
significantly better (efficacy spends its alpha over the policy's horizon:
``controller.core.horizon``), every guardrail non-inferior, no metric worse and no
sample-ratio mismatch. Each verdict's ``AnalysisState`` is carried in
``RolloutState.evidence`` to the next look (and stored), and each canary step (each
new measurement window) is a stratum of it.

Rules for a progressing rollout, in order:

0. When the clock stepped since the last look, or now is before the step's start (it
   went back): hold, the step's window restarting now and the rollout's start moved
   by the step (its running time goes on, so a clock set ahead does not end it). A
   window that spans a step holds the wrong traffic (none, or the previous step's, a
   false sample-ratio mismatch), and a step started while the clock was ahead would
   wait for it.
1. Past ``max_duration``: roll back (a rollout never lingers undecided).
2. Within ``settle`` seconds of a weight change: hold (serving is still switching).
3. A rollback trigger on the treatment that breached ``consecutive`` times in a
   row: roll back.
4. Missing data, a source error or an invalid value (NaN, negative counts, a rate
   outside [0, 1]) in any metric or in the unit counts, or an inconclusive verdict
   from a sample-ratio mismatch or data abtest refuses: hold; after
   ``failure_limit`` such evaluations in a row, roll back if the policy says
   ``on_missing_data: rollback``. Missing data never promotes.
5. Fewer than ``min_samples`` units in an arm: hold.
6. abtest's verdict ``rollback`` (harm): roll back at once.
7. Before the step's (or fixed split's) duration is over: hold.
8. Canary: a judged look without harm advances to the next step after the dwell;
   at the last analysed step only ``promote`` promotes (``mode: fixed``: its one
   efficacy look is the first after the dwell; without a gain it rolls back).
   Fixed split: ``promote`` promotes, anything else at the end rolls back (no
   evidence of a gain).
9. Promotion becomes ``AwaitApproval`` when the policy or the registry requires
   approval (or the registry's approvals could not be read). The rollout keeps its
   split, or with ``approval.while_waiting: control`` sends all traffic to the
   control; the wait starts a new "step" (``step_started_at``). Paused and resumed
   from such a wait, the rollout first gets its step's split back.

Every decision carries a typed ``cause`` (``controller.core.causes.Cause``), stored in
its numbers.

Approvals, before any of the above:

- A standing rejection in the registry rolls any active rollout back.
- Awaiting approval: promote once the registry records enough approvals from its
  policy's approvers (with no registry policy: one approval by anyone but the
  version's author, through ``rollout approve`` or the registry);
  otherwise hold, saying how many more are needed from whom, and flag the wait
  ``overdue`` past ``approval.max_wait`` (reported by the shell, never a rollback).
  While the approvals cannot be read: hold, saying so. Once they can be read and
  neither the policy nor the registry requires approval (the wait began because
  they could not be read, or a reload dropped the requirement): promote.
  A wait whose split no longer matches ``approval.while_waiting`` (a reload) is
  set to it first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from abtest.analysis import (
    AnalysisSpec,
    ArmData,
    Histogram,
    MetricData,
    Verdict,
    analyze,
)
from abtest.results import Counts, Summary
from controller.core import horizon
from controller.core.causes import Cause
from controller.core.decisions import (
    AwaitApproval,
    Decision,
    HoldUntil,
    Pause,
    Promote,
    RollBack,
    SetWeight,
)
from controller.core.memo import per_policy
from controller.core.phases import TERMINAL, Event, Phase, move
from controller.core.policy import CanaryStrategy, MetricConfig, PolicyConfig
from controller.core.state import Approvals, Observations, RolloutState
from controller.errors import IllegalMove
from monitors.measurement import Measurement
from monitors.triggers import evaluate

__all__ = [
    "Approvals",
    "AwaitApproval",
    "Cause",
    "Decision",
    "HoldUntil",
    "Observations",
    "Pause",
    "Promote",
    "RollBack",
    "RolloutState",
    "SetWeight",
    "analysed_steps",
    "decide",
    "operator",
    "refuse_corrupt",
]


def analysed_steps(policy: PolicyConfig) -> tuple[float, ...]:
    """Treatment percentages that are judged: canary steps below 100, or the fixed split."""
    strategy = policy.strategy
    if isinstance(strategy, CanaryStrategy):
        return tuple(float(s) for s in strategy.steps if s < 100)
    return (float(strategy.weight),)


def _dwell(policy: PolicyConfig) -> float:
    strategy = policy.strategy
    return strategy.step_duration if isinstance(strategy, CanaryStrategy) else strategy.duration


def _invalid(metric: MetricConfig | None, m: Measurement) -> str | None:
    """Why an ok measurement cannot be used (NaN, negative counts, a rate outside
    [0, 1], too few values for a mean), or None. Such data is missing, never a verdict."""
    if m.sample_size < 0:
        return f"negative sample size {m.sample_size}"
    if m.value is None or not math.isfinite(m.value):
        return "no finite value"
    if metric is None:  # unit counts (fractional from PromQL's increase(): rounded later)
        return f"negative unit count {m.value:g}" if m.value < 0 else None
    if metric.kind == "proportion":
        if not 0.0 <= m.value <= 1.0:
            return f"rate {m.value:g} outside [0, 1]"
        return None if m.sample_size > 0 else "no sample size for a rate"
    if metric.kind == "mean":
        st = m.stats
        if st is None or st.n < 2:
            return "fewer than 2 values for a mean"
        if not (math.isfinite(st.mean) and math.isfinite(st.variance) and st.variance >= 0):
            return "non-finite mean or variance"
        return None
    if m.samples and not all(math.isfinite(x) for x in m.samples):
        return "non-finite values"
    if m.buckets and any(not math.isfinite(b.count) or b.count < 0 for b in m.buckets):
        return "invalid histogram counts"
    return None


def _data(metric: MetricConfig, m: Measurement) -> MetricData | None:
    """The abtest input for one arm's (valid, ok) measurement; None when it has none."""
    if metric.kind == "proportion":
        n = m.sample_size
        return Counts(round((m.value or 0.0) * n), n)  # _invalid kept the rate in [0, 1]
    if metric.kind == "mean":
        assert m.stats is not None
        scale = metric.scale
        return Summary(m.stats.mean * scale, m.stats.variance * scale * scale, m.stats.n)
    if m.samples:
        return m.samples
    if m.buckets:
        return Histogram(tuple(b.le for b in m.buckets), tuple(round(b.count) for b in m.buckets))
    return None


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def _arms(verdict: Verdict, name: str) -> dict[str, float | None]:
    """Each arm's value of metric ``name`` at this look (the open stratum's estimate:
    the control's value and the control's plus the difference), for the charts."""
    state = verdict.state.metrics.get(name)
    current = state.current if state is not None else None
    if current is None:
        return {"control": None, "treatment": None}
    return {"control": _num(current.base), "treatment": _num(current.base + current.effect)}


def _verdict_numbers(verdict: Verdict, progress: float) -> dict[str, Any]:
    return {
        "verdict": verdict.decision,
        "verdict_reason": verdict.reason,
        "srm_p": _num(verdict.srm.p_value) if verdict.srm else None,
        "progress": round(progress, 6),
        "metrics": {
            o.name: {
                "status": o.status,
                "effect": _num(o.effect),
                "ci": [_num(o.ci[0]), _num(o.ci[1])] if o.ci else None,
                "p_value": _num(o.p_value),
                "p_adjusted": _num(o.p_adjusted),
                "p_worse": _num(o.p_worse),
                "alpha_worse": _num(o.alpha_worse),
                "p_better": _num(o.p_better),
                "alpha_better": _num(o.alpha_better),
                "z": _num(o.z),
                "boundary": _num(o.boundary),
                "margin": _num(o.margin),
                "n_control": o.n_control,
                "n_treatment": o.n_treatment,
                **_arms(verdict, o.name),
            }
            for o in verdict.metrics
        },
    }


def _spec(policy: PolicyConfig, weight: float) -> AnalysisSpec:
    """The abtest spec for a split, with the policy's looks and harm point; built once
    per policy object and weight (each look would otherwise rebuild and re-validate it)."""
    return per_policy(
        "spec",
        policy,
        weight,
        lambda: policy.analysis.spec(
            weights=(100.0 - weight, weight),
            max_looks=horizon.planned_looks(policy),
            harm_fraction=horizon.harm_fraction(policy),
        ),
    )


def _stratum(state: RolloutState) -> int:
    """The measurement window's identity: a new one starts with every weight change."""
    return round(state.step_started_at.timestamp() * 1000)


def decide(  # noqa: PLR0912, PLR0915 -- the rules read top to bottom as the docstring lists them
    policy: PolicyConfig, state: RolloutState, observations: Observations, *, now: datetime
) -> Decision:
    """What to do with this rollout now; see the module docstring for the rules."""
    if state.phase in TERMINAL:
        raise IllegalMove(state.phase.value, "evaluate")
    interval = timedelta(seconds=policy.interval)
    base: dict[str, Any] = {"phase": state.phase.value, "step": state.step, "weight": state.weight}

    def hold(reason: str, cause: Cause, until: datetime | None = None, **extra: Any) -> HoldUntil:
        return HoldUntil(
            Event.HOLD,
            extra.pop("next_state", state),
            (reason,),
            {**base, **extra},
            cause,
            until=until or now + interval,
        )

    if observations.approvals.rejected:
        nxt = replace(state, phase=move(state.phase, Event.REJECT), weight=0.0)
        who = ", ".join(observations.approvals.rejected)
        return RollBack(Event.REJECT, nxt, (f"rejected by {who}",), base, Cause.REJECTED)
    if state.phase is Phase.PAUSED:
        return hold("paused by an operator; resume to continue", Cause.PAUSED)
    steps = analysed_steps(policy)
    if state.phase is Phase.PENDING:
        nxt = replace(state, phase=move(state.phase, Event.START), step=0, weight=steps[0],
                      step_started_at=now)  # fmt: skip
        return SetWeight(
            Event.START, nxt, (f"start: {steps[0]:g}% to {state.treatment}",), base, Cause.STARTED
        )
    if state.phase is Phase.AWAITING_APPROVAL:
        return _awaiting(policy, state, observations, now, base, hold)

    def rollback(reason: str, cause: Cause, **numbers: Any) -> RollBack:
        nxt = replace(state, phase=move(state.phase, Event.ROLLBACK), weight=0.0)
        return RollBack(Event.ROLLBACK, nxt, (reason,), {**base, **numbers}, cause)

    if 0 <= state.step < len(steps) and state.weight <= 0:  # resumed from a wait on the control
        nxt = replace(state, weight=steps[state.step], step_started_at=now)
        return SetWeight(
            Event.ADVANCE,
            nxt,
            (f"restore {nxt.weight:g}% to {state.treatment}: the step's split after a wait "
             "with all traffic on the control",),
            base,
            Cause.RESTORED,
        )  # fmt: skip
    if observations.clock_stepped or now < state.step_started_at:  # rule 0
        moved = observations.clock_stepped or (now - state.step_started_at).total_seconds()
        shifted = state.started_at + timedelta(seconds=moved)  # its running time goes on
        return hold(
            f"the clock stepped {moved:+.0f}s: the step's window restarts now",
            Cause.CLOCK_STEPPED,
            next_state=replace(state, step_started_at=now, started_at=shifted),
        )
    running = (now - state.started_at).total_seconds()
    if running > policy.max_duration:
        return rollback(
            f"max duration exceeded: running {running:.0f}s > {policy.max_duration:g}s "
            "without a decision",
            Cause.MAX_DURATION,
        )
    in_step = (now - state.step_started_at).total_seconds()
    if in_step < policy.settle_seconds:
        return hold(
            f"settling: {in_step:.1f}s of {policy.settle_seconds:g}s since the weight changed",
            Cause.SETTLING,
            until=state.step_started_at + timedelta(seconds=policy.settle_seconds),
        )

    # 3. rollback triggers on the treatment, baseline = the control in the same window
    streaks: dict[str, int] = {}
    trigger_numbers: dict[str, Any] = {}
    for trigger in policy.triggers:
        pair = observations.metrics.get(trigger.metric)
        result = evaluate(
            replace(trigger.spec(), consecutive=1),
            {trigger.metric: pair[1]} if pair else {},
            now=now,
            baseline={trigger.metric: pair[0]} if pair else {},
        )
        streak = state.streaks.get(trigger.name, 0) + 1 if result.status.breach else 0
        streaks[trigger.name] = streak
        trigger_numbers[trigger.name] = {
            "status": result.status.value,
            "value": _num(result.value),
            "threshold": trigger.threshold,
            "streak": streak,
        }
        if result.status.breach and streak >= trigger.consecutive and result.value is not None:
            sign = ">" if trigger.direction == "above" else "<"
            what = (
                trigger.metric
                if trigger.compare == "value"
                else f"{trigger.metric} {trigger.compare}"
            )
            return rollback(
                f"trigger fired: {trigger.name}: {what} {result.value:.4g} {sign} "
                f"{trigger.threshold:g} on {state.treatment} ({result.samples} samples, "
                f"{streak} evaluation{'s' if streak > 1 else ''} in a row)",
                Cause.TRIGGER,
                triggers=trigger_numbers,
            )
    state = replace(state, streaks=streaks)
    base["triggers"] = trigger_numbers

    # 4. missing or invalid data and errors never promote
    metrics = {m.name: m for m in policy.analysis.metrics}
    problems = []
    for name, pair in observations.metrics.items():
        for arm, m in zip(("control", "treatment"), pair, strict=True):
            why = m.message if not m.ok else _invalid(metrics.get(name), m) if name in metrics \
                else None  # fmt: skip
            if why is not None:
                problems.append(f"{name}[{arm}] {m.status.value if not m.ok else 'invalid'}: {why}")
    problems += [f"metric {m.name}: not measured" for m in policy.analysis.metrics
                 if m.name not in observations.metrics]  # fmt: skip
    if observations.units is None:
        problems.append("unit counts: not measured")
    else:
        for arm, m in zip(("control", "treatment"), observations.units, strict=True):
            why = m.message if not m.ok else _invalid(None, m)
            if why is not None:
                problems.append(f"units[{arm}] {m.status.value if not m.ok else 'invalid'}: {why}")

    def failing(why: str, **numbers: Any) -> Decision:
        failures = state.failures + 1
        if failures >= policy.failure_limit and policy.on_missing_data == "rollback":
            return rollback(
                f"{why}; {failures} evaluations in a row (limit {policy.failure_limit}), "
                "policy on_missing_data: rollback",
                Cause.MISSING_DATA,
                failures=failures,
                **numbers,
            )
        return hold(
            f"{why}; holding ({failures} in a row, limit {policy.failure_limit}, "
            f"on_missing_data: {policy.on_missing_data})",
            Cause.MISSING_DATA,
            next_state=replace(state, failures=failures),  # with the verdict's evidence, if any
            failures=failures,
            **numbers,
        )

    if problems:
        return failing("missing data: " + "; ".join(problems[:3]))
    assert observations.units is not None
    n_c, n_t = (round(m.value or 0.0) for m in observations.units)
    base["units"] = [n_c, n_t]
    if min(n_c, n_t) < policy.min_samples:
        return hold(
            f"collecting: {n_c} control / {n_t} treatment units, "
            f"{policy.min_samples} per arm needed",
            Cause.COLLECTING,
            next_state=replace(state, failures=0),
        )

    # 6. the verdict, cumulative over looks and strata
    arms = []
    for index, units in ((0, n_c), (1, n_t)):
        data = {name: _data(metrics[name], pair[index]) for name, pair in
                observations.metrics.items() if name in metrics}  # fmt: skip
        arms.append(ArmData(units=units, metrics=data))
    progress = horizon.progress(policy, running)
    try:
        spec = _spec(policy, state.weight)
        verdict = analyze(
            spec,
            {"control": arms[0], "treatment": arms[1]},
            previous=state.evidence,
            progress=progress,
            stratum=_stratum(state),
        )
    except ValueError as exc:  # data abtest refuses: an error reading, never a promotion
        return failing(f"analysis failed: {exc}")
    numbers = _verdict_numbers(verdict, progress)
    state = replace(state, evidence=verdict.state)
    if verdict.decision == "rollback":
        return rollback(f"analysis: {verdict.reason}", Cause.HARM, **numbers)
    srm_failed = verdict.srm is not None and verdict.srm.p_value < policy.analysis.srm_threshold
    invalid = any(o.status == "missing" for o in verdict.metrics)
    if verdict.decision == "inconclusive" and (srm_failed or invalid):
        return failing(f"inconclusive: {verdict.reason}", **numbers)
    state = replace(state, failures=0)
    dwell = _dwell(policy)
    if in_step < dwell:
        return hold(
            f"step {state.step + 1}/{len(steps)} at {state.weight:g}%: "
            f"{in_step:.0f}s of {dwell:g}s; verdict so far {verdict.decision}: {verdict.reason}",
            Cause.DWELLING,
            until=min(state.step_started_at + timedelta(seconds=dwell), now + interval),
            next_state=state,
            **numbers,
        )
    canary = isinstance(policy.strategy, CanaryStrategy)
    if canary and state.step + 1 < len(steps):  # judged, no harm: the next step
        nxt = replace(state, step=state.step + 1, weight=steps[state.step + 1],
                      step_started_at=now)  # fmt: skip
        return SetWeight(
            Event.ADVANCE,
            nxt,
            (f"advance to {nxt.weight:g}%: no harm seen ({verdict.reason})",),
            {**base, **numbers},
            Cause.ADVANCED,
        )
    if verdict.decision == "promote":
        unread = observations.approvals.error
        if policy.require_approval or observations.approval_required or unread:
            who = (
                "the policy requires approval"
                if policy.require_approval
                else "the registry requires approval"
                if observations.approval_required
                else f"cannot read the registry's approvals ({unread})"
            )
            control = policy.approval.while_waiting == "control"
            nxt = replace(state, phase=move(state.phase, Event.AWAIT_APPROVAL),
                          step_started_at=now, weight=0.0 if control else state.weight)  # fmt: skip
            split = "all traffic to the control" if control else f"holding {state.weight:g}%"
            return AwaitApproval(
                Event.AWAIT_APPROVAL,
                nxt,
                (f"ready to promote ({verdict.reason}); {who}; {split} while waiting",),
                {**base, **numbers},
                Cause.AWAITING_APPROVAL,
            )
        nxt = replace(state, phase=move(state.phase, Event.PROMOTE), weight=100.0)
        return Promote(
            Event.PROMOTE, nxt, (f"promote {state.treatment}: {verdict.reason}",),
            {**base, **numbers}, Cause.EFFICACY,
        )  # fmt: skip
    if canary and policy.analysis.mode == "sequential":
        return hold(
            f"last step: waiting for evidence to promote ({verdict.reason})",
            Cause.AWAITING_EVIDENCE,
            next_state=state,
            **numbers,
        )
    what = "fixed split" if not canary else "last step's fixed-horizon look"
    return rollback(
        f"{what} over after {dwell:g}s without evidence of a gain: {verdict.reason}",
        Cause.NO_GAIN,
        **numbers,
    )


def _awaiting(
    policy: PolicyConfig,
    state: RolloutState,
    observations: Observations,
    now: datetime,
    base: Mapping[str, Any],
    hold: Callable[..., HoldUntil],
) -> Decision:
    """Awaiting approval: promote when approved enough, else hold and say what is missing."""
    found = observations.approvals
    waited = (now - state.step_started_at).total_seconds()
    max_wait = policy.approval.max_wait
    overdue = max_wait is not None and waited > max_wait
    if found.error is not None:  # never promote on approvals nobody could read
        ready, why = False, f"cannot read the registry's approvals: {found.error}"
    elif observations.approval_required:
        ready = found.needed <= 0
        plural = "s" if found.needed > 1 else ""
        whom = f" from: {', '.join(found.missing)}" if found.missing else ""
        why = f"{found.needed} more approval{plural} needed{whom}"
        if found.approved_by:
            why += f" (approved by {', '.join(found.approved_by)})"
    elif policy.require_approval:  # only the controller's policy asks: one approval
        ready = state.approved or bool(found.approved_by)  # (not the author's) suffices
        why = "one approval needed (`modelreg rollout approve`)"
    else:  # nobody asks: the wait began while approvals were unreadable, or a reload
        nxt = replace(state, phase=move(state.phase, Event.PROMOTE), weight=100.0)
        return Promote(
            Event.PROMOTE,
            nxt,
            (f"promote {state.treatment}: the registry's approvals are readable and "
             "neither the policy nor the registry requires approval",),
            dict(base),
            Cause.EFFICACY,
        )  # fmt: skip
    if ready:
        who = f" by {', '.join(found.approved_by)}" if found.approved_by else ""
        return Promote(
            Event.APPROVE,
            replace(state, phase=move(state.phase, Event.APPROVE), weight=100.0),
            (f"approved{who}: promoting {state.treatment}",),
            dict(base),
            Cause.APPROVED,
        )
    steps = analysed_steps(policy)
    control = policy.approval.while_waiting == "control"
    split = 0.0 if control else steps[state.step] if 0 <= state.step < len(steps) else state.weight
    if split != state.weight:  # the policy's wait mode changed (a reload) during the wait
        where = "all traffic to the control" if control else f"{split:g}% back to the candidate"
        return SetWeight(
            Event.HOLD,
            replace(state, weight=split),
            (f"awaiting approval with while_waiting: {policy.approval.while_waiting}: {where}",),
            dict(base),
            Cause.AWAITING_APPROVAL,
        )
    reason = f"awaiting approval to promote {state.treatment}: {why}; waiting {waited:.0f}s"
    if overdue:
        reason += f", overdue (max_wait {max_wait:g}s)"
    numbers = {
        "needed": found.needed,
        "missing": list(found.missing),
        "approved_by": list(found.approved_by),
        "waiting_seconds": round(waited, 3),
        "max_wait": max_wait,
        "overdue": overdue,
    }
    return hold(reason, Cause.AWAITING_APPROVAL, approval=numbers)


def operator(
    state: RolloutState,
    event: Event,
    *,
    reason: str,
    actor: str | None = None,
    cause: Cause = Cause.OPERATOR,
) -> Decision:
    """The decision for an operator's (or an alert's: ``cause=Cause.ALERT``) pause, resume,
    abort, rollback, approval or rejection; ``actor`` is recorded with it."""
    who = {"actor": actor}
    if event is Event.APPROVE:
        if state.phase is not Phase.AWAITING_APPROVAL:
            raise IllegalMove(state.phase.value, event.value)
        return HoldUntil(Event.HOLD, replace(state, approved=True), (reason,), who, cause)
    nxt_phase = move(state.phase, event)
    if event is Event.REJECT:
        nxt = replace(state, phase=nxt_phase, weight=0.0)
        return RollBack(event, nxt, (reason,), who, Cause.REJECTED)
    if event in (Event.ROLLBACK, Event.ABORT):
        return RollBack(event, replace(state, phase=nxt_phase, weight=0.0), (reason,), who, cause)
    if event is Event.PAUSE:
        return Pause(Event.PAUSE, replace(state, phase=nxt_phase), (reason,), who, cause)
    return HoldUntil(Event.RESUME, replace(state, phase=nxt_phase), (reason,), who, cause)


def refuse_corrupt(state: RolloutState, why: str, numbers: Mapping[str, Any]) -> RollBack:
    """Roll back instead of promoting: the candidate's stored artifact no longer
    matches the digest it was judged under (``why`` says how), so serving could not
    load what was measured. ``numbers``: the promotion's evidence, kept for explain.
    The shell checks this only when ``decide`` says promote (a re-hash of the
    artifact is not free)."""
    nxt = replace(state, phase=move(state.phase, Event.ROLLBACK), weight=0.0)
    reason = f"not promoted: {why}"
    return RollBack(Event.ROLLBACK, nxt, (reason,), numbers, Cause.CORRUPT_ARTIFACT)
