"""Threshold triggers: pure functions of (spec, measurements, history) -> result.

A trigger compares one metric's measurement (or its drop against the baseline
version's measurement of the same window) with a threshold. It judges only when
the measurement is ``ok`` and rests on at least ``min_samples`` observations
(for a drop: both sides). It fires after ``consecutive`` breaches in a row and
then not again before ``cooldown`` has passed; breaches during the cooldown keep
counting, so a breach that persists fires again once the cooldown is over.

A window that cannot be judged (nodata, error, too few samples) breaks the streak:
"3 consecutive breaches" means three consecutive judged windows. What missing data
means for a rollout (hold or roll back) is the policy's call, not the trigger's.

History is the list of this trigger's earlier results, oldest first; "now" is
passed in. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from monitors.errors import ConfigError
from monitors.measurement import Measurement, Status, Window

__all__ = [
    "Comparison",
    "TriggerResult",
    "TriggerSpec",
    "TriggerStatus",
    "auto_rollback_triggers",
    "evaluate",
    "evaluate_all",
]

Comparison = Literal["value", "drop", "relative_drop"]
Direction = Literal["above", "below"]


class TriggerStatus(StrEnum):
    """What one evaluation concluded."""

    OK = "ok"  # judged, no breach
    BREACHED = "breached"  # breach, fewer than `consecutive` in a row so far
    FIRED = "fired"  # breach that fires: act now
    COOLDOWN = "cooldown"  # breach that would fire, but the last firing is too recent
    INSUFFICIENT = "insufficient"  # fewer samples than min_samples
    NODATA = "nodata"  # no measurement (or baseline) to judge
    ERROR = "error"  # the measurement (or baseline) is an error

    @property
    def breach(self) -> bool:
        """True for the statuses that count towards a streak of breaches."""
        return self in (TriggerStatus.BREACHED, TriggerStatus.FIRED, TriggerStatus.COOLDOWN)


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One threshold rule.

    ``compare``: ``value`` judges the metric itself; ``drop`` judges
    ``baseline - value`` (absolute, e.g. accuracy points); ``relative_drop`` judges
    ``(baseline - value) / baseline``. ``direction`` says whether breaching means
    above or below ``threshold``.
    """

    name: str
    metric: str
    threshold: float
    direction: Direction = "above"
    compare: Comparison = "value"
    min_samples: int = 0
    consecutive: int = 1
    cooldown: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        where = f"trigger {self.name!r}"
        if not self.name or not self.metric:
            raise ConfigError("a trigger needs a name and a metric")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"{where}: threshold must be a finite number")
        if self.direction not in ("above", "below"):
            raise ConfigError(f"{where}: direction must be 'above' or 'below'")
        if self.compare not in ("value", "drop", "relative_drop"):
            raise ConfigError(f"{where}: compare must be value, drop or relative_drop")
        if self.min_samples < 0:
            raise ConfigError(f"{where}: min_samples must be >= 0")
        if self.consecutive < 1:
            raise ConfigError(f"{where}: consecutive must be >= 1")
        if self.cooldown < timedelta(0):
            raise ConfigError(f"{where}: cooldown must not be negative")

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> TriggerSpec:
        """Build from a config mapping with the field names; ``cooldown`` in seconds."""
        name = options.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("trigger: 'name' is required and must be a string")
        where = f"trigger {name!r}"
        known = {"name", "metric", "threshold", "direction", "compare", "min_samples",
                 "consecutive", "cooldown"}  # fmt: skip
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        for key in ("metric", "direction", "compare"):
            if key in options and not isinstance(options[key], str):
                raise ConfigError(f"{where}: {key!r} must be a string")
        for key in ("min_samples", "consecutive"):
            if key in options and type(options[key]) is not int:
                raise ConfigError(f"{where}: {key!r} must be an integer")
        for key in ("threshold", "cooldown"):
            value = options.get(key, 0)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"{where}: {key!r} must be a number")
        if "threshold" not in options:
            raise ConfigError(f"{where}: 'threshold' is required")
        return cls(
            name=name,
            metric=options.get("metric", ""),
            threshold=float(options["threshold"]),
            direction=options.get("direction", "above"),
            compare=options.get("compare", "value"),
            min_samples=options.get("min_samples", 0),
            consecutive=options.get("consecutive", 1),
            cooldown=timedelta(seconds=float(options.get("cooldown", 0))),
        )


@dataclass(frozen=True, slots=True)
class TriggerResult:
    """One evaluation: what was judged, against what, and a one-line reason."""

    trigger: str
    metric: str
    status: TriggerStatus
    at: datetime
    value: float | None
    threshold: float
    window: Window | None
    samples: int
    consecutive: int
    reason: str

    @property
    def fired(self) -> bool:
        """True when the caller should act on this result."""
        return self.status is TriggerStatus.FIRED


def _streak(history: Sequence[TriggerResult]) -> int:
    """Breaches in a row at the end of ``history``, counting back to the last firing."""
    count = 0
    for past in reversed(history):
        if past.status is TriggerStatus.FIRED:
            break  # a firing consumes its streak; breaches after it count afresh
        if not past.status.breach:
            break
        count += 1
    return count


def _last_fired(history: Sequence[TriggerResult]) -> datetime | None:
    for past in reversed(history):
        if past.status is TriggerStatus.FIRED:
            return past.at
    return None


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def evaluate(
    spec: TriggerSpec,
    measurements: Mapping[str, Measurement],
    history: Sequence[TriggerResult] = (),
    *,
    now: datetime,
    baseline: Mapping[str, Measurement] | None = None,
) -> TriggerResult:
    """Judge ``spec`` on ``measurements[spec.metric]`` (and ``baseline`` for drops)."""
    measurement = measurements.get(spec.metric)

    def result(
        status: TriggerStatus, reason: str, *, value: float | None = None, consecutive: int = 0
    ) -> TriggerResult:
        return TriggerResult(
            trigger=spec.name,
            metric=spec.metric,
            status=status,
            at=now,
            value=value,
            threshold=spec.threshold,
            window=measurement.window if measurement else None,
            samples=measurement.sample_size if measurement else 0,
            consecutive=consecutive,
            reason=f"{spec.name}: {reason}",
        )

    checked = _judgeable(measurement, spec, "")
    if isinstance(checked, tuple):
        return result(*checked)
    observed = value = checked
    label = spec.metric
    if spec.compare != "value":
        checked = _judgeable((baseline or {}).get(spec.metric), spec, "baseline ")
        if isinstance(checked, tuple):
            return result(*checked)
        base = checked
        if spec.compare == "drop":
            value = base - observed
            label = f"{spec.metric} drop ({_fmt(base)} -> {_fmt(observed)})"
        else:
            if base <= 0:
                return result(
                    TriggerStatus.NODATA,
                    f"baseline {spec.metric} is {_fmt(base)}; a relative "
                    "drop needs a positive baseline",
                )
            value = (base - observed) / base
            label = f"{spec.metric} relative drop ({_fmt(base)} -> {_fmt(observed)})"
    breached = value > spec.threshold if spec.direction == "above" else value < spec.threshold
    sign = ">" if spec.direction == "above" else "<"
    where = (
        f"over {measurement.window.describe()}, {measurement.sample_size} samples"
        if measurement
        else ""
    )
    if not breached:
        negated = "<=" if spec.direction == "above" else ">="
        return result(
            TriggerStatus.OK,
            f"{label} {_fmt(value)} {negated} {_fmt(spec.threshold)} {where}",
            value=value,
        )
    streak = _streak(history) + 1
    text = f"{label} {_fmt(value)} {sign} {_fmt(spec.threshold)} {where}"
    if streak < spec.consecutive:
        return result(
            TriggerStatus.BREACHED,
            f"{text}; breach {streak} of {spec.consecutive} needed to fire",
            value=value,
            consecutive=streak,
        )
    fired_at = _last_fired(history)
    if fired_at is not None and now < fired_at + spec.cooldown:
        return result(
            TriggerStatus.COOLDOWN,
            f"{text}; in cooldown until {(fired_at + spec.cooldown).isoformat()}",
            value=value,
            consecutive=streak,
        )
    return result(
        TriggerStatus.FIRED,
        f"{text}; breach {streak} in a row: firing",
        value=value,
        consecutive=streak,
    )


def _judgeable(
    measurement: Measurement | None, spec: TriggerSpec, prefix: str
) -> float | tuple[TriggerStatus, str]:
    """The value to judge, or the status and reason why ``measurement`` cannot be."""
    if measurement is None:
        return TriggerStatus.NODATA, f"no {prefix}measurement of {spec.metric}"
    if measurement.status is Status.ERROR:
        return TriggerStatus.ERROR, f"{prefix}{spec.metric} error: {measurement.message}"
    if measurement.status is Status.NODATA:
        return TriggerStatus.NODATA, f"{prefix}{spec.metric} has no data: {measurement.message}"
    if measurement.sample_size < spec.min_samples:
        return (
            TriggerStatus.INSUFFICIENT,
            f"{prefix}{spec.metric} rests on {measurement.sample_size} samples, "
            f"fewer than the {spec.min_samples} needed to judge",
        )
    if measurement.value is None:  # an ok Measurement always has a value; stay defensive
        return TriggerStatus.ERROR, f"{prefix}{spec.metric} has no value"
    return measurement.value


def evaluate_all(
    specs: Sequence[TriggerSpec],
    measurements: Mapping[str, Measurement],
    history: Mapping[str, Sequence[TriggerResult]],
    *,
    now: datetime,
    baseline: Mapping[str, Measurement] | None = None,
) -> tuple[TriggerResult, ...]:
    """``evaluate`` every spec; ``history`` is keyed by trigger name."""
    return tuple(
        evaluate(spec, measurements, history.get(spec.name, ()), now=now, baseline=baseline)
        for spec in specs
    )


def auto_rollback_triggers(
    *,
    error_rate_threshold: float | None = None,
    latency_threshold: float | None = None,
    accuracy_drop_threshold: float | None = None,
    min_samples: int = 100,
    consecutive: int = 1,
    cooldown: timedelta = timedelta(0),
) -> tuple[TriggerSpec, ...]:
    """The seed's ``set_auto_rollback_triggers(error_rate_threshold,
    latency_threshold, accuracy_drop_threshold)`` as trigger specs.

    - ``error_rate_threshold``: fire when metric ``error_rate`` (a fraction) is above it.
    - ``latency_threshold``: fire when metric ``latency_p95`` (milliseconds) is above it.
    - ``accuracy_drop_threshold``: fire when metric ``accuracy`` is more than this many
      points (a fraction, 0.05 = 5 points) below the baseline version's accuracy in the
      same window.

    A threshold left as None yields no trigger.
    """

    def spec(
        name: str, metric: str, threshold: float, compare: Comparison = "value"
    ) -> TriggerSpec:
        return TriggerSpec(
            name=name,
            metric=metric,
            threshold=threshold,
            compare=compare,
            min_samples=min_samples,
            consecutive=consecutive,
            cooldown=cooldown,
        )

    specs = []
    if error_rate_threshold is not None:
        specs.append(spec("error_rate", "error_rate", error_rate_threshold))
    if latency_threshold is not None:
        specs.append(spec("latency_p95", "latency_p95", latency_threshold))
    if accuracy_drop_threshold is not None:
        specs.append(spec("accuracy_drop", "accuracy", accuracy_drop_threshold, "drop"))
    return tuple(specs)
