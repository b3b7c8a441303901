"""Guarding production, the pure part: which triggers guard a model, and the verdict.

``judge(...)`` takes the production version's measurements, each trigger's
remembered streak (``TriggerMemory``, persisted by ``controller.adapters.guard_store``) and
the model's last guard action, and returns a ``GuardVerdict``: roll back, hold in
cooldown, or nothing. It reads no clock and does no I/O; ``controller.shell.guard_pass``
is the shell that measures, acts and persists.

Rules, and why:

- Only a trigger that *fires* (``monitors.triggers.evaluate``: enough samples,
  ``consecutive`` breaches in a row) rolls back. Missing data, errors and too few
  samples never do: a broken metric pipeline must not take production down.
- A streak belongs to one production version: after a rollback the restored
  version starts with a clean history.
- A streak is "in a row" only across passes that follow each other: it continues
  only when the trigger's previous judgement is at most ``STREAK_GAP_INTERVALS``
  guard intervals old, else it starts over. Models are not judged while a rollout
  runs on them (and a daemon may be down), so a breach before a day-long rollout
  and one after it are two breaches a day apart, not two in a row. Three intervals
  forgive a slow or late pass without joining judgements hours apart.
- After a guard rollback (or a firing with nothing to roll back to) the model is in
  cooldown: no further guard rollback until it ends, so a bad spell cannot walk
  production down the version chain, and a model with nothing to roll back to is
  not retried every interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from controller.core.production import ProductionAction
from monitors.measurement import Measurement, Status
from monitors.triggers import TriggerResult, TriggerSpec, TriggerStatus, evaluate
from registry.records import RollbackTrigger, Transition

__all__ = [
    "STREAK_GAP_INTERVALS",
    "GuardTrigger",
    "GuardVerdict",
    "TriggerMemory",
    "from_policy",
    "from_registry",
    "in_cooldown",
    "judge",
    "merge",
    "registered_baseline",
    "rolled_back_from_production",
]

STREAK_GAP_INTERVALS = 3  # a streak survives at most this many guard intervals between judgements


@dataclass(frozen=True, slots=True)
class GuardTrigger:
    """A trigger with what the guard needs to measure it: its window and cooldown,
    and where it came from (``policy`` file or ``registry``)."""

    spec: TriggerSpec
    window: timedelta
    cooldown: timedelta
    origin: Literal["policy", "registry"]

    @property
    def name(self) -> str:
        return self.spec.name


def from_registry(trigger: RollbackTrigger) -> GuardTrigger:
    """A registry-stored trigger as the guard judges it."""
    return GuardTrigger(
        spec=TriggerSpec(
            name=trigger.name,
            metric=trigger.metric,
            threshold=trigger.threshold,
            direction=trigger.direction,
            compare=trigger.compare,
            min_samples=trigger.min_samples,
            consecutive=trigger.consecutive,
        ),
        window=timedelta(seconds=trigger.window_s),
        cooldown=timedelta(seconds=trigger.cooldown_s),
        origin="registry",
    )


def from_policy(
    spec: TriggerSpec, *, window: float, cooldown: float, min_samples: int = 1
) -> GuardTrigger:
    """A policy file's trigger with the ``guard`` section's window and cooldown.

    Policy triggers are written for canaries and often leave ``min_samples`` at 0;
    guarding production with them needs at least ``min_samples`` observations (the
    ``guard`` section's floor), so that one failed request cannot take production
    down.
    """
    return GuardTrigger(
        spec=replace(spec, min_samples=max(spec.min_samples, min_samples)),
        window=timedelta(seconds=window),
        cooldown=timedelta(seconds=cooldown),
        origin="policy",
    )


def merge(
    policy: Iterable[GuardTrigger], stored: Iterable[GuardTrigger]
) -> tuple[GuardTrigger, ...]:
    """Policy triggers, then registry triggers; on a name clash the policy file wins."""
    first = tuple(policy)
    names = {t.name for t in first}
    return first + tuple(t for t in stored if t.name not in names)


@dataclass(frozen=True, slots=True)
class TriggerMemory:
    """What the guard keeps of one trigger between passes (for one production version)."""

    version: str
    streak: int  # judged breaches in a row, not yet consumed by a firing
    last_fired_at: datetime | None
    status: str = ""
    value: float | None = None
    samples: int = 0
    reason: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """What one pass concluded for one model."""

    model: str
    version: str
    action: Literal["rollback", "cooldown", "none"]
    results: tuple[TriggerResult, ...]
    memories: Mapping[str, TriggerMemory]
    fired: TriggerResult | None = None
    cooldown: timedelta = timedelta(0)
    reason: str = ""


def _recent(memory: TriggerMemory, now: datetime, interval: timedelta) -> bool:
    """True when ``memory``'s judgement is recent enough for its streak to continue:
    at most ``STREAK_GAP_INTERVALS`` guard intervals before ``now`` (unknown: no)."""
    return memory.at is not None and now - memory.at <= interval * STREAK_GAP_INTERVALS


def _history(
    memory: TriggerMemory | None, version: str, now: datetime, interval: timedelta
) -> list[TriggerResult]:
    """The remembered streak as the history ``monitors.triggers.evaluate`` reads; a
    stale streak (see ``_recent``) is dropped, the last firing is kept (cooldown)."""
    if memory is None or memory.version != version:
        return []

    def past(status: TriggerStatus, at: datetime) -> TriggerResult:
        return TriggerResult("", "", status, at, None, 0.0, None, 0, 0, "")

    fired = [past(TriggerStatus.FIRED, memory.last_fired_at)] if memory.last_fired_at else []
    streak = memory.streak if _recent(memory, now, interval) else 0
    return fired + [past(TriggerStatus.BREACHED, now)] * streak


def _describe(result: TriggerResult, trigger: GuardTrigger) -> str:
    spec = trigger.spec
    value = "n/a" if result.value is None else f"{result.value:.6g}"
    what = (
        spec.metric
        if spec.compare == "value"
        else f"{spec.metric} {spec.compare.replace('_', ' ')}"
    )
    return (
        f"guard trigger {trigger.name} fired: {what} {value} "
        f"{'>' if spec.direction == 'above' else '<'} threshold {spec.threshold:.6g} over "
        f"{trigger.window.total_seconds():g}s window, {result.samples} samples, "
        f"{result.consecutive} breach(es) in a row"
    )


def in_cooldown(action: ProductionAction | None, version: str, now: datetime) -> bool:
    """True while the model's last guard action blocks another one.

    A ``pending`` action whose rollback never happened (production still the version
    it meant to roll back) does not block: the crash is repaired by acting again.
    """
    if action is None or now >= action.cooldown_until:
        return False
    return not (action.outcome == "pending" and action.from_version == version)


def judge(
    model: str,
    version: str,
    triggers: Sequence[GuardTrigger],
    measurements: Mapping[str, Measurement],
    memories: Mapping[str, TriggerMemory],
    *,
    now: datetime,
    interval: timedelta,
    last_action: ProductionAction | None = None,
    baselines: Mapping[str, Measurement] | None = None,
) -> GuardVerdict:
    """Evaluate every trigger on the production version's ``measurements`` (keyed by
    trigger name; ``baselines`` too, for drops); the first that fires decides, unless
    the model is in cooldown. ``interval``: the guard's pass interval, which bounds
    how old a remembered streak may be and still continue (``_recent``)."""
    results = []
    for trigger in triggers:
        metric = trigger.spec.metric
        measured = measurements.get(trigger.name)
        base = (baselines or {}).get(trigger.name)
        results.append(
            evaluate(
                trigger.spec,
                {metric: measured} if measured is not None else {},
                _history(memories.get(trigger.name), version, now, interval),
                now=now,
                baseline={metric: base} if base is not None else None,
            )
        )
    fired = next(((r, t) for r, t in zip(results, triggers, strict=True) if r.fired), None)
    blocked = fired is not None and in_cooldown(last_action, version, now)
    action: Literal["rollback", "cooldown", "none"] = (
        "none" if fired is None else "cooldown" if blocked else "rollback"
    )
    new: dict[str, TriggerMemory] = {}
    for result, trigger in zip(results, triggers, strict=True):
        old = memories.get(trigger.name)
        last = old.last_fired_at if old is not None and old.version == version else None
        acted = result.fired and action == "rollback"
        new[trigger.name] = TriggerMemory(
            version=version,
            streak=0 if acted or not result.status.breach else result.consecutive,
            last_fired_at=now if acted else last,
            status=result.status.value if not (result.fired and blocked) else "cooldown",
            value=result.value,
            samples=result.samples,
            reason=result.reason,
            at=now,
        )
    if fired is None:
        return GuardVerdict(model, version, "none", tuple(results), new)
    result, trigger = fired
    reason = _describe(result, trigger)
    if blocked and last_action is not None:
        reason += f"; in cooldown after the guard action at {last_action.at.isoformat()} until "
        reason += last_action.cooldown_until.isoformat()
    return GuardVerdict(
        model, version, action, tuple(results), new, result, trigger.cooldown, reason
    )


def registered_baseline(
    metadata: Mapping[str, object], metric: str, like: Measurement
) -> Measurement | None:
    """The version's registered value of ``metric`` (``metadata[metric]`` or
    ``metadata['metrics'][metric]``) as the baseline of a ``drop`` trigger: production
    has no control arm, so "accuracy dropped" means below what it was registered with.

    Offline evaluation numbers carry no sample count here; the baseline counts as
    resting on as many samples as the window it is compared with.
    """
    metrics = metadata.get("metrics")
    found = metadata.get(metric)
    if found is None and isinstance(metrics, Mapping):
        found = metrics.get(metric)
    if not isinstance(found, int | float) or isinstance(found, bool) or not math.isfinite(found):
        return None
    return Measurement(
        metric=metric,
        subject=like.subject,
        window=like.window,
        status=Status.OK,
        value=float(found),
        sample_size=like.sample_size,
    )


def rolled_back_from_production(history: Iterable[Transition]) -> set[str]:
    """Versions that a rollback took out of production (guard, alert or operator)."""
    return {
        str(t.version)
        for t in history
        if t.kind == "rollback" and t.from_stage == "production" and t.to_stage != "production"
    }
