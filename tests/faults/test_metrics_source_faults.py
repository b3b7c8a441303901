"""A metrics source that misbehaves on command: 500s, timeouts, NaN, no data, stale
samples (an old result, as a broken cache or proxy answers), a hang.

The daemon (a real subprocess) judges a canary on a Prometheus source whose server is
a real local HTTP server speaking Prometheus's query API, switched by the test between
answering well and each way of failing. While it fails, nothing is promoted or moved
on: every look holds with ``missing_data`` (``on_missing_data: hold``), the daemon
stays responsive (``/healthz`` within a second while the source hangs), and no
failure is taken for evidence. Once it answers again the candidate, better on the
numbers it serves, is promoted. Then every invariant holds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import yaml

from monitors.testing import free_port, wait_until
from tests.controller.stack import TERMINAL, Stack, build_stack

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

RATES = {"v1.0.0": 0.02, "v1.1.0": 0.01}  # the candidate errs half as often
UNITS = 20_000  # per arm and window: plenty of evidence once the numbers come


class Prometheus(BaseHTTPRequestHandler):
    """``/api/v1/query`` answering per ``mode``: ok, error (500), timeout and hang
    (sleep past the client's timeout), nan (a NaN sample), empty (no series), stale (a
    sample evaluated an hour before the time asked for)."""

    mode: ClassVar[str] = "ok"
    queries: ClassVar[int] = 0

    def do_GET(self) -> None:
        type(self).queries += 1
        params = parse_qs(urlparse(self.path).query)
        query = params.get("query", [""])[0]
        at = float(params.get("time", [str(time.time())])[0])
        mode = type(self).mode
        if mode == "error":
            self._send(500, {"status": "error", "errorType": "internal", "error": "boom"})
            return
        if mode in ("timeout", "hang"):
            time.sleep(3 if mode == "timeout" else 30)
        version = re.search(r'version="([^"]+)"', query)
        rate = RATES.get(version.group(1) if version else "", 0.0)
        value = "NaN" if mode == "nan" else str(rate if "/" in query else UNITS)
        stamp = at - 3600 if mode == "stale" else at
        result = [] if mode == "empty" else [{"metric": {}, "value": [stamp, value]}]
        self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (its timeout): as a real server would see it

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    Prometheus.mode, Prometheus.queries = "error", 0
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Prometheus)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _stack(tmp_path: Path, url: str) -> Stack:
    stack = build_stack(tmp_path)
    data = yaml.safe_load(stack.config.read_text())
    options = {"url": url, "timeout": 1, "scrape_interval": 0.5}
    data["sources"] = {"prom": {"kind": "prometheus", "options": options}}
    count = 'sum(increase(total{model="{{model}}",version="{{version}}"}[{{window}}]))'
    rate = count.replace("total", "errors") + " / " + count
    data["models"]["fraud"].update(
        strategy={"kind": "canary", "steps": [50, 100], "step_duration": 1}, settle=0,
        min_samples=100, on_missing_data="hold", max_duration=600,
        analysis={"metrics": [{"name": "error_rate", "source": "prom", "query": rate,
                               "sample_query": count, "kind": "proportion",
                               "role": "primary", "direction": "lower"}],
                  "units": {"source": "prom", "query": count}},
        triggers=[],
    )  # fmt: skip
    stack.config.write_text(yaml.safe_dump(data))
    return stack


def test_a_failing_source_holds_and_never_promotes(tmp_path: Path, prometheus: str) -> None:
    stack = _stack(tmp_path, prometheus)
    stack.register("1.0.0", "production")
    stack.start_daemon()
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: stack.rollout("v1.1.0") is not None, timeout=30)
        for mode in ("error", "timeout", "nan", "empty", "stale", "hang"):
            Prometheus.mode = mode
            asked = Prometheus.queries
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the daemon keeps answering meanwhile
                started = time.monotonic()
                assert httpx.get(f"{stack.url}/healthz", timeout=2).status_code == 200
                assert time.monotonic() - started < 1.0, mode
                time.sleep(0.5)
            assert Prometheus.queries > asked, f"{mode}: the daemon stopped looking"
            rollout = stack.rollout("v1.1.0")
            assert rollout is not None
            assert rollout["phase"] not in TERMINAL, (mode, rollout)
            assert rollout["weight"] == 50.0, (mode, rollout)  # held at the first step
        decisions = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=10_000)["decisions"]
        held = [d for d in decisions if d["numbers"].get("cause") == "missing_data"]
        assert held, "no look said the data was missing"
        assert not [d for d in decisions if d["action"] == "promote"]
        Prometheus.mode = "ok"  # the source recovers: the better candidate wins
        done = stack.wait_finished("v1.1.0", timeout=120)
        assert done["phase"] == "promoted", done
    finally:
        Prometheus.mode = "ok"
        stack.stop()

    stack.check_invariants()
