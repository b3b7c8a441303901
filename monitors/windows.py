"""Window statistics over raw prediction events, computed with pandas.

The input frame has one row per prediction with the columns of ``EVENT_COLUMNS``
plus ``label`` (NaN until the late label arrives). Everything here is pure: no
database, no clock. ``IngestSource`` loads a window from the store and hands the
frame to ``measure_frame``; ``summarize`` gives the per-arm (or per-version) table
people and benchmarks look at.

Definitions:

- ``error_rate`` = errors / count.
- ``latency_pNN``: quantile of ``latency_ms`` with linear interpolation (numpy's
  default), over every prediction in the window, errors included.
- ``accuracy`` = share of labelled predictions whose ``outcome`` equals the
  ``label``, over predictions that have both; ``labelled_fraction`` = labelled /
  count is reported next to it, because accuracy over 2 % of the traffic is not
  accuracy over the traffic.
- ``outcome_mean|sum|min|max``, ``score_mean``: over rows where the column is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from monitors.errors import ConfigError
from monitors.measurement import Measurement, MetricSpec, Status, Subject, SufficientStats, Window

__all__ = [
    "BUILTIN_STATISTICS",
    "EVENT_COLUMNS",
    "STAT_COLUMNS",
    "CustomAggregation",
    "check_statistic",
    "measure_by",
    "measure_frame",
    "summarize",
]

EVENT_COLUMNS: tuple[str, ...] = (
    "prediction_id",
    "model",
    "version",
    "arm",
    "unit_id",
    "ts",
    "latency_ms",
    "error",
    "outcome",
    "score",
)
STAT_COLUMNS: tuple[str, ...] = ("ts", "latency_ms", "error", "outcome", "score")
"""The event columns ``measure_frame`` reads (plus ``label``)."""
CustomAggregation = Callable[[pd.Series], float]

_QUANTILES = {"latency_p50": 0.50, "latency_p95": 0.95, "latency_p99": 0.99}
_OUTCOME = {
    "outcome_mean": "mean",
    "outcome_sum": "sum",
    "outcome_min": "min",
    "outcome_max": "max",
}
BUILTIN_STATISTICS: frozenset[str] = frozenset(
    {
        "count",
        "error_rate",
        "latency_mean",
        "accuracy",
        "labelled_fraction",
        "score_mean",
        *_QUANTILES,
        *_OUTCOME,
    }
)


def check_statistic(name: str, custom: Mapping[str, CustomAggregation]) -> None:
    """Raise ``ConfigError`` unless ``name`` is a built-in or registered statistic."""
    if name not in BUILTIN_STATISTICS and name not in custom:
        raise ConfigError(
            f"unknown ingest statistic {name!r}; known: "
            f"{', '.join(sorted(BUILTIN_STATISTICS | set(custom)))}"
        )


def summarize(frame: pd.DataFrame, by: Sequence[str] = ("arm",)) -> pd.DataFrame:
    """One row per group: count, error_rate, latency mean/p50/p95/p99, accuracy and
    labelled_fraction. Empty input gives an empty frame with those columns."""
    keys = list(by)
    if frame.empty:
        columns = [
            "count",
            "errors",
            "error_rate",
            "latency_mean",
            "latency_p50",
            "latency_p95",
            "latency_p99",
            "labelled",
            "accuracy",
            "labelled_fraction",
        ]
        return pd.DataFrame(columns=keys + columns).set_index(keys)
    work = frame.assign(
        _labelled=frame["label"].notna() & frame["outcome"].notna(),
        _correct=(frame["outcome"] == frame["label"]),
    )
    grouped = work.groupby(keys, sort=True, observed=True)
    out = grouped.agg(
        count=("latency_ms", "size"),
        errors=("error", "sum"),
        latency_mean=("latency_ms", "mean"),
        labelled=("_labelled", "sum"),
        correct=("_correct", "sum"),
    )
    quantiles = grouped["latency_ms"].quantile([0.5, 0.95, 0.99]).unstack()
    out["latency_p50"] = quantiles[0.5]
    out["latency_p95"] = quantiles[0.95]
    out["latency_p99"] = quantiles[0.99]
    out["error_rate"] = out["errors"] / out["count"]
    out["accuracy"] = (out["correct"] / out["labelled"]).where(out["labelled"] > 0)
    out["labelled_fraction"] = out["labelled"] / out["count"]
    return out.drop(columns=["correct"])


def _systematic_sample(values: np.ndarray, limit: int) -> tuple[float, ...]:
    """Every k-th value, deterministic, at most ``limit`` values (kept in order)."""
    if len(values) <= limit:
        return tuple(float(v) for v in values)
    index = np.linspace(0, len(values) - 1, num=limit).round().astype(int)
    return tuple(float(v) for v in values[index])


def _stats(values: np.ndarray) -> SufficientStats:
    n = len(values)
    mean = float(values.mean())
    variance = float(values.var(ddof=1)) if n > 1 else 0.0
    return SufficientStats(n=n, mean=mean, variance=variance)


def measure_frame(
    frame: pd.DataFrame,
    metric: MetricSpec,
    subject: Subject,
    window: Window,
    *,
    custom: Mapping[str, CustomAggregation] | None = None,
    max_samples: int = 10_000,
) -> Measurement:
    """Compute ``metric.query`` over ``frame`` (already restricted to the window and
    subject). Never raises for data problems: empty input is ``nodata``; a custom
    aggregation that fails or returns a non-finite number is ``error``."""
    custom = custom or {}
    name = metric.query
    try:
        check_statistic(name, custom)
    except ConfigError as exc:
        return Measurement.error(metric.name, subject, window, str(exc))
    n = len(frame)
    if n == 0:
        return Measurement.nodata(
            metric.name,
            subject,
            window,
            f"no events for {subject.describe()} in {window.describe()}",
        )

    def ok(
        value: float,
        size: int,
        *,
        counts: Mapping[str, float] | None = None,
        stats: SufficientStats | None = None,
        samples: tuple[float, ...] = (),
        extra: Mapping[str, float] | None = None,
    ) -> Measurement:
        if not math.isfinite(value):
            return Measurement.error(
                metric.name, subject, window, f"{name} is not finite ({value!r})"
            )
        return Measurement(
            metric=metric.name,
            subject=subject,
            window=window,
            status=Status.OK,
            value=value * metric.scale,
            sample_size=size,
            counts=counts or {},
            stats=stats,
            samples=samples,
            extra=extra or {},
        )

    if name == "count":
        return ok(float(n), n, counts={"total": n})
    if name == "error_rate":
        errors = int(frame["error"].sum())
        return ok(errors / n, n, counts={"errors": errors, "total": n})
    if name == "latency_mean" or name in _QUANTILES:
        latency = frame["latency_ms"].to_numpy(dtype=float)
        value = (
            float(latency.mean())
            if name == "latency_mean"
            else float(np.quantile(latency, _QUANTILES[name]))
        )
        return ok(value, n, stats=_stats(latency), samples=_systematic_sample(latency, max_samples))
    if name in ("accuracy", "labelled_fraction"):
        both = frame["label"].notna() & frame["outcome"].notna()
        labelled = int(both.sum())
        fraction = labelled / n
        if name == "labelled_fraction":
            return ok(fraction, n, counts={"labelled": labelled, "total": n})
        if labelled == 0:
            return Measurement.nodata(
                metric.name, subject, window, f"no labels yet for {n} predictions"
            )
        correct = int((frame.loc[both, "outcome"] == frame.loc[both, "label"]).sum())
        return ok(
            correct / labelled,
            labelled,
            counts={"correct": correct, "labelled": labelled, "total": n},
            extra={"labelled_fraction": fraction},
        )
    column = "score" if name == "score_mean" else "outcome"
    values = frame[column].dropna()
    if values.empty:
        return Measurement.nodata(
            metric.name, subject, window, f"no {column} values among {n} predictions"
        )
    array = values.to_numpy(dtype=float)
    if name in custom:
        try:
            value = float(custom[name](values))
        except Exception as exc:  # user code must not crash the monitor
            return Measurement.error(
                metric.name, subject, window, f"custom aggregation {name!r} failed: {exc!r}"
            )
    else:
        how = "mean" if name == "score_mean" else _OUTCOME[name]
        value = float(getattr(array, how)())
    return ok(value, len(array), stats=_stats(array))


def measure_by(
    frame: pd.DataFrame,
    metric: MetricSpec,
    window: Window,
    *,
    model: str,
    by: Literal["arm", "version"] = "arm",
    custom: Mapping[str, CustomAggregation] | None = None,
    max_samples: int = 10_000,
) -> dict[str, Measurement]:
    """``measure_frame`` for every arm (or version) of ``frame`` in one pass.

    The frame is split once by the group's row positions, and only the columns the
    statistics read are copied, so the cost is one hashing of the group column plus
    a numpy computation per group, close to a bare pandas ``groupby``.
    """
    if frame.empty:
        return {}
    needed = [c for c in (*STAT_COLUMNS, "label") if c in frame.columns]
    numeric = frame[needed]
    groups = frame.groupby(by, sort=True, observed=True).indices
    out: dict[str, Measurement] = {}
    for key, rows in groups.items():
        subject = (
            Subject(model=model, arm=str(key))
            if by == "arm"
            else Subject(model=model, version=str(key))
        )
        out[str(key)] = measure_frame(
            numeric.iloc[rows], metric, subject, window, custom=custom, max_samples=max_samples
        )
    return out
