"""Against real servers: Prometheus scraping the simulated exporter, and Alertmanager
delivering webhooks to a sink in this process. Marked ``integration``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from monitors.alerts import AlertIntake, AlertRule
from monitors.measurement import MetricSpec, Status, Subject, Window
from monitors.prometheus import PrometheusSource, histogram_quantile
from monitors.simulate import LATENCY_BUCKETS, simulate
from monitors.testing import ServerProcess, wait_until
from tests.monitors.monitors_support import MODEL, ScrapedWorkload, WebhookSink

pytestmark = pytest.mark.integration

SELECTOR = 'model="{{model}}",version="{{version}}"'
REQUESTS = MetricSpec(name="requests", type="counter", query=f"predictions_total{{{SELECTOR}}}")
ERRORS = MetricSpec(name="errors", type="counter", query=f"prediction_errors_total{{{SELECTOR}}}")
P95 = MetricSpec(
    name="latency_p95",
    type="histogram",
    quantile=0.95,
    scale=1000,
    query=f"prediction_latency_seconds_bucket{{{SELECTOR}}}",
)


@pytest.fixture
def prom(scraped: ScrapedWorkload) -> Iterator[PrometheusSource]:
    with PrometheusSource(
        base_url=scraped.prometheus.url, timeout=5, scrape_interval=timedelta(seconds=1)
    ) as opened:
        yield opened


def aligned_window(scraped: ScrapedWorkload) -> Window:
    """From just before the workload began to the last scrape: no extrapolation."""
    start = scraped.started - timedelta(seconds=3)  # holds zero samples, scrapes are 1s apart
    return Window(end=scraped.last_scrape, length=scraped.last_scrape - start)


class TestPrometheusSource:
    @pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
    def test_counters_equal_the_workload(
        self, scraped: ScrapedWorkload, prom: PrometheusSource, version: str
    ) -> None:
        """Request and error increases over the window are what the workload produced."""
        expected = simulate(scraped.workload, scraped.requests)[version]
        subject = Subject(model=MODEL, version=version)
        requests = prom.measure(REQUESTS, subject, aligned_window(scraped))
        errors = prom.measure(ERRORS, subject, aligned_window(scraped))
        assert requests.status is Status.OK, requests.message
        assert requests.value == pytest.approx(expected.requests)
        assert errors.value == pytest.approx(expected.errors)
        assert expected.errors > 0

    @pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
    def test_histogram_buckets_per_version(
        self, scraped: ScrapedWorkload, prom: PrometheusSource, version: str
    ) -> None:
        """Bucket counts equal the workload's; p95 agrees with the raw latencies to a bucket."""
        expected = simulate(scraped.workload, scraped.requests)[version]
        m = prom.measure(P95, Subject(model=MODEL, version=version), aligned_window(scraped))
        assert m.status is Status.OK, m.message
        assert [b.le for b in m.buckets] == list(LATENCY_BUCKETS)
        assert [b.count for b in m.buckets] == pytest.approx(expected.buckets)
        assert m.sample_size == scraped.requests
        assert m.value == pytest.approx(histogram_quantile(0.95, m.buckets) * 1000)
        stream = scraped.workload.streams()[
            scraped.workload.versions.index(
                next(p for p in scraped.workload.versions if p.version == version)
            )
        ]
        true_p95 = float(np.quantile(stream.draw(scraped.requests)[0], 0.95))
        upper = next(b for b in LATENCY_BUCKETS if b >= true_p95)
        lower = max([0.0, *[b for b in LATENCY_BUCKETS if b < true_p95]])
        assert lower * 1000 <= m.value <= upper * 1000

    def test_treatment_is_slower_and_fails_more(
        self, scraped: ScrapedWorkload, prom: PrometheusSource
    ) -> None:
        """The two arms differ the way the workload was configured."""
        window = aligned_window(scraped)
        p95 = {
            v: prom.measure(P95, Subject(model=MODEL, version=v), window).value
            for v in ("1.0.0", "1.1.0")
        }
        assert p95["1.1.0"] > p95["1.0.0"]  # type: ignore[operator]

    def test_window_ending_now_is_within_scrape_granularity(
        self, scraped: ScrapedWorkload, prom: PrometheusSource
    ) -> None:
        """Unaligned to scrapes, increase() extrapolates by at most about one interval:
        Prometheus extends the increase from the last sample towards the window's end by
        under 1.1 average sample intervals (and not back from a first sample of zero), so
        the bound follows from the samples in the window, which a loaded machine may
        scrape late, not from the nominal interval."""
        end = datetime.now(UTC)
        window = Window(end=end, length=end - scraped.started + timedelta(seconds=3))
        selector = SELECTOR.replace("{{model}}", MODEL).replace("{{version}}", "1.0.0")
        count = f"count_over_time(predictions_total{{{selector}}}[{window.promql_duration()}])"
        at = f"{end.timestamp():.3f}"
        # Counted first: a scrape ingested late, between the two queries, can only add a
        # sample to what the measurement sees, and more samples extrapolate less, so the
        # bound from this count still holds.
        answer = httpx.get(f"{scraped.prometheus.url}/api/v1/query",
                           params={"query": count, "time": at}).json()  # fmt: skip
        samples = int(float(answer["data"]["result"][0]["value"][1]))
        m = prom.measure(REQUESTS, Subject(model=MODEL, version="1.0.0"), window)
        assert m.value is not None, m.message
        assert samples >= 3, answer
        assert scraped.requests <= m.value <= scraped.requests * (1 + 1.1 / (samples - 1)) + 1e-6

    def test_gauge_range_and_several_series(
        self, scraped: ScrapedWorkload, prom: PrometheusSource
    ) -> None:
        """Instant gauges, range queries and the several-series rule on real answers."""
        window = aligned_window(scraped)
        subject = Subject(model=MODEL, version="1.0.0")
        gauge = MetricSpec(name="total", query=f"predictions_total{{{SELECTOR}}}")
        assert prom.measure(gauge, subject, window).value == scraped.requests
        both = MetricSpec(name="all", query='predictions_total{model="{{model}}"}')
        several = prom.measure(both, subject, window)
        assert several.status is Status.ERROR
        assert "2 series" in several.message
        summed = MetricSpec(
            name="all", query='predictions_total{model="{{model}}"}', aggregate="sum"
        )
        assert prom.measure(summed, subject, window).value == 2 * scraped.requests
        ranged = MetricSpec(
            name="r",
            type="range",
            query=f"predictions_total{{{SELECTOR}}}",
            step=timedelta(seconds=1),
        )
        series = prom.measure(ranged, subject, window)
        assert series.samples[0] == 0.0
        assert series.samples[-1] == scraped.requests

    def test_bad_promql_and_short_window(
        self, scraped: ScrapedWorkload, prom: PrometheusSource
    ) -> None:
        """Prometheus' parse error and a sub-scrape window become error measurements."""
        subject = Subject(model=MODEL, version="1.0.0")
        bad = prom.measure(MetricSpec(name="bad", query="sum(("), subject, aligned_window(scraped))
        assert bad.status is Status.ERROR
        assert "bad_data" in bad.message
        short = prom.measure(
            REQUESTS, subject, Window(end=scraped.last_scrape, length=timedelta(milliseconds=500))
        )
        assert short.status is Status.ERROR
        assert "shorter than the scrape interval" in short.message

    def test_no_traffic_yet_is_nodata(
        self, scraped: ScrapedWorkload, prom: PrometheusSource
    ) -> None:
        """Before the workload started, the histogram had no observations: nodata."""
        end = scraped.started - timedelta(milliseconds=100)
        m = prom.measure(
            P95, Subject(model=MODEL, version="1.0.0"), Window(end=end, length=timedelta(seconds=2))
        )
        assert m.status is Status.NODATA
        assert not math.isfinite(m.value or math.nan)


RULES = [
    AlertRule.from_config(
        {
            "name": "page",
            "match": ["severity=critical"],
            "action": "rollback",
            "version_label": "version",
        }
    )
]


def _post_alert(server: ServerProcess, starts: datetime, ends: datetime | None = None) -> None:
    alert: dict[str, object] = {
        "labels": {
            "alertname": "CanaryErrors",
            "model": MODEL,
            "version": "1.1.0",
            "severity": "critical",
        },
        "annotations": {"summary": "error rate above 5%"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "generatorURL": "http://127.0.0.1/graph",
    }
    if ends is not None:
        alert["endsAt"] = ends.isoformat().replace("+00:00", "Z")
    response = httpx.post(f"{server.url}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def test_alertmanager_webhook_maps_to_one_action(
    alertmanager: tuple[ServerProcess, WebhookSink],
) -> None:
    """A real Alertmanager's webhooks, repeated and re-posted, yield one rollback."""
    server, sink = alertmanager
    intake = AlertIntake(RULES)
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    _post_alert(server, starts)
    assert wait_until(lambda: len(sink.received()) >= 1, timeout=15), "no webhook arrived"
    _post_alert(server, starts)  # the same alert again, as a second Prometheus would
    # repeat_interval is 2s: wait for Alertmanager to notify again about the same alert
    assert wait_until(lambda: len(sink.received()) >= 2, timeout=15), "no repeat arrived"
    actions = []
    duplicates = 0
    for body in sink.received():
        result = intake.handle(body, now=datetime.now(UTC))
        actions.extend(result.actions)
        duplicates += result.duplicates
    assert len(actions) == 1
    (action,) = actions
    assert (action.action, action.model, action.version) == ("rollback", MODEL, "1.1.0")
    assert action.starts_at == starts
    assert duplicates >= 1

    seen = len(sink.received())
    _post_alert(server, starts, ends=datetime.now(UTC) - timedelta(seconds=1))

    def resolved_arrived() -> bool:
        return any(b'"resolved"' in body for body in sink.received()[seen:])

    assert wait_until(resolved_arrived, timeout=15), "no resolved webhook arrived"
    results = [intake.handle(b, now=datetime.now(UTC)) for b in sink.received()[seen:]]
    assert all(r.actions == () for r in results)
    assert sum(r.resolved for r in results) >= 1
