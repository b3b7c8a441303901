"""Prometheus HTTP API source (``kind: prometheus``).

How each metric type is asked:

- ``gauge``: the rendered template, instant query at the window end.
- ``counter``: the template is a series selector; the source asks
  ``increase(<selector>[<window>])`` at the window end.
- ``histogram``: the template is the ``_bucket`` selector; the source asks
  ``increase(<selector>[<window>])`` and groups the answer by ``le`` into
  cumulative buckets (several series per ``le`` need ``aggregate: sum``). The value
  is ``quantile`` of the buckets, interpolated as ``histogram_quantile`` does.
- ``range``: the rendered template over ``[start, end]`` at ``step``; the samples
  are the points, the value their mean.

Several series are an error unless the metric names an ``aggregate``. Timeouts,
HTTP errors, Prometheus errors, malformed JSON and non-finite numbers all come back
as measurements with status ``error``; an empty result is ``nodata``.

Config options are ``PrometheusOptions``; ``PrometheusSource.from_options`` builds from
them (a CA bundle or client certificate that cannot be read is an ``OptionError``).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from monitors.errors import ConfigError, OptionError, TemplateError
from monitors.measurement import (
    Aggregate,
    Bucket,
    Measurement,
    MetricSpec,
    Status,
    Subject,
    SufficientStats,
    Window,
)
from monitors.promql import parse_template, render_template
from monitors.source import SourceOptions

if TYPE_CHECKING:
    # httpx (about 0.1 s with its TLS stack) loads when a source is built: a config
    # without a Prometheus source never needs it.
    import httpx

__all__ = ["BasicAuth", "PrometheusOptions", "PrometheusSource", "histogram_quantile"]

_AGGREGATORS: dict[str, Callable[[Sequence[float]], float]] = {
    "sum": math.fsum,
    "avg": statistics.fmean,
    "min": min,
    "max": max,
}


class _QueryFailed(Exception):
    """Internal: one HTTP round trip did not yield usable data (becomes status error)."""


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float:
    """Estimate quantile ``q`` from cumulative ``buckets`` like PromQL's function.

    Linear interpolation inside the bucket holding the rank; the lower bound of the
    first bucket is 0 when its upper bound is positive. A rank in the ``+Inf``
    bucket returns the largest finite upper bound. Returns NaN without observations.
    """
    ordered = sorted(buckets, key=lambda b: b.le)
    if not ordered or not math.isinf(ordered[-1].le):
        return math.nan
    total = ordered[-1].count
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for index, bucket in enumerate(ordered):
        if bucket.count >= rank:
            if math.isinf(bucket.le):
                return ordered[index - 1].le if index > 0 else math.nan
            lower = prev_le if index > 0 or bucket.le > 0 else bucket.le
            width = bucket.count - prev_count
            if width <= 0:
                return bucket.le
            return lower + (bucket.le - lower) * (rank - prev_count) / width
        prev_le, prev_count = bucket.le, bucket.count
    return ordered[-2].le if len(ordered) > 1 else math.nan


def _timestamp(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


def _number(raw: object) -> float:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise _QueryFailed(f"malformed sample value {raw!r}")
    try:
        value = float(raw)
    except ValueError as exc:
        raise _QueryFailed(f"malformed sample value {raw!r}") from exc
    return value


def _pair_value(pair: object, at: float, tolerance: float) -> float:
    """A ``[timestamp, "value"]`` pair's value. ``at``: the instant the query was
    evaluated at, which an instant query's samples carry; a sample from another time
    (a cache or proxy answering with an old result) is stale, not data."""
    if not isinstance(pair, list) or len(pair) != 2:
        raise _QueryFailed(f"malformed sample {pair!r}")
    stamp = _number(pair[0])
    if abs(stamp - at) > tolerance:
        raise _QueryFailed(f"stale sample: evaluated at {stamp:.3f}, asked for {at:.3f}")
    return _number(pair[1])


def _series_labels(item: object) -> dict[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
        raise _QueryFailed(f"malformed series {item!r}")
    return {str(k): str(v) for k, v in item["metric"].items()}


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value


def _bool_or_path(value: Any) -> Any:
    """``verify`` is a flag or a path: one clear message for anything else."""
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    raise ValueError("expected true, false or the path of a CA bundle")


def _readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


class BasicAuth(SourceOptions):
    """HTTP basic authentication for Prometheus."""

    username: str = Field(min_length=1)
    password: str = Field(repr=False)


class PrometheusOptions(SourceOptions):
    """Options of ``kind: prometheus``: the server, its authentication and TLS, and
    its scrape interval."""

    url: Annotated[str, AfterValidator(_http_url)] = Field(
        description="Prometheus' base URL, e.g. http://127.0.0.1:9090 (required)."
    )
    timeout: float = Field(default=5.0, gt=0, le=300, description="Per query, in seconds.")
    bearer_token: str | None = Field(
        default=None, min_length=1, repr=False, description="Sent as Authorization: Bearer."
    )
    basic_auth: BasicAuth | None = Field(
        default=None, description="{username, password}; not together with bearer_token."
    )
    verify: Annotated[bool | str, BeforeValidator(_bool_or_path)] = Field(
        default=True,
        description="Check the server's TLS certificate (true), not (false), or against "
        "this CA bundle (a path).",
    )
    cert: str | None = Field(
        default=None, min_length=1, description="A client certificate (PEM, key included)."
    )
    scrape_interval: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Prometheus' scrape interval in seconds: a window shorter than this "
        "holds no sample to trust and is measured as an error.",
    )

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusOptions:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("set bearer_token or basic_auth, not both")
        return self

    def environment_problems(self) -> list[OptionError]:
        """The CA bundle and client certificate must be readable files here."""
        files = [("verify", self.verify), ("cert", self.cert)]
        return [
            OptionError(key, f"{path} is not a readable file")
            for key, path in files
            if isinstance(path, str) and not _readable(path)
        ]


class PrometheusSource:
    """A ``MetricSource`` over Prometheus' HTTP API (``/api/v1/query[_range]``).

    The httpx client is injected (unit tests pass one with ``httpx.MockTransport``);
    without one, the source builds its own with the TLS settings given. Auth headers
    are added per request, so they apply to an injected client too.
    """

    def __init__(
        self,
        *,
        base_url: str,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        scrape_interval: timedelta = timedelta(seconds=15),
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"prometheus url must start with http:// or https://: {base_url!r}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"prometheus timeout must be a positive number, got {timeout!r}")
        if bearer_token is not None and basic_auth is not None:
            raise ConfigError("prometheus: set bearer_token or basic_auth, not both")
        if scrape_interval <= timedelta(0):
            raise ConfigError("prometheus: scrape_interval must be positive")
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        import httpx  # noqa: PLC0415 -- see the module's imports

        self._auth = httpx.BasicAuth(*basic_auth) if basic_auth else None
        self._scrape_interval = scrape_interval
        if client is None:
            if isinstance(verify, str) or cert is not None:
                import ssl  # noqa: PLC0415 - only needed for custom TLS material

                context = ssl.create_default_context(
                    cafile=verify if isinstance(verify, str) else None
                )
                if verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if cert is not None:
                    certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
                    context.load_cert_chain(certfile, keyfile)
                client = httpx.Client(verify=context)
            else:
                client = httpx.Client(verify=verify)
        self._client = client

    @classmethod
    def from_options(
        cls, options: PrometheusOptions, *, client: httpx.Client | None = None
    ) -> PrometheusSource:
        """Build from validated config options (``OptionError`` if a TLS file is unreadable)."""
        problems = options.environment_problems()
        if problems:
            raise problems[0]
        auth = options.basic_auth
        return cls(
            base_url=options.url,
            client=client,
            timeout=options.timeout,
            bearer_token=options.bearer_token,
            basic_auth=(auth.username, auth.password) if auth is not None else None,
            verify=options.verify,
            cert=options.cert,
            scrape_interval=timedelta(seconds=options.scrape_interval),
        )

    @staticmethod
    def validate(metric: MetricSpec) -> None:
        """Raise ``TemplateError`` when a template of ``metric`` is unusable."""
        parse_template(metric.query)
        if metric.sample_query:
            parse_template(metric.sample_query)

    def measure(self, metric: MetricSpec, subject: Subject, window: Window) -> Measurement:
        """Query Prometheus for ``metric``; see the module docstring for each type."""
        if window.length < self._scrape_interval:
            return Measurement.error(
                metric.name,
                subject,
                window,
                f"window {window.promql_duration()} is shorter than the scrape interval "
                f"{self._scrape_interval.total_seconds():g}s",
            )
        try:
            query = render_template(metric.query, subject, window)
            sample_query = (
                render_template(metric.sample_query, subject, window) if metric.sample_query else ""
            )
        except TemplateError as exc:
            return Measurement.error(metric.name, subject, window, str(exc))
        try:
            if metric.type == "histogram":
                result = self._histogram(metric, subject, window, query)
            elif metric.type == "range":
                result = self._range(metric, subject, window, query)
            else:
                if metric.type == "counter":
                    query = f"increase({query}[{window.promql_duration()}])"
                result = self._instant_value(metric, subject, window, query)
            if sample_query and result.ok:
                size = self._aggregate(
                    self._vector(sample_query, window.end), "sum", "sample query"
                )
                if not math.isfinite(size) or size < 0:
                    raise _QueryFailed(f"sample query returned {size!r}")
                result = _with_sample_size(result, round(size))
            return result
        except _QueryFailed as exc:
            return Measurement.error(metric.name, subject, window, f"{exc} (query: {query})")
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            # A response shape the parsers above did not foresee: still data, not a crash.
            return Measurement.error(
                metric.name, subject, window, f"malformed response: {exc!r} (query: {query})"
            )

    # -- metric types -------------------------------------------------------------

    def _instant_value(
        self, metric: MetricSpec, subject: Subject, window: Window, query: str
    ) -> Measurement:
        values = self._vector(query, window.end)
        if not values:
            return Measurement.nodata(metric.name, subject, window, f"no series for query: {query}")
        value = self._aggregate(values, metric.aggregate, metric.name) * metric.scale
        if not math.isfinite(value):
            raise _QueryFailed(f"non-finite value {value!r}")
        counts: dict[str, float] = {}
        size = 0
        if metric.type == "counter":
            counts = {"increase": value}
            size = max(0, round(value))
        return Measurement(
            metric=metric.name,
            subject=subject,
            window=window,
            status=Status.OK,
            value=value,
            sample_size=size,
            counts=counts,
        )

    def _histogram(
        self, metric: MetricSpec, subject: Subject, window: Window, query: str
    ) -> Measurement:
        query = f"increase({query}[{window.promql_duration()}])"
        series = self._series(
            self._get("/api/v1/query", {"query": query, "time": _timestamp(window.end)}),
            window.end,
        )
        by_le: dict[float, list[float]] = {}
        for labels, value in series:
            if "le" not in labels:
                raise _QueryFailed("histogram series without an 'le' label")
            le = _number(labels["le"])
            if math.isnan(le):
                raise _QueryFailed(f"malformed bucket bound {labels['le']!r}")
            by_le.setdefault(le, []).append(value)
        if not by_le:
            return Measurement.nodata(
                metric.name, subject, window, f"no histogram buckets for query: {query}"
            )
        if any(len(v) > 1 for v in by_le.values()) and metric.aggregate != "sum":
            n = max(len(v) for v in by_le.values())
            raise _QueryFailed(f"{n} series per bucket; set aggregate: sum to add them up")
        buckets = tuple(Bucket(le=le, count=math.fsum(v)) for le, v in sorted(by_le.items()))
        if any(not math.isfinite(b.count) or b.count < 0 for b in buckets):
            raise _QueryFailed("non-finite or negative bucket count")
        if not math.isinf(buckets[-1].le):
            raise _QueryFailed("histogram has no +Inf bucket")
        total = buckets[-1].count
        if total <= 0:
            return Measurement.nodata(metric.name, subject, window, "no observations in the window")
        value = histogram_quantile(metric.quantile, buckets) * metric.scale
        if not math.isfinite(value):
            raise _QueryFailed(f"quantile {metric.quantile} is not finite")
        return Measurement(
            metric=metric.name,
            subject=subject,
            window=window,
            status=Status.OK,
            value=value,
            sample_size=round(total),
            buckets=buckets,
            counts={"count": total},
        )

    def _range(
        self, metric: MetricSpec, subject: Subject, window: Window, query: str
    ) -> Measurement:
        data = self._get(
            "/api/v1/query_range",
            {
                "query": query,
                "start": _timestamp(window.start),
                "end": _timestamp(window.end),
                "step": f"{metric.step.total_seconds():g}",
            },
        )
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise _QueryFailed(f"expected a matrix, got {data.get('resultType')!r}")
        points: dict[str, list[float]] = {}
        series_count = 0
        for item in data["result"]:
            _series_labels(item)
            values = item.get("values")
            if not isinstance(values, list):
                raise _QueryFailed("matrix series without values")
            series_count += 1
            for pair in values:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise _QueryFailed(f"malformed sample {pair!r}")
                points.setdefault(str(_number(pair[0])), []).append(_number(pair[1]))
        if not points:
            return Measurement.nodata(metric.name, subject, window, f"no series for query: {query}")
        if series_count > 1 and metric.aggregate is None:
            raise _QueryFailed(f"{series_count} series returned; set aggregate to combine them")
        samples = tuple(
            self._aggregate(v, metric.aggregate or "sum", metric.name) * metric.scale
            for _, v in sorted(points.items(), key=lambda kv: float(kv[0]))
        )
        if not all(math.isfinite(s) for s in samples):
            raise _QueryFailed("non-finite value in range result")
        n = len(samples)
        mean = statistics.fmean(samples)
        variance = statistics.variance(samples) if n > 1 else 0.0
        return Measurement(
            metric=metric.name,
            subject=subject,
            window=window,
            status=Status.OK,
            value=mean,
            sample_size=n,
            samples=samples,
            stats=SufficientStats(n=n, mean=mean, variance=variance),
        )

    # -- HTTP and result parsing --------------------------------------------------

    @staticmethod
    def _aggregate(values: Sequence[float], how: Aggregate | str | None, what: str) -> float:
        # Checked before combining: min/max would silently skip a NaN among numbers.
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise _QueryFailed(f"non-finite value {bad[0]!r} for {what}")
        if len(values) == 1:
            return values[0]
        if how is None:
            raise _QueryFailed(
                f"{len(values)} series returned for {what}; set aggregate to combine them"
            )
        return _AGGREGATORS[how](values)

    def _vector(self, query: str, at: datetime) -> list[float]:
        data = self._get("/api/v1/query", {"query": query, "time": _timestamp(at)})
        if data.get("resultType") == "scalar":
            return [_pair_value(data.get("result"), *self._evaluated(at))]
        return [value for _, value in self._series(data, at)]

    def _evaluated(self, at: datetime) -> tuple[float, float]:
        """When an instant query's samples must say they were evaluated, and how far off
        they may be (a scrape interval: generous for Prometheus-compatible servers that
        round it, far under the minutes or hours of a stale cache)."""
        return at.timestamp(), self._scrape_interval.total_seconds()

    def _series(self, data: Mapping[str, Any], at: datetime) -> list[tuple[dict[str, str], float]]:
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise _QueryFailed(f"expected a vector, got {data.get('resultType')!r}")
        out = []
        for item in data["result"]:
            labels = _series_labels(item)
            out.append((labels, _pair_value(item.get("value"), *self._evaluated(at))))
        return out

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        import httpx  # noqa: PLC0415 -- loaded by __init__ already: a dictionary lookup

        url = self._base_url + path
        try:
            response = self._client.get(
                url,
                params=dict(params),
                headers=self._headers,
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            raise _QueryFailed(f"timeout after {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise _QueryFailed(f"request failed: {type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _QueryFailed(f"HTTP {response.status_code}: response is not a JSON object")
        if response.status_code != 200 or body.get("status") != "success":
            detail = f"{body.get('errorType', 'error')}: {body.get('error', 'no detail')}"
            raise _QueryFailed(f"HTTP {response.status_code}: {detail}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise _QueryFailed("response has no data object")
        return data

    def close(self) -> None:
        """Close the underlying client (also an injected one)."""
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _with_sample_size(measurement: Measurement, size: int) -> Measurement:
    return replace(measurement, sample_size=size)
