"""Shared pieces of the monitors integration fixtures (imported by conftest and tests)."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from monitors.simulate import Workload
from monitors.testing import ServerProcess

MODEL = "fraud"
VERSIONS = ("1.0.0:err=0.02:lat=40", "1.1.0:err=0.08:lat=90")
SEED = 11
REQUESTS = 600


def require_binary(name: str) -> None:
    """Skip (or, under CI=true, fail) when ``name`` is not installed."""
    if shutil.which(name) is None:
        reason = (
            f"{name} is not installed: apt-get install prometheus "
            "prometheus-alertmanager (tests/services.sh does it as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)


@dataclass
class ScrapedWorkload:
    """A seeded workload, the Prometheus that scraped it, and when it ran."""

    workload: Workload
    requests: int
    prometheus: ServerProcess
    started: datetime  # just before the exporter began serving
    last_scrape: datetime  # a scrape after every request had been served


def instant(url: str, query: str) -> list[dict[str, object]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()
    result: list[dict[str, object]] = body["data"]["result"]
    return result


class WebhookSink:
    """A stdlib HTTP server on a free loopback port that records POSTed bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with sink._lock:
                    sink.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
