"""controller.adapters.notify: Slack-compatible payloads delivered by a background worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from controller.adapters.notify import (
    DecisionEvent,
    EventKind,
    NotificationTarget,
    Notifier,
    NotifierStats,
    build_notifier,
    slack_payload,
)
from controller.errors import OptionError

AT = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)
HOOK_A = "https://hooks.test/services/A/secret-a"
HOOK_B = "https://hooks.test/services/B/secret-b"


def event(kind: EventKind = EventKind.PROMOTED, n: int = 0, **kwargs: Any) -> DecisionEvent:
    defaults: dict[str, Any] = {
        "model": "fraud",
        "version": f"v1.{n}.0",
        "at": AT,
        "reasons": ("conversion +2.1% (p=0.003)",),
        "rollout_id": "r-42",
    }
    defaults.update(kwargs)
    return DecisionEvent(kind, **defaults)


class Hooks:
    """A MockTransport handler with scripted status codes; records JSON bodies per URL."""

    def __init__(self, *codes: int | type[Exception]) -> None:
        self.codes = list(codes) or [200]
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.bodies.append((str(request.url), json.loads(request.content)))
            code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        if isinstance(code, type):
            raise code("refused", request=request)
        return httpx.Response(code, text="ok" if code < 400 else "no")


def make(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> tuple[Notifier, list[float]]:
    sleeps: list[float] = []
    options: dict[str, Any] = {"webhooks": [HOOK_A], "sleep": sleeps.append}
    options.update(kwargs)
    notifier = Notifier(client=httpx.Client(transport=httpx.MockTransport(handler)), **options)
    return notifier, sleeps


class TestPayload:
    @pytest.mark.parametrize(
        ("kind", "words"),
        [
            (EventKind.PROMOTED, ":white_check_mark: fraud v1.0.0 promoted"),
            (EventKind.ROLLED_BACK, ":rewind: fraud v1.0.0 rolled back"),
            (EventKind.AWAITING_APPROVAL, ":hourglass: fraud v1.0.0 awaiting approval"),
            (EventKind.FAILED, ":x: fraud v1.0.0 rollout failed"),
        ],
    )
    def test_text_per_kind(self, kind: EventKind, words: str) -> None:
        """Each decision kind has its own fallback text, reasons appended."""
        payload = slack_payload(event(kind))
        assert payload["text"] == words + ": conversion +2.1% (p=0.003)"

    def test_blocks(self) -> None:
        """Header, fields, reasons and context blocks in Slack's Block Kit shape."""
        payload = slack_payload(
            event(
                environment="prod",
                link="https://modelreg.test/rollouts/r-42",
                details={"Step": "3/6"},
                reasons=("p95 latency 310ms > 250ms", "error rate ok"),
            )
        )
        header, section, reasons, context = payload["blocks"]
        assert header == {
            "type": "header",
            "text": {"type": "plain_text", "text": "fraud v1.0.0 promoted (prod)"},
        }
        assert [f["text"] for f in section["fields"]] == [
            "*Model*\nfraud",
            "*Version*\nv1.0.0",
            "*Rollout*\nr-42",
            "*Step*\n3/6",
        ]
        assert reasons["text"]["text"] == "• p95 latency 310ms &gt; 250ms\n• error rate ok"
        assert context["elements"][0]["text"] == (
            "modelreg · promoted · 2024-01-10 09:00:00 UTC · "
            "<https://modelreg.test/rollouts/r-42|details>"
        )
        json.dumps(payload)  # serialisable as is

    def test_escaping(self) -> None:
        """&, < and > in names and reasons cannot inject Slack links or mentions."""
        payload = slack_payload(event(model="a<b>&c", reasons=("<!channel>",)))
        assert "<!channel>" not in json.dumps(payload)
        assert "&lt;!channel&gt;" in payload["text"]


class TestDelivery:
    def test_every_webhook_gets_the_payload(self) -> None:
        """One post reaches every configured webhook; close() drains and reports True."""
        hooks = Hooks(200)
        notifier, _ = make(hooks, webhooks=[HOOK_A, HOOK_B])
        notifier.post(event())
        assert notifier.close(timeout_s=30) is True
        assert sorted(url for url, _ in hooks.bodies) == [HOOK_A, HOOK_B]
        assert hooks.bodies[0][1] == slack_payload(event())
        assert notifier.stats() == NotifierStats(sent=2, failed=0, dropped=0, queued=0)

    def test_retries_with_backoff(self) -> None:
        """5xx and connection errors are retried after 1, 2, 4 s until a 2xx."""
        hooks = Hooks(500, httpx.ConnectError, 503, 200)
        notifier, sleeps = make(hooks)
        notifier.post(event())
        assert notifier.close(timeout_s=30)
        assert sleeps == [1.0, 2.0, 4.0]
        assert notifier.stats().sent == 1

    def test_gives_up_after_attempts(self) -> None:
        """After `attempts` failures the delivery counts as failed."""
        hooks = Hooks(500)
        notifier, sleeps = make(hooks, attempts=3, max_backoff_s=1.5)
        notifier.post(event())
        assert notifier.close(timeout_s=30)
        assert len(hooks.bodies) == 3
        assert sleeps == [1.0, 1.5]
        assert notifier.stats() == NotifierStats(sent=0, failed=1, dropped=0, queued=0)

    def test_client_error_not_retried(self) -> None:
        """A 4xx (say, a revoked Slack hook) fails at once."""
        hooks = Hooks(404)
        notifier, sleeps = make(hooks)
        notifier.post(event())
        assert notifier.close(timeout_s=30)
        assert len(hooks.bodies) == 1
        assert sleeps == []
        assert notifier.stats().failed == 1

    def test_post_after_close_is_dropped(self) -> None:
        """Events posted after close() are counted as dropped, not raised."""
        notifier, _ = make(Hooks(200))
        assert notifier.close(timeout_s=30)
        notifier.post(event())
        assert notifier.stats().dropped == 1


class Gate:
    """A handler that blocks every request until opened; tells when one is waiting."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.versions: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        assert self.open.wait(timeout=60), "gate never opened"
        self.versions.append(json.loads(request.content)["blocks"][1]["fields"][1]["text"])
        return httpx.Response(200)


class TestBackpressure:
    def test_full_queue_drops_oldest_without_blocking(self) -> None:
        """With the worker stuck, posts return at once and the oldest queued are dropped."""
        gate = Gate()
        notifier, _ = make(gate, queue_size=3)
        try:
            notifier.post(event(n=0))
            assert gate.entered.wait(timeout=30)  # the worker holds event 0 in flight
            for n in range(1, 11):
                notifier.post(event(n=n))  # would hang the test if post() blocked
            assert notifier.stats() == NotifierStats(sent=0, failed=0, dropped=7, queued=3)
        finally:
            gate.open.set()
        assert notifier.close(timeout_s=30)
        assert gate.versions == [f"*Version*\nv1.{n}.0" for n in (0, 8, 9, 10)]
        assert notifier.stats() == NotifierStats(sent=4, failed=0, dropped=7, queued=0)

    def test_close_gives_up_at_timeout(self) -> None:
        """close() returns False when the queue cannot drain in time; the rest is dropped."""
        gate = Gate()
        notifier, _ = make(gate)
        notifier.post(event(n=0))
        assert gate.entered.wait(timeout=30)
        notifier.post(event(n=1))
        notifier.post(event(n=2))
        try:
            assert notifier.close(timeout_s=0.2) is False
            assert notifier.stats().dropped == 2
        finally:
            gate.open.set()


class TestBuild:
    def test_urls_and_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A target's url, or the URL its url_env names, is where its notifier posts."""
        monkeypatch.setenv("MODELREG_TEST_HOOK", HOOK_B)
        targets = [
            (NotificationTarget(url=HOOK_A), HOOK_A),
            (NotificationTarget(url_env="MODELREG_TEST_HOOK"), HOOK_B),
        ]
        for target, url in targets:
            notifier = build_notifier(target)
            try:
                assert notifier.webhooks == (url,)
            finally:
                assert notifier.close(timeout_s=30)

    @pytest.mark.parametrize(
        ("fields", "key", "message"),
        [
            ({}, (), "expected exactly one of url or url_env"),
            ({"url": HOOK_A, "url_env": "X"}, (), "expected exactly one of url or url_env"),
            ({"url": "ftp://x"}, ("url",), "expected an http(s) URL"),
            ({"url": HOOK_A, "retries": 1}, ("retries",), "Extra inputs are not permitted"),
            ({"url": HOOK_A, "attempts": 0}, ("attempts",), "greater than or equal to 1"),
            ({"url": HOOK_A, "events": ["exploded"]}, ("events", 0), "Input should be"),
        ],
    )
    def test_invalid(self, fields: dict[str, Any], key: tuple[Any, ...], message: str) -> None:
        """A target's mistakes name their key (the model controller.config validates with)."""
        with pytest.raises(ValidationError) as info:
            NotificationTarget.model_validate(fields)
        (error,) = info.value.errors()
        assert error["loc"] == key
        assert message in error["msg"]

    def test_unusable_url_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unset url_env, or one not holding an http(s) URL, is an OptionError naming it;
        no notifier (no thread) is started."""
        monkeypatch.delenv("MODELREG_TEST_UNSET", raising=False)
        target = NotificationTarget(url_env="MODELREG_TEST_UNSET")
        assert [str(p) for p in target.environment_problems()] == [
            "url_env: MODELREG_TEST_UNSET is not set"
        ]
        with pytest.raises(OptionError, match="url_env: MODELREG_TEST_UNSET is not set"):
            build_notifier(target)
        monkeypatch.setenv("MODELREG_TEST_UNSET", "ftp://x")
        with pytest.raises(OptionError, match="url_env: MODELREG_TEST_UNSET does not hold an http"):
            build_notifier(target)


class SlackLike(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, SlackServer)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class SlackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SlackLike)
        self.received: list[tuple[str, str, dict[str, Any]]] = []


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    server = SlackServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class TestRealServer:
    def test_delivers_json(self, slack_server: SlackServer) -> None:
        """A real HTTP server receives the JSON payload of each event, in order."""
        url = f"http://127.0.0.1:{slack_server.server_address[1]}/services/T/B/x"
        notifier = Notifier(webhooks=[url])
        notifier.post(event(EventKind.ROLLED_BACK))
        notifier.post(event(EventKind.AWAITING_APPROVAL))
        assert notifier.close(timeout_s=60)
        assert [r[0] for r in slack_server.received] == ["/services/T/B/x"] * 2
        assert all(r[1] == "application/json" for r in slack_server.received)
        assert [r[2] for r in slack_server.received] == [
            slack_payload(event(EventKind.ROLLED_BACK)),
            slack_payload(event(EventKind.AWAITING_APPROVAL)),
        ]
