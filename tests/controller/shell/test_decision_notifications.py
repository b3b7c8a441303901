"""Decisions posted to webhooks: config, daemon wiring, and a real local HTTP receiver."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.notify import Notifications
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import parse_config
from controller.core.phases import Event, Phase
from controller.errors import ConfigError
from controller.runtime.daemon import build_notifications
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry
from tests.clock import Clock

from ..support import config, register

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROUTERS = {"table": {"kind": "file", "options": {"path": "/tmp/unused-routes.json"}}}


class Receiver:
    """A stdlib HTTP server in a thread that keeps every JSON body it is posted.

    With ``hold`` set, each request waits for ``release`` before answering: a webhook
    that hangs.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        self.answered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.arrived.set()
                outer.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                outer.answered.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _notifications(*targets: dict[str, Any]) -> Notifications:
    built = build_notifications(
        parse_config({"routers": ROUTERS, "notifications": list(targets)}, where="test")
    )
    assert built is not None
    return built


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "v1.0.0", "production")
    register(registry, tmp_path, "fraud", "v1.1.0", "staging")
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes.json"
    yield Controller(
        config=config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db"),
        registry=registry,
        store=store,
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=routes)},
        clock=clock,
    )
    ingest.close()
    store.close()
    registry.close()


def _roll_back(controller: Controller) -> int:
    rollout = controller.start_rollout("fraud", "v1.1.0", reason="manual")
    controller.reconcile_once(rollout.id)  # 50% to the candidate
    done = controller.operate(rollout.id, Event.ROLLBACK, reason="errors up", actor="ann")
    assert done.phase is Phase.ROLLED_BACK
    return rollout.id


class TestConfig:
    def test_targets_are_validated_with_key_paths(self) -> None:
        """Unknown keys, a missing or doubled URL, and unknown events name their key."""
        cases = {
            "notifications[0].colour": {"url": "http://x/", "colour": "red"},
            "notifications[0]: Value error, expected exactly one": {"timeout_s": 1},
            "notifications[0].url": {"url": "ftp://x/"},
            "notifications[0].events[0]": {"url": "http://x/", "events": ["exploded"]},
        }
        for path, target in cases.items():
            with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
                parse_config({"routers": ROUTERS, "notifications": [target]}, where="test")
        both = {"url": "http://x/", "url_env": "HOOK"}
        with pytest.raises(ConfigError, match="exactly one of url or url_env"):
            parse_config({"routers": ROUTERS, "notifications": [both]}, where="test")

    def test_unset_url_env_is_a_config_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MODELREG_TEST_HOOK", raising=False)
        cfg = parse_config(
            {"routers": ROUTERS, "notifications": [{"url_env": "MODELREG_TEST_HOOK"}]},
            where="test",
        )
        with pytest.raises(ConfigError, match=r"notifications\[0\].*MODELREG_TEST_HOOK"):
            build_notifications(cfg)
        assert build_notifications(parse_config({"routers": ROUTERS}, where="test")) is None


class TestDecisionsPosted:
    def test_rollback_posts_one_slack_message(
        self, controller: Controller, receiver: Receiver
    ) -> None:
        """A committed rollback posts one Slack-compatible JSON naming model, version, reason;
        a target that only wants promotions gets nothing."""
        other = Receiver()
        notifications = _notifications(
            {"url": receiver.url, "timeout_s": 5},
            {"url": other.url, "events": ["promoted"]},
        )
        controller.on_decision = notifications.post
        try:
            _roll_back(controller)
            assert receiver.arrived.wait(30)
            assert notifications.close(timeout_s=30)
        finally:
            other.close()
        assert len(receiver.bodies) == 1
        body = receiver.bodies[0]
        assert "fraud" in body["text"]
        assert "v1.1.0" in body["text"]
        assert "rolled back" in body["text"]
        assert "errors up" in body["text"]
        assert isinstance(body["blocks"], list)
        assert body["blocks"][0]["type"] == "header"
        fields = " ".join(f["text"] for b in body["blocks"] for f in b.get("fields", []))
        assert "v1.0.0" in fields  # the control it went back to
        assert other.bodies == []

    def test_hanging_receiver_does_not_hold_the_decision(self, controller: Controller) -> None:
        """While the webhook has not answered, the rollback is already committed."""
        hanging = Receiver(hold=True)
        notifications = _notifications({"url": hanging.url, "attempts": 1})
        controller.on_decision = notifications.post
        try:
            rollout = _roll_back(controller)
            assert hanging.arrived.wait(30)
            # Had the decision waited for the webhook, it would have been answered by now.
            assert not hanging.answered.is_set()  # the post is still in flight...
            record = controller.store.get(rollout)  # ...and the decision is done
            assert record.phase is Phase.ROLLED_BACK
            assert record.intent is None
            assert controller.registry.get_model_version("fraud", "v1.1.0").stage == "archived"
            route = controller.routers["table"].read("fraud")
            assert route is not None
            assert [(b.version, b.weight) for b in route.backends] == [("v1.0.0", 100)]
        finally:
            hanging.release.set()
            notifications.close(timeout_s=30)
            hanging.close()

    def test_receiver_down_does_not_fail_the_decision(self, controller: Controller) -> None:
        """Nobody listens: the rollback commits; delivery fails after its retries."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        notifications = _notifications(
            {"url": f"http://127.0.0.1:{port}/hook", "attempts": 2, "backoff_s": 0}
        )
        controller.on_decision = notifications.post
        rollout = _roll_back(controller)
        assert controller.store.get(rollout).phase is Phase.ROLLED_BACK
        assert notifications.close(timeout_s=30)
        (notifier, _), *_ = notifications.targets
        stats = notifier.stats()
        assert (stats.sent, stats.failed) == (0, 1)
