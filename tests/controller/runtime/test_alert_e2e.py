"""End to end: Prometheus fires, Alertmanager calls the daemon, production rolls back.

Real processes throughout: the simulated workload follows the routing file and
exports its requests, Prometheus scrapes it and evaluates an error-rate alerting
rule every second, Alertmanager routes the alert to the daemon's ``/v1/alerts``
with the ``alerts`` token, and the daemon puts the previous production version back.
Every wait polls with a generous timeout; nothing asserts on speed.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitors.testing import (
    ServerProcess,
    free_port,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from serving.route import read_table

from ..daemon_proc import ALERT_NAME, DaemonProcess, alert_stack, register

pytestmark = [pytest.mark.slow, pytest.mark.integration]

_ERRORS = "sum by (model, version) (rate(prediction_errors_total[5s]))"
_TOTAL = "sum by (model, version) (rate(predictions_total[5s]))"
RULE = {
    "alert": ALERT_NAME,
    "expr": f"{_ERRORS} / {_TOTAL} > 0.2",
    "for": "2s",
    "labels": {"severity": "page"},
    "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }} fails too often"},
}


def _workload(home: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    """Serving that follows the routing file; v1.1.0 fails half of its requests."""
    with (home / "workload.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.workload", "--model", "fraud",
             "--routes", str(home / "routes.json"), "--rate", "300",
             "--metrics-port", str(metrics_port),
             "--version", "v1.0.0:err=0.01", "--version", "v1.1.0:err=0.5"],
            stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
    assert process.stdout is not None
    assert select.select([process.stdout], [], [], 30)[0], "the workload did not start"
    assert "listening" in json.loads(process.stdout.readline())
    return process


def _routed(home: Path) -> list[tuple[str, int]]:
    return [(b.version, b.weight) for b in read_table(home / "routes.json")["fraud"].backends]


def _webhooks_sent(alertmanager: ServerProcess) -> float:
    """Alertmanager's own count of webhook notifications it delivered."""
    text = httpx.get(f"{alertmanager.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("alertmanager_notifications_total{") and 'integration="webhook"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[DaemonProcess, ServerProcess, ServerProcess]]:
    daemon = alert_stack(tmp_path)
    metrics_port = free_port()
    started: list[ServerProcess] = []
    workload = None
    try:
        daemon.start()
        workload = _workload(tmp_path, metrics_port)
        alertmanager = start_alertmanager(
            tmp_path / "am",
            webhook_url=f"{daemon.url}/v1/alerts",
            group_wait="1s",
            group_interval="1s",
            bearer_token=daemon.alert_token,
        )
        started.append(alertmanager)
        prometheus = start_prometheus(
            tmp_path / "prom",
            targets=[f"127.0.0.1:{metrics_port}"],
            rules=[RULE],
            alertmanagers=[alertmanager.url.removeprefix("http://")],
        )
        started.append(prometheus)
        yield daemon, prometheus, alertmanager
    finally:
        if workload is not None:
            workload.send_signal(signal.SIGTERM)
            workload.wait(timeout=15)
            if workload.stdout is not None:
                workload.stdout.close()
        for server in reversed(started):
            server.stop()
        daemon.stop()


class TestAlertDrivenRollback:
    def test_bad_production_version_is_rolled_back(
        self, tmp_path: Path, live: tuple[DaemonProcess, ServerProcess, ServerProcess]
    ) -> None:
        """A forced hotfix v1.1.0 fails half its requests: the rule fires, Alertmanager
        posts it with the alerts token, and the daemon puts v1.0.0 back in the registry
        and the routing file; the resolved alert that follows undoes nothing."""
        daemon, prometheus, alertmanager = live
        assert wait_until(lambda: _routed(tmp_path) == [("v1.0.0", 100)], timeout=30)
        unauthenticated = httpx.post(f"{daemon.url}/v1/alerts", json={}, timeout=5)
        assert unauthenticated.status_code == 401

        register(tmp_path, "1.1.0", "production")  # the bad version goes out
        assert wait_until(lambda: _routed(tmp_path) == [("v1.1.0", 100)], timeout=30), (
            daemon.log_tail()
        )
        revision = read_table(tmp_path / "routes.json")["fraud"].revision

        rolled_back = wait_until(lambda: daemon.production() == "v1.0.0", timeout=120, interval=0.5)
        assert rolled_back, (daemon.log_tail(), prometheus.log_tail(), alertmanager.log_tail())
        route = read_table(tmp_path / "routes.json")["fraud"]
        assert [(b.version, b.weight) for b in route.backends] == [("v1.0.0", 100)]
        assert route.revision > revision
        history = daemon.get("/v1/models/fraud/history").json()
        restored = [t for t in history if t["kind"] == "rollback" and t["to_stage"] == "production"]
        assert len(restored) == 1, history
        assert restored[-1]["version"] == "v1.0.0"
        assert ALERT_NAME in restored[-1]["reason"]
        assert restored[-1]["actor"] == "alert:error-rate"
        v110 = daemon.get("/v1/models/fraud/versions/1.1.0").json()
        assert v110["stage"] == "archived"
        metrics = httpx.get(f"{daemon.url}/metrics", timeout=5).text
        assert 'modelreg_alert_action_seconds_count{action="rollback"} 1.0' in metrics

        # v1.1.0 gets no traffic any more: the alert resolves and Alertmanager says so
        # (a second webhook); the daemon acts on nothing and production stays v1.0.0.
        assert wait_until(lambda: _webhooks_sent(alertmanager) >= 2, timeout=90, interval=0.5), (
            alertmanager.log_tail()
        )
        assert daemon.production() == "v1.0.0"
        after = daemon.get("/v1/models/fraud/history").json()
        assert len(after) == len(history)
        metrics = httpx.get(f"{daemon.url}/metrics", timeout=5).text
        assert 'modelreg_alert_action_seconds_count{action="rollback"} 1.0' in metrics

    def test_bad_canary_is_rolled_back(
        self, tmp_path: Path, live: tuple[DaemonProcess, ServerProcess, ServerProcess]
    ) -> None:
        """v1.1.0 enters staging and its canary takes a share of the traffic (the ingest
        source gets no data, so the analysis holds); the alert on v1.1.0's error rate
        rolls the rollout back: all traffic to v1.0.0, the candidate archived."""
        daemon, prometheus, alertmanager = live
        assert wait_until(lambda: _routed(tmp_path) == [("v1.0.0", 100)], timeout=30)
        register(tmp_path, "1.1.0", "staging")

        def canary() -> bool:
            return dict(_routed(tmp_path)).get("v1.1.0", 0) > 0

        assert wait_until(canary, timeout=30), daemon.log_tail()
        rows: list[dict[str, str]] = []

        def finished() -> bool:
            rows[:] = daemon.get("/v1/rollouts", model="fraud").json()
            return bool(rows) and rows[0]["phase"] in ("rolled_back", "aborted", "promoted")

        assert wait_until(finished, timeout=120, interval=0.5), (
            daemon.log_tail(), prometheus.log_tail(), alertmanager.log_tail()
        )  # fmt: skip
        assert rows[0]["phase"] == "rolled_back"
        assert ALERT_NAME in rows[0]["reason"]
        assert _routed(tmp_path) == [("v1.0.0", 100)]
        assert daemon.production() == "v1.0.0"
        assert daemon.get("/v1/models/fraud/versions/1.1.0").json()["stage"] == "archived"
