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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    # pandas loads on first use (about 0.5 s): the batched rounds measure from numpy
    # aggregates, and a daemon without custom aggregations may never need it.
    import pandas as pd

from monitors.errors import ConfigError
from monitors.measurement import Measurement, MetricSpec, Status, Subject, SufficientStats, Window

__all__ = [
    "BUILTIN_STATISTICS",
    "COUNT_STATISTICS",
    "EVENT_COLUMNS",
    "STAT_COLUMNS",
    "CustomAggregation",
    "WindowCounts",
    "check_statistic",
    "measure_by",
    "measure_counts",
    "measure_frame",
    "measure_values",
    "summarize",
    "value_column",
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
COUNT_STATISTICS: frozenset[str] = frozenset(
    {"count", "error_rate", "accuracy", "labelled_fraction"}
)
"""The statistics a window's counts (``WindowCounts``) determine; every other one reads
the values of one column (``value_column``)."""
CustomAggregation = Callable[["pd.Series"], float]


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What the count statistics need of a window: its events (``total``), those with
    ``error`` set, those ``labelled`` (both an outcome and a label) and, of those, the
    ``correct`` ones (outcome equal to the label)."""

    total: int = 0
    errors: int = 0
    labelled: int = 0
    correct: int = 0

    def __add__(self, other: WindowCounts) -> WindowCounts:
        return WindowCounts(
            self.total + other.total,
            self.errors + other.errors,
            self.labelled + other.labelled,
            self.correct + other.correct,
        )


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
        import pandas as pd  # noqa: PLC0415 -- see the module's imports

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
    aggregation that fails or returns a non-finite number is ``error``.

    The statistic itself is computed by ``measure_counts`` (counts: the count
    statistics) or ``measure_values`` (one column's values: the others), which the
    ingest source also calls with counts and values its database aggregated, so a
    window measures the same whichever way it was read."""
    custom = custom or {}
    name = metric.query
    try:
        check_statistic(name, custom)
    except ConfigError as exc:
        return Measurement.error(metric.name, subject, window, str(exc))
    n = len(frame)
    if name in COUNT_STATISTICS:
        return measure_counts(_frame_counts(frame, name), metric, subject, window)
    column = value_column(name)
    values = frame[column].to_numpy(dtype=float) if n else np.empty(0)
    return measure_values(values, metric, subject, window, custom=custom, max_samples=max_samples)


def _frame_counts(frame: pd.DataFrame, name: str) -> WindowCounts:
    """The counts statistic ``name`` needs, from an event frame."""
    n = len(frame)
    if name == "count" or n == 0:
        return WindowCounts(total=n)
    if name == "error_rate":
        return WindowCounts(total=n, errors=int(frame["error"].sum()))
    both = frame["label"].notna() & frame["outcome"].notna()
    labelled = int(both.sum())
    correct = (
        int((frame.loc[both, "outcome"] == frame.loc[both, "label"]).sum())
        if name == "accuracy" and labelled
        else 0
    )
    return WindowCounts(total=n, labelled=labelled, correct=correct)


def value_column(statistic: str) -> str:
    """The event column a statistic outside ``COUNT_STATISTICS`` reads: ``latency_ms``
    for the latency statistics, ``score`` for ``score_mean``, else ``outcome`` (the
    ``outcome_*`` statistics and custom aggregations)."""
    if statistic == "latency_mean" or statistic in _QUANTILES:
        return "latency_ms"
    return "score" if statistic == "score_mean" else "outcome"


def _no_events(metric: MetricSpec, subject: Subject, window: Window) -> Measurement:
    return Measurement.nodata(
        metric.name, subject, window, f"no events for {subject.describe()} in {window.describe()}"
    )


def _ok(
    metric: MetricSpec,
    subject: Subject,
    window: Window,
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
            metric.name, subject, window, f"{metric.query} is not finite ({value!r})"
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


def measure_counts(
    counts: WindowCounts, metric: MetricSpec, subject: Subject, window: Window
) -> Measurement:
    """A statistic of ``COUNT_STATISTICS`` from a window's counts (``measure_frame``'s
    definitions): no events is ``nodata``, as is accuracy without a label."""
    name = metric.query
    if name not in COUNT_STATISTICS:
        raise ValueError(f"{name!r} is not computed from counts")
    n = counts.total
    if n == 0:
        return _no_events(metric, subject, window)
    if name == "count":
        return _ok(metric, subject, window, float(n), n, counts={"total": n})
    if name == "error_rate":
        errors = counts.errors
        return _ok(metric, subject, window, errors / n, n, counts={"errors": errors, "total": n})
    labelled = counts.labelled
    fraction = labelled / n
    if name == "labelled_fraction":
        return _ok(metric, subject, window, fraction, n, counts={"labelled": labelled, "total": n})
    if labelled == 0:
        return Measurement.nodata(
            metric.name, subject, window, f"no labels yet for {n} predictions"
        )
    correct = counts.correct
    return _ok(
        metric,
        subject,
        window,
        correct / labelled,
        labelled,
        counts={"correct": correct, "labelled": labelled, "total": n},
        extra={"labelled_fraction": fraction},
    )


def measure_values(
    values: np.ndarray,
    metric: MetricSpec,
    subject: Subject,
    window: Window,
    *,
    custom: Mapping[str, CustomAggregation] | None = None,
    max_samples: int = 10_000,
) -> Measurement:
    """A statistic outside ``COUNT_STATISTICS`` from the window's values of its column
    (``value_column``), one per event in the window's order, NaN where the event has
    none: no events is ``nodata``, as is no value at all for an outcome or a score.
    A custom aggregation is handed the values that are set, as a ``pandas.Series``."""
    custom = custom or {}
    name = metric.query
    n = len(values)
    if n == 0:
        return _no_events(metric, subject, window)
    if name == "latency_mean" or name in _QUANTILES:
        latency = np.asarray(values, dtype=float)
        value = (
            float(latency.mean())
            if name == "latency_mean"
            else float(np.quantile(latency, _QUANTILES[name]))
        )
        return _ok(
            metric,
            subject,
            window,
            value,
            n,
            stats=_stats(latency),
            samples=_systematic_sample(latency, max_samples),
        )
    column = value_column(name)
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    if len(array) == 0:
        return Measurement.nodata(
            metric.name, subject, window, f"no {column} values among {n} predictions"
        )
    if name in custom:
        import pandas as pd  # noqa: PLC0415 -- see the module's imports

        try:
            value = float(custom[name](pd.Series(array, name=column)))
        except Exception as exc:  # user code must not crash the monitor
            return Measurement.error(
                metric.name, subject, window, f"custom aggregation {name!r} failed: {exc!r}"
            )
    else:
        how = "mean" if name == "score_mean" else _OUTCOME[name]
        value = float(getattr(array, how)())
    return _ok(metric, subject, window, value, len(array), stats=_stats(array))


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
