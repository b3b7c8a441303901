"""What a source observed: windows, subjects, metric specs and measurements.

Everything here is an immutable value. A ``Measurement`` always comes back from a
source, whatever happened: ``status`` says whether ``value`` may be used at all.
Only ``Status.OK`` measurements carry a finite value; ``nodata`` and ``error`` never
do, so no caller can mistake a failed query for a passing one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from monitors.errors import ConfigError

__all__ = [
    "Aggregate",
    "Bucket",
    "Measurement",
    "MetricQuery",
    "MetricSpec",
    "MetricType",
    "Status",
    "Subject",
    "SufficientStats",
    "Window",
]

MetricType = Literal["gauge", "counter", "histogram", "range"]
Aggregate = Literal["sum", "avg", "min", "max"]
_METRIC_TYPES: frozenset[str] = frozenset({"gauge", "counter", "histogram", "range"})
_AGGREGATES: frozenset[str] = frozenset({"sum", "avg", "min", "max"})


class Status(StrEnum):
    """Outcome of one observation."""

    OK = "ok"
    NODATA = "nodata"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time interval ``[end - length, end)`` a measurement covers.

    ``end`` must be timezone-aware; it is always passed in by the caller (the
    controller's clock), never read inside ``monitors``.
    """

    end: datetime
    length: timedelta

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise ConfigError("window end must be timezone-aware (UTC)")
        if self.length <= timedelta(0):
            raise ConfigError(f"window length must be positive, got {self.length}")

    @property
    def start(self) -> datetime:
        """First instant inside the window."""
        return self.end - self.length

    @property
    def seconds(self) -> float:
        """Window length in seconds."""
        return self.length.total_seconds()

    def promql_duration(self) -> str:
        """The window as a PromQL range duration (``300s``, ``1500ms``)."""
        millis = round(self.seconds * 1000)
        if millis % 1000 == 0:
            return f"{millis // 1000}s"
        return f"{millis}ms"

    def describe(self) -> str:
        """Short human form used in reasons: ``5m0s ending 2026-01-01T00:00:00+00:00``."""
        return f"{self.promql_duration()} ending {self.end.isoformat()}"


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose metric: a model and the version and/or arm being observed."""

    model: str
    version: str = ""
    arm: str = ""

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("subject needs a model name")

    def describe(self) -> str:
        """``model@version[arm]`` for messages."""
        text = self.model
        if self.version:
            text += f"@{self.version}"
        if self.arm:
            text += f"[{self.arm}]"
        return text


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric a source is asked for.

    ``query`` is source-specific: a PromQL template for ``prometheus`` (with
    ``{{model}}``, ``{{version}}``, ``{{arm}}``, ``{{window}}``), a statistic name for
    ``ingest`` (``error_rate``, ``latency_p95``, ``accuracy``, ``outcome_mean``, ...).
    ``aggregate`` says how several series combine; without it, several series are an
    error. ``quantile`` is used for histograms (value = that quantile of the buckets),
    ``step`` for range queries, ``scale`` multiplies values (seconds -> ms: 1000) and
    ``sample_query`` optionally gives the sample size (e.g. the request count) for
    gauges whose value alone does not say how many observations it rests on.
    """

    name: str
    query: str
    type: MetricType = "gauge"
    aggregate: Aggregate | None = None
    quantile: float = 0.95
    step: timedelta = timedelta(seconds=15)
    scale: float = 1.0
    sample_query: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("metric needs a name")
        if not self.query:
            raise ConfigError(f"metric {self.name!r}: query must not be empty")
        if self.type not in _METRIC_TYPES:
            raise ConfigError(
                f"metric {self.name!r}: type must be one of {sorted(_METRIC_TYPES)}, "
                f"got {self.type!r}"
            )
        if self.aggregate is not None and self.aggregate not in _AGGREGATES:
            raise ConfigError(
                f"metric {self.name!r}: aggregate must be one of {sorted(_AGGREGATES)}, "
                f"got {self.aggregate!r}"
            )
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"metric {self.name!r}: quantile must be in (0, 1)")
        if self.step <= timedelta(0):
            raise ConfigError(f"metric {self.name!r}: step must be positive")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"metric {self.name!r}: scale must be a positive number")

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> MetricSpec:
        """Build from a config mapping with the field names; ``step`` in seconds.

        Unknown keys and wrong types are ``ConfigError`` s naming the metric and key.
        """
        name = options.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("metric: 'name' is required and must be a string")
        where = f"metric {name!r}"
        known = {"name", "query", "type", "aggregate", "quantile", "step", "scale",
                 "sample_query"}  # fmt: skip
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        for key in ("query", "type", "aggregate", "sample_query"):
            if key in options and not isinstance(options[key], str | None):
                raise ConfigError(f"{where}: {key!r} must be a string")
        for key in ("quantile", "step", "scale"):
            value = options.get(key)
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise ConfigError(f"{where}: {key!r} must be a number")
        return cls(
            name=name,
            query=options.get("query") or "",
            type=options.get("type") or "gauge",
            aggregate=options.get("aggregate"),
            quantile=float(options.get("quantile", 0.95)),
            step=timedelta(seconds=float(options.get("step", 15))),
            scale=float(options.get("scale", 1.0)),
            sample_query=options.get("sample_query") or "",
        )


@dataclass(frozen=True, slots=True)
class SufficientStats:
    """Count, mean and sample variance (ddof=1), enough for a Welch test."""

    n: int
    mean: float
    variance: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """One cumulative histogram bucket as Prometheus exports it."""

    le: float
    count: float


@dataclass(frozen=True, slots=True)
class Measurement:
    """The answer of a source for one metric, subject and window.

    ``value`` is set only when ``status`` is ``ok`` and is then finite. The raw
    material a statistical test needs travels alongside: ``counts`` (e.g.
    ``{"errors": 3, "total": 1000}``), ``stats``, ``samples``, ``buckets`` and
    ``extra`` (e.g. ``{"labelled_fraction": 0.4}``). ``sample_size`` is what
    minimum-sample rules compare against.
    """

    metric: str
    subject: Subject
    window: Window
    status: Status
    value: float | None = None
    sample_size: int = 0
    message: str = ""
    counts: Mapping[str, float] = field(default_factory=dict)
    stats: SufficientStats | None = None
    samples: tuple[float, ...] = ()
    buckets: tuple[Bucket, ...] = ()
    extra: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status is Status.OK:
            if self.value is None or not math.isfinite(self.value):
                raise ValueError(f"an ok measurement needs a finite value, got {self.value!r}")
        elif self.value is not None:
            raise ValueError(f"a {self.status} measurement must not carry a value")

    @property
    def ok(self) -> bool:
        """True when ``value`` may be used."""
        return self.status is Status.OK

    @classmethod
    def error(cls, metric: str, subject: Subject, window: Window, message: str) -> Measurement:
        """A failed observation (timeout, HTTP error, malformed answer, NaN...)."""
        return cls(
            metric=metric, subject=subject, window=window, status=Status.ERROR, message=message
        )

    @classmethod
    def nodata(cls, metric: str, subject: Subject, window: Window, message: str) -> Measurement:
        """The source answered, but there was nothing to measure in the window."""
        return cls(
            metric=metric, subject=subject, window=window, status=Status.NODATA, message=message
        )


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One question for a source: ``metric`` of ``subject`` over ``window``. A source
    that answers many at once (``IngestSource.measure_many``) takes a list of them."""

    metric: MetricSpec
    subject: Subject
    window: Window
