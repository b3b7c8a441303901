"""PrometheusSource against httpx.MockTransport: every answer becomes a measurement."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitors.errors import ConfigError, OptionError
from monitors.kinds import SOURCE_KINDS, build_source
from monitors.measurement import Bucket, MetricSpec, Status, Subject, Window
from monitors.prometheus import PrometheusOptions, PrometheusSource, histogram_quantile
from monitors.testing import free_port

END = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WINDOW = Window(end=END, length=timedelta(minutes=5))
ARM = Subject(model="fraud", version="1.2.0", arm="treatment")
Handler = Callable[[httpx.Request], httpx.Response]


def vector(*items: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": labels, "value": [END.timestamp(), value]} for labels, value in items
            ],
        },
    }


def source(handler: Handler, **kwargs: Any) -> PrometheusSource:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    kwargs.setdefault("scrape_interval", timedelta(seconds=15))
    return PrometheusSource(base_url="http://prom:9090", client=client, **kwargs)


def answer(payload: object, status: int = 200) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=payload)

    return handler


def measure(handler: Handler, metric: MetricSpec, **kwargs: Any):  # type: ignore[no-untyped-def]
    return source(handler, **kwargs).measure(metric, ARM, WINDOW)


GAUGE = MetricSpec(name="error_rate", query='err_ratio{version="{{version}}"}')


class TestInstantQueries:
    def test_single_series_value(self) -> None:
        """One series gives an ok measurement with its value."""
        m = measure(answer(vector(({"version": "1.2.0"}, "0.25"))), GAUGE)
        assert m.status is Status.OK
        assert m.value == 0.25

    def test_query_and_time_are_sent(self) -> None:
        """The rendered template and the window end go to /api/v1/query."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=vector(({}, "1")))

        measure(handler, GAUGE)
        assert seen[0].url.path == "/api/v1/query"
        assert seen[0].url.params["query"] == 'err_ratio{version="1.2.0"}'
        assert float(seen[0].url.params["time"]) == END.timestamp()

    def test_scalar_result(self) -> None:
        """A scalar answer is a value like a one-series vector."""
        payload = {
            "status": "success",
            "data": {"resultType": "scalar", "result": [END.timestamp(), "3"]},
        }
        assert measure(answer(payload), GAUGE).value == 3.0

    def test_several_series_without_aggregate_is_an_error(self) -> None:
        """Two series and no aggregation rule: refuse to guess."""
        m = measure(answer(vector(({"pod": "a"}, "1"), ({"pod": "b"}, "2"))), GAUGE)
        assert m.status is Status.ERROR
        assert "set aggregate" in m.message

    @pytest.mark.parametrize(("how", "expected"), [("sum", 3.0), ("avg", 1.5), ("max", 2.0)])
    def test_several_series_with_aggregate(self, how: str, expected: float) -> None:
        """The metric's aggregate combines several series."""
        metric = MetricSpec(name="x", query="x", aggregate=how)  # type: ignore[arg-type]
        m = measure(answer(vector(({"pod": "a"}, "1"), ({"pod": "b"}, "2"))), metric)
        assert m.value == expected

    @pytest.mark.parametrize("how", ["min", "max", "sum", "avg"])
    def test_nan_among_several_series_is_an_error(self, how: str) -> None:
        """One NaN series is never skipped by the aggregation."""
        metric = MetricSpec(name="x", query="x", aggregate=how)  # type: ignore[arg-type]
        m = measure(answer(vector(({"pod": "a"}, "1"), ({"pod": "b"}, "NaN"))), metric)
        assert m.status is Status.ERROR
        assert "non-finite" in m.message

    def test_empty_result_is_nodata(self) -> None:
        """No series means nothing was observed, not zero."""
        m = measure(answer(vector()), GAUGE)
        assert m.status is Status.NODATA
        assert m.value is None

    @pytest.mark.parametrize("raw", ["NaN", "+Inf", "-Inf"])
    def test_non_finite_is_an_error(self, raw: str) -> None:
        """NaN and infinities never pass as a value."""
        m = measure(answer(vector(({}, raw))), GAUGE)
        assert m.status is Status.ERROR
        assert "non-finite" in m.message

    def test_counter_is_an_increase_over_the_window(self) -> None:
        """Counters are asked as increase(selector[window]); the value is the sample size."""
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.url.params["query"])
            return httpx.Response(200, json=vector(({}, "120.4")))

        metric = MetricSpec(
            name="requests", type="counter", query='requests_total{model="{{model}}"}'
        )
        m = measure(handler, metric)
        assert seen == ['increase(requests_total{model="fraud"}[300s])']
        assert m.value == pytest.approx(120.4)
        assert m.sample_size == 120

    def test_sample_query_sets_sample_size(self) -> None:
        """A gauge's sample size comes from its sample query when one is given."""

        def handler(request: httpx.Request) -> httpx.Response:
            query = request.url.params["query"]
            return httpx.Response(200, json=vector(({}, "812" if "total" in query else "0.01")))

        metric = MetricSpec(name="err", query="ratio", sample_query="increase(total[{{window}}])")
        m = measure(handler, metric)
        assert (m.value, m.sample_size) == (0.01, 812)


class TestFailures:
    def test_prometheus_error_body(self) -> None:
        """Prometheus' own error (bad PromQL) is reported with its type and text."""
        payload = {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
        m = measure(answer(payload, status=400), GAUGE)
        assert m.status is Status.ERROR
        assert "HTTP 400: bad_data: parse error at char 3" in m.message

    def test_http_500_with_html(self) -> None:
        """A proxy's HTML error page is an error measurement, not an exception."""
        m = measure(lambda r: httpx.Response(502, text="<html>bad gateway</html>"), GAUGE)
        assert m.status is Status.ERROR
        assert "HTTP 502" in m.message

    @pytest.mark.parametrize(
        "payload",
        [
            {"status": "success"},
            {"status": "success", "data": {"resultType": "string", "result": [0, "x"]}},
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": 1}]}},
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]},
            },
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]},
            },
            [1, 2, 3],
        ],
    )
    def test_malformed_payloads(self, payload: object) -> None:
        """Whatever shape the body has, the answer is an error measurement."""
        m = measure(answer(payload), GAUGE)
        assert m.status is Status.ERROR
        assert m.value is None

    @pytest.mark.parametrize("late_by", [-3600.0, -16.0, 600.0])
    def test_a_sample_from_another_time_is_stale(self, late_by: float) -> None:
        """An instant query's sample carries its evaluation time; one that is not the
        time asked for (give or take a scrape interval) came from a cache or proxy
        answering with an old result: an error measurement, never data."""
        payload = vector(({"version": "1.2.0"}, "0.25"))
        payload["data"]["result"][0]["value"][0] = END.timestamp() + late_by
        m = measure(answer(payload), GAUGE)
        assert m.status is Status.ERROR
        assert "stale sample" in m.message
        payload["data"]["result"][0]["value"][0] = END.timestamp() + 14  # within 15 s
        assert measure(answer(payload), GAUGE).status is Status.OK

    def test_timeout(self) -> None:
        """A timeout names the configured limit."""

        def handler(request: httpx.Request) -> httpx.Response:
            assert request.extensions["timeout"]["read"] == 0.5
            raise httpx.ReadTimeout("slow", request=request)

        m = measure(handler, GAUGE, timeout=0.5)
        assert m.status is Status.ERROR
        assert "timeout after 0.5s" in m.message

    def test_unreachable(self) -> None:
        """A refused connection is an error measurement."""

        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        m = measure(handler, GAUGE)
        assert m.status is Status.ERROR
        assert "ConnectError" in m.message

    def test_window_shorter_than_scrape_interval(self) -> None:
        """A window that cannot hold one scrape is refused before any request."""

        def handler(request: httpx.Request) -> httpx.Response:
            raise AssertionError("no request expected")

        m = source(handler, scrape_interval=timedelta(seconds=30)).measure(
            GAUGE, ARM, Window(end=END, length=timedelta(seconds=10))
        )
        assert m.status is Status.ERROR
        assert "shorter than the scrape interval 30s" in m.message

    def test_unknown_placeholder_is_an_error_measurement(self) -> None:
        """At query time a bad template is reported, not raised; validate() raises."""
        metric = MetricSpec(name="x", query='x{region="{{region}}"}')
        m = measure(answer(vector()), metric)
        assert m.status is Status.ERROR
        assert "unknown placeholder" in m.message
        with pytest.raises(ConfigError, match="unknown placeholder"):
            PrometheusSource.validate(metric)


class TestHistogram:
    BUCKETS = vector(
        ({"le": "0.05"}, "50"),
        ({"le": "0.1"}, "90"),
        ({"le": "0.25"}, "99"),
        ({"le": "+Inf"}, "100"),
    )
    METRIC = MetricSpec(
        name="latency_p95",
        type="histogram",
        quantile=0.95,
        scale=1000,
        query='latency_seconds_bucket{version="{{version}}"}',
    )

    def test_buckets_and_quantile(self) -> None:
        """Bucket counts travel with the measurement; the value is the p95 in ms."""
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.url.params["query"])
            return httpx.Response(200, json=self.BUCKETS)

        m = measure(handler, self.METRIC)
        assert seen == ['increase(latency_seconds_bucket{version="1.2.0"}[300s])']
        assert m.status is Status.OK
        assert m.sample_size == 100
        assert [b.le for b in m.buckets] == [0.05, 0.1, 0.25, math.inf]
        # rank 95 lies in (0.1, 0.25]: 0.1 + 0.15 * (95 - 90) / (99 - 90)
        assert m.value == pytest.approx((0.1 + 0.15 * 5 / 9) * 1000)

    def test_series_per_bucket_need_sum(self) -> None:
        """Two instances per bucket are summed only when the metric says so."""
        payload = vector(
            ({"le": "1", "pod": "a"}, "1"),
            ({"le": "1", "pod": "b"}, "2"),
            ({"le": "+Inf", "pod": "a"}, "1"),
            ({"le": "+Inf", "pod": "b"}, "2"),
        )
        assert measure(answer(payload), self.METRIC).status is Status.ERROR
        summed = MetricSpec(name="p", type="histogram", query="x", aggregate="sum")
        m = measure(answer(payload), summed)
        assert [b.count for b in m.buckets] == [3.0, 3.0]

    def test_no_observations_is_nodata(self) -> None:
        """Buckets that did not increase in the window mean no traffic."""
        payload = vector(({"le": "1"}, "0"), ({"le": "+Inf"}, "0"))
        assert measure(answer(payload), self.METRIC).status is Status.NODATA

    def test_missing_inf_bucket_is_an_error(self) -> None:
        """Without +Inf the total count is unknown."""
        assert measure(answer(vector(({"le": "1"}, "3"))), self.METRIC).status is Status.ERROR

    @pytest.mark.parametrize(
        ("q", "expected"),
        [(0.45, 0.5), (0.225, 0.25), (0.9, 1.0), (0.95, 1.0)],
    )
    def test_histogram_quantile(self, q: float, expected: float) -> None:
        """Interpolation matches PromQL: lower bound 0, +Inf rank returns the top bound."""
        buckets = [Bucket(1.0, 90.0), Bucket(math.inf, 100.0)]
        assert histogram_quantile(q, buckets) == pytest.approx(expected)


class TestRange:
    def test_matrix_points_become_samples(self) -> None:
        """A range query returns the points as samples with their mean as the value."""
        seen: dict[str, str] = {}

        def handler(request: httpx.Request) -> httpx.Response:
            seen.update(request.url.params)
            return httpx.Response(
                200,
                json={
                    "status": "success",
                    "data": {
                        "resultType": "matrix",
                        "result": [{"metric": {}, "values": [[1, "1"], [2, "2"], [3, "6"]]}],
                    },
                },
            )

        metric = MetricSpec(
            name="qps", type="range", query="rate(x[1m])", step=timedelta(seconds=30)
        )
        m = measure(handler, metric)
        assert m.samples == (1.0, 2.0, 6.0)
        assert m.value == 3.0
        assert m.stats is not None
        assert m.stats.variance == pytest.approx(7.0)
        assert seen["step"] == "30"
        assert float(seen["start"]) == WINDOW.start.timestamp()

    def test_malformed_matrix(self) -> None:
        """A point with a non-numeric timestamp is an error measurement."""
        payload = {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {}, "values": [[{"t": 1}, "1"]]}],
            },
        }
        metric = MetricSpec(name="x", type="range", query="x")
        m = measure(answer(payload), metric)
        assert m.status is Status.ERROR

    def test_several_series_per_step_need_aggregate(self) -> None:
        """Range results follow the same several-series rule as instant ones."""
        payload = {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [
                    {"metric": {"pod": "a"}, "values": [[1, "1"]]},
                    {"metric": {"pod": "b"}, "values": [[1, "2"]]},
                ],
            },
        }
        metric = MetricSpec(name="x", type="range", query="x")
        assert measure(answer(payload), metric).status is Status.ERROR


class TestAuthAndConfig:
    def test_bearer_token_header(self) -> None:
        """The token is sent on every request, also through an injected client."""
        headers: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            headers.append(request.headers.get("authorization", ""))
            return httpx.Response(200, json=vector(({}, "1")))

        measure(handler, GAUGE, bearer_token="s3cret")
        assert headers == ["Bearer s3cret"]

    def test_basic_auth_header(self) -> None:
        """Basic auth credentials are encoded by httpx."""
        headers: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            headers.append(request.headers.get("authorization", ""))
            return httpx.Response(200, json=vector(({}, "1")))

        measure(handler, GAUGE, basic_auth=("u", "p"))
        assert headers == ["Basic dTpw"]

    def test_from_config(self) -> None:
        """A config mapping builds a source; unknown keys and both auths are refused."""
        built = build_source(
            "prometheus",
            {"url": "http://p:9090", "timeout": 2, "scrape_interval": 1, "verify": False},
        )
        assert isinstance(built, PrometheusSource)
        assert SOURCE_KINDS["prometheus"].options is PrometheusOptions
        with pytest.raises(ConfigError, match="timout: Extra inputs are not permitted"):
            build_source("prometheus", {"url": "http://p", "timout": 2})
        with pytest.raises(ConfigError, match="url: Field required"):
            build_source("prometheus", {})
        with pytest.raises(ConfigError, match="not both"):
            PrometheusSource(base_url="http://p", bearer_token="t", basic_auth=("u", "p"))
        both = {"bearer_token": "t", "basic_auth": {"username": "u", "password": "p"}}
        with pytest.raises(ConfigError, match="not both"):
            build_source("prometheus", {"url": "http://p", **both})
        with pytest.raises(ConfigError, match="timeout: Input should be a valid number"):
            build_source("prometheus", {"url": "http://p", "timeout": "5"})
        with pytest.raises(ConfigError, match=r"verify: .*true, false or the path"):
            build_source("prometheus", {"url": "http://p", "verify": 3})

    def test_unreadable_tls_files_are_option_errors(self, tmp_path: Path) -> None:
        """A CA bundle or client certificate that cannot be read names its key; the
        source is not built."""
        options = PrometheusOptions(url="http://p", verify=str(tmp_path / "ca.pem"))
        (problem,) = options.environment_problems()
        assert str(problem) == f"verify: {tmp_path / 'ca.pem'} is not a readable file"
        with pytest.raises(OptionError, match=r"verify: .*ca\.pem is not a readable file"):
            build_source("prometheus", options)

    def test_unknown_kind(self) -> None:
        """An unknown source kind lists the known ones."""
        with pytest.raises(ConfigError, match=r"kind 'graphite'.*ingest.*prometheus"):
            build_source("graphite", {})

    def test_payload_is_json_serialisable(self) -> None:
        """Guard for the helpers above: the fake payloads are plain JSON."""
        assert json.loads(json.dumps(vector(({}, "1"))))["status"] == "success"


def test_unreachable_prometheus_on_a_real_port() -> None:
    """Nothing listens on the port: a real connection error becomes an error measurement."""
    with PrometheusSource(
        base_url=f"http://127.0.0.1:{free_port()}", timeout=2, scrape_interval=timedelta(seconds=1)
    ) as prom:
        m = prom.measure(GAUGE, ARM, WINDOW)
    assert m.status is Status.ERROR
    assert "ConnectError" in m.message
