"""The watcher pass keeps the watchdog's heartbeat fresh while it moves from model to
model, however slow each router call is, and lets it go stale while one call is stuck.
Real SQLite, a real webhook receiver over HTTP; the heartbeat's monotonic clock is a
hand clock that the receiver advances as if each request took its time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.webhook import WebhookRouter
from controller.config import parse_config
from controller.runtime.heartbeat import Heartbeat
from controller.runtime.scheduler import RolloutScheduler
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry
from tests.clock import Clock

from ..shell.test_router_health import policy
from ..support import register

SECRET = "heartbeat-secret"
MODELS = ("alpha", "beta", "fraud")
SLOW_S = 25.0  # each request "takes" this long on the heartbeat's clock
LIMIT_S = 60.0  # the default stale limit


class Slow(BaseHTTPRequestHandler):
    """Takes every route, each after ``SLOW_S`` on the hand clock; blocks a request for
    ``server.stuck`` until ``server.release`` is set."""

    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, Receiver)
        self.rfile.read(int(self.headers["Content-Length"]))
        with server.lock:
            server.ticks.advance(SLOW_S)
            server.calls += 1
            stuck = server.calls == server.stuck
        if stuck:
            server.entered.set()
            server.release.wait(timeout=30)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Slow)
        self.ticks = Clock()  # the heartbeat's monotonic seconds
        self.lock = threading.Lock()
        self.calls = 0
        self.stuck = 0  # the request number to block (1-based); 0: none
        self.entered = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def scheduler(tmp_path: Path, receiver: Receiver) -> Iterator[RolloutScheduler]:
    """Three models on one webhook router; the scheduler's heartbeat on the hand clock."""
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    for model in MODELS:
        register(registry, tmp_path, model, "1.0.0", "production")
    url = f"http://127.0.0.1:{receiver.server_address[1]}/routes"
    config = parse_config({
        "registry": {"home": str(tmp_path / "home")},
        "sources": {"events": {"kind": "ingest",
                               "options": {"url": f"sqlite:///{tmp_path}/ingest.db"}}},
        "routers": {"hook": {"kind": "webhook", "options": {"url": url, "secret": SECRET}}},
        "models": dict.fromkeys(MODELS, policy()),
    }, where="test")  # fmt: skip
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    router = WebhookRouter(url=url, secret=SECRET, attempts=1, sleep=lambda _: None)
    controller = Controller(
        config=config, registry=registry, store=store, sources={"events": IngestSource(ingest)},
        routers={"hook": router}, clock=clock,
    )  # fmt: skip
    scheduler = RolloutScheduler(controller)
    scheduler.heartbeat = Heartbeat(clock=receiver.ticks.monotonic)
    yield scheduler
    router.close()
    ingest.close()
    store.close()
    registry.close()


def test_a_slow_pass_that_moves_keeps_the_heartbeat_fresh(
    scheduler: RolloutScheduler, receiver: Receiver
) -> None:
    """Three pushes of 25 s each (75 s, past the 60 s limit): the pass beats after
    each model, so the heartbeat is fresh when it ends."""
    scheduler.watch_pass()
    assert receiver.calls == len(MODELS)
    assert receiver.ticks.monotonic() == len(MODELS) * SLOW_S > LIMIT_S
    assert scheduler.heartbeat.age() == 0.0
    assert scheduler.heartbeat.fresh(LIMIT_S)


def test_a_pass_stuck_on_one_call_goes_stale(
    scheduler: RolloutScheduler, receiver: Receiver
) -> None:
    """The second push hangs: the first model's beat is the last one, and the heartbeat
    ages while the call does not return; once it does, the pass beats again."""
    receiver.stuck = 2
    watcher = threading.Thread(target=scheduler.watch_pass)
    watcher.start()
    try:
        assert receiver.entered.wait(timeout=30)
        assert scheduler.heartbeat.age() == SLOW_S  # beaten after alpha, before beta's call
        with receiver.lock:
            receiver.ticks.advance(LIMIT_S)  # the call hangs on
        assert not scheduler.heartbeat.fresh(LIMIT_S)
    finally:
        receiver.release.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert receiver.calls == len(MODELS)
    assert scheduler.heartbeat.fresh(LIMIT_S)
