"""A router serving several models is healthy only when every model's route is in:
one model's success must not hide another's failure from /readyz and the metric.
Real SQLite, a real webhook receiver over HTTP that refuses one model."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.adapters.routers.webhook import WebhookRouter
from controller.adapters.routing import RouterError
from controller.config import parse_config
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry
from serving.route import Backend, Route
from tests.clock import Clock

from ..support import register

SECRET = "router-health-secret"


class Refusing(BaseHTTPRequestHandler):
    """Takes every route except those of the models in ``server.refused``."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        assert isinstance(server, Receiver)
        model = json.loads(body)["model"]
        status = 500 if model in server.refused else 204
        if status == 204:
            server.taken.append(model)
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Refusing)
        self.refused: set[str] = set()
        self.taken: list[str] = []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def policy() -> dict[str, Any]:
    return {
        "router": "hook",
        "strategy": {"kind": "canary", "steps": [50, 100], "step_duration": 5},
        "analysis": {"metrics": [{"name": "accuracy", "source": "events", "query": "accuracy",
                                  "kind": "proportion", "direction": "higher"}]},
    }  # fmt: skip


def test_one_failing_model_keeps_the_router_unready(tmp_path: Path, receiver: Receiver) -> None:
    """'alpha' is refused, 'fraud' taken (in that order): the router stays in
    router_errors naming alpha and its metric says 0 until alpha's route is in too,
    or alpha is no longer in the config."""
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    for model in ("alpha", "fraud"):
        register(registry, tmp_path, model, "1.0.0", "production")
    url = f"http://127.0.0.1:{receiver.server_address[1]}/routes"
    config = parse_config({
        "registry": {"home": str(tmp_path / "home")},
        "sources": {"events": {"kind": "ingest",
                               "options": {"url": f"sqlite:///{tmp_path}/ingest.db"}}},
        "routers": {"hook": {"kind": "webhook", "options": {"url": url, "secret": SECRET}}},
        "models": {"alpha": policy(), "fraud": policy()},
    }, where="test")  # fmt: skip
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    collector = CollectorRegistry()
    router = WebhookRouter(url=url, secret=SECRET, attempts=1, sleep=lambda _: None,
                           monotonic=clock.monotonic)  # fmt: skip
    controller = Controller(
        config=config, registry=registry, store=store, sources={"events": IngestSource(ingest)},
        routers={"hook": router}, clock=clock, metrics=ControllerMetrics(collector),
    )  # fmt: skip
    try:
        receiver.refused.add("alpha")
        errors = controller.reconcile_routers()
        assert receiver.taken == ["fraud"]
        assert list(errors) == ["hook"]
        assert "'alpha'" in errors["hook"]
        assert "HTTP 500" in errors["hook"]
        ready = collector.get_sample_value("modelreg_controller_router_ready", {"router": "hook"})
        assert ready == 0.0

        clock.advance(60)  # past the router's backoff for alpha
        without_alpha = config.model_copy(update={"models": {"fraud": config.models["fraud"]}})
        controller.config = without_alpha  # as a SIGHUP reload would
        assert controller.reconcile_routers() == {}  # alpha's failure is no one's now
        ready = collector.get_sample_value("modelreg_controller_router_ready", {"router": "hook"})
        assert ready == 1.0
        controller.config = config

        receiver.refused.clear()
        assert controller.reconcile_routers() == {}
        assert sorted(receiver.taken) == ["alpha", "fraud"]
        ready = collector.get_sample_value("modelreg_controller_router_ready", {"router": "hook"})
        assert ready == 1.0
    finally:
        router.close()
        ingest.close()
        store.close()
        registry.close()


def test_failures_recorded_while_the_watcher_forgets(tmp_path: Path) -> None:
    """Pushes failing on many routers (ticks, alerts, the guard) while the watcher drops
    failures of unrouted models: no pass breaks on the shared bookkeeping, and every
    failure ends up reported. A stress test: thread switches are forced very often."""
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    count = 300
    (tmp_path / "a-file").write_text("")
    broken = FileRouter(path=tmp_path / "a-file" / "routes.json")  # set() cannot write
    names = [f"r{i}" for i in range(count)]
    config = parse_config({
        "registry": {"home": str(tmp_path / "home")},
        "sources": {"events": {"kind": "ingest",
                               "options": {"url": f"sqlite:///{tmp_path}/ingest.db"}}},
        "routers": {"hook": {"kind": "file", "options": {"path": str(tmp_path / "r.json")}}},
        "models": {"fraud": policy()},
    }, where="test")  # fmt: skip
    base = config.models["fraud"]
    models = {f"m{i}": base.model_copy(update={"router": name}) for i, name in enumerate(names)}
    config = config.model_copy(update={"models": models})
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    controller = Controller(
        config=config, registry=registry, store=store, sources={"events": IngestSource(ingest)},
        routers=dict.fromkeys(names, broken), clock=clock,
    )  # fmt: skip
    for i in range(count):  # the stored routes are read once, before the race
        controller.actuator.pushed(f"m{i}")
    crashed: list[BaseException] = []
    done = threading.Event()

    def watcher() -> None:
        while not done.is_set():
            try:
                controller.actuator.forget_unrouted()
                controller.failing_routers()
            except Exception as exc:  # what the race raises is the finding
                crashed.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=watcher)
    thread.start()
    try:
        for i in range(count):
            route = Route(f"m{i}", (Backend("v1", 100),), revision=1)
            with controller.actuator.lock(route.model), pytest.raises(RouterError):
                controller.actuator.push(route)
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(previous)
        ingest.close()
        store.close()
        registry.close()
    assert crashed == []
    assert sorted(controller.failing_routers()) == sorted(names)
