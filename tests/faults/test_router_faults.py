"""A router that lies, is partitioned or hangs, mid-canary, then heals; then every invariant.

Serving here is a real HTTP receiver of the ``webhook`` router (this test's own
server, checking signatures like a real one) that writes what it takes into the route
table the simulated workload follows. On command it lies (answers 200 and keeps its
old route), is gone (its port closed: connection refused) or hangs (reads the request
and never answers, so each push times out). In every mode:

- ``/healthz`` answers in under a second;
- ``/readyz`` is 503 naming the router, since a push is confirmed by reading the route
  back, not by the router's word;
- the canary holds at its step: no decision is confirmed that serving did not take,
  so the database never says more traffic went to the candidate than really did.

Healed, the rollout finishes (the better candidate is promoted), the decisions follow
the steps once each and the invariants hold, the router's route read from serving.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import yaml

from controller.adapters.routers.webhook import SIGNATURE_HEADER, verify_signature
from controller.demo import demo_config
from monitors.testing import free_port, wait_until
from serving.route import Route, read_table
from tests.controller.stack import TERMINAL, Stack, fast_canary
from tests.invariants import decisions_follow_policy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

SECRET = "router-faults-shared-secret"
STEPS = [20.0, 40.0, 60.0, 80.0, 100.0]


class Serving(ThreadingHTTPServer):
    """The receiver: ``mode`` says what it does with a route it is sent."""

    daemon_threads = True

    def __init__(self, port: int, table: Path) -> None:
        self.mode = "honest"
        self.table = table
        self.posts = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Receiver)

    def held(self, model: str) -> Route | None:
        return read_table(self.table).get(model)

    def take(self, route: Route) -> None:
        with self.lock:
            held = self.held(route.model)
            if held is not None and held.revision >= route.revision:
                return  # a replay: receivers keep the newest
            try:
                models = json.loads(self.table.read_text(encoding="utf-8"))["models"]
            except FileNotFoundError:
                models = {}
            models[route.model] = route.to_dict()
            scratch = self.table.with_suffix(".tmp")
            scratch.write_text(json.dumps({"models": models}), encoding="utf-8")
            os.replace(scratch, self.table)


class Receiver(BaseHTTPRequestHandler):
    server: Serving

    def _signed(self, body: bytes) -> bool:
        header = self.headers.get(SIGNATURE_HEADER)
        return verify_signature(SECRET, header, body, now=time.time())

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hung(self) -> bool:
        """In ``hang`` mode, keep the request open until the mode changes, then drop it
        (the daemon gave up on it long before)."""
        hung = False
        while self.server.mode == "hang":
            hung = True
            time.sleep(0.05)
        return hung

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self._hung():
            return
        if not self._signed(body):
            self._answer(401)
            return
        self.server.posts += 1
        if self.server.mode == "honest":
            self.server.take(Route.from_dict(json.loads(body)))
        self._answer(200)  # a liar says yes all the same

    def do_GET(self) -> None:
        if self._hung():
            return
        if not self._signed(b""):
            self._answer(401)
            return
        model = parse_qs(urlparse(self.path).query).get("model", [""])[0]
        held = self.server.held(model)
        if held is None:
            self._answer(404)
            return
        self._answer(200, json.dumps(held.to_dict()).encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what matters from the daemon."""


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Serving]:
    server = Serving(free_port(), tmp_path / "routes.json")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.mode = "honest"  # releases hung requests
    server.shutdown()
    server.server_close()


def _stack(tmp: Path, serving: Serving) -> Stack:
    port = free_port()
    data = demo_config(tmp, port)
    receiver = f"http://127.0.0.1:{serving.server_address[1]}/routes"
    data["routers"] = {
        "serving": {
            "kind": "webhook",
            "options": {"url": receiver, "read_url": receiver, "secret": SECRET,
                        "attempts": 2, "backoff_s": 0.1, "max_backoff_s": 1, "timeout_s": 1},
        }
    }  # fmt: skip
    data["models"]["fraud"] = {**fast_canary(STEPS), "router": "serving"}
    config = tmp / "daemon.yaml"
    config.write_text(yaml.safe_dump(data))
    return Stack(tmp, f"http://127.0.0.1:{port}", config)


def _healthz_fast(stack: Stack) -> None:
    started = time.monotonic()
    assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0


def _unready_naming_router(stack: Stack) -> bool:
    answer = httpx.get(f"{stack.url}/readyz", timeout=5)
    return answer.status_code == 503 and "serving" in answer.json()["router_errors"]


def _holds_at_step(stack: Stack, serving: Serving, seconds: float) -> None:
    """For ``seconds``: the canary keeps its confirmed weight, which is what serving
    holds, and the daemon stays healthy and says it is not ready."""
    rollout = stack.rollout("v1.1.0")
    assert rollout is not None
    weight = rollout["weight"]
    held = serving.held("fraud")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _healthz_fast(stack)
        now = stack.rollout("v1.1.0")
        assert now is not None
        assert now["weight"] == weight, now
        assert now["phase"] not in TERMINAL, now
        assert serving.held("fraud") == held
        time.sleep(0.3)
    assert _unready_naming_router(stack)
    assert held is not None
    assert held.weight_of("v1.1.0") == weight


@pytest.mark.timeout(300)
def test_a_lying_partitioned_and_hung_router_holds_the_canary_until_it_heals(
    tmp_path: Path, serving: Serving
) -> None:
    stack = _stack(tmp_path, serving)
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: (stack.rollout("v1.1.0") or {}).get("weight", 0) >= 20,
                          timeout=60), stack.log_tail()  # fmt: skip

        serving.mode = "lie"
        assert wait_until(lambda: _unready_naming_router(stack), timeout=20), stack.log_tail()
        _holds_at_step(stack, serving, 4)

        serving.mode = "hang"
        _holds_at_step(stack, serving, 4)

        serving.mode = "honest"
        port = serving.server_address[1]
        serving.shutdown()  # partitioned: nothing listens on the port
        serving.server_close()
        _holds_at_step(stack, serving, 4)
        healed = Serving(port, serving.table)
        threading.Thread(target=healed.serve_forever, daemon=True).start()
        try:
            assert wait_until(lambda: (stack.rollout("v1.1.0") or {}).get("phase") in TERMINAL,
                              timeout=120), stack.log_tail()  # fmt: skip
            assert wait_until(lambda: not _unready_naming_router(stack), timeout=20)
            rollout = stack.rollout("v1.1.0")
            assert rollout is not None
            assert rollout["phase"] == "promoted", rollout
            explained = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=10_000)
            assert decisions_follow_policy(rollout["id"], explained["decisions"], STEPS) == []
            held = healed.held("fraud")
            assert held is not None
            assert held.weight_of("v1.1.0") == 100
        finally:
            healed.shutdown()
            healed.server_close()
    finally:
        stack.stop()
    stack.check_invariants()
