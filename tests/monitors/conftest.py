"""Fixtures for monitors tests: real Prometheus, Alertmanager and the simulated exporter.

Servers run on free loopback ports with configs generated in pytest's temporary
directories and are stopped in the fixture teardown. A missing binary skips the
integration tests with the reason, except under CI=true, where it fails them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from monitors.simulate import Workload, parse_version
from monitors.testing import (
    ALERTMANAGER_BINARY,
    PROMETHEUS_BINARY,
    ServerProcess,
    start_alertmanager,
    start_exporter,
    start_prometheus,
    wait_until,
)
from tests.monitors.monitors_support import (
    MODEL,
    REQUESTS,
    SEED,
    VERSIONS,
    ScrapedWorkload,
    WebhookSink,
    instant,
    require_binary,
)


@pytest.fixture(scope="session")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrapedWorkload]:
    """Exporter held at zero, Prometheus scraping it every second, then the workload
    served at once; yields when Prometheus has scraped the final counts."""
    require_binary(PROMETHEUS_BINARY)
    workdir = tmp_path_factory.mktemp("prometheus")
    exporter = start_exporter(
        workdir / "exporter",
        model=MODEL,
        versions=VERSIONS,
        seed=SEED,
        rate=5000,
        requests=REQUESTS,
        hold=True,
    )
    prometheus: ServerProcess | None = None
    try:
        target = exporter.url.removeprefix("http://")
        prometheus = start_prometheus(workdir / "prom", targets=[target], scrape_interval="1s")
        url = prometheus.url
        # Two scrapes at zero: the counters' history starts at 0 inside any window.
        assert wait_until(
            lambda: (
                float(instant(url, "min(count_over_time(predictions_total[1m]))")[0]["value"][1])
                >= 2
            ),  # type: ignore[index]
            timeout=20,
        ), prometheus.log_tail()
        started = datetime.now(UTC)
        exporter.process.send_signal(signal.SIGUSR1)
        assert wait_until(
            lambda: (
                float(instant(url, "min(predictions_total)")[0]["value"][1])  # type: ignore[index]
                == REQUESTS
            ),
            timeout=20,
        ), prometheus.log_tail()
        # One more scrape interval, so that a 1s-step range query ends on the final counts.
        time.sleep(2.2)
        stamp = instant(url, 'max(timestamp(predictions_total{model="fraud"}))')
        last = datetime.fromtimestamp(float(stamp[0]["value"][1]), UTC)  # type: ignore[index]
        workload = Workload(
            model=MODEL, seed=SEED, versions=tuple(parse_version(v) for v in VERSIONS)
        )
        yield ScrapedWorkload(
            workload=workload,
            requests=REQUESTS,
            prometheus=prometheus,
            started=started,
            last_scrape=last,
        )
    finally:
        if prometheus is not None:
            prometheus.stop()
        exporter.stop()


@pytest.fixture(scope="session")
def alertmanager(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, WebhookSink]]:
    """Alertmanager whose only receiver is a webhook sink in this process."""
    require_binary(ALERTMANAGER_BINARY)
    sink = WebhookSink()
    try:
        server = start_alertmanager(
            tmp_path_factory.mktemp("alertmanager"),
            webhook_url=sink.url,
            group_wait="1s",
            group_interval="1s",
            repeat_interval="2s",
        )
        try:
            yield server, sink
        finally:
            server.stop()
    finally:
        sink.close()
