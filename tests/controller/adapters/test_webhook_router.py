"""controller.adapters.routers.webhook: signed pushes, retries, pending routes, read-back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.adapters.routers.webhook import (
    SIGNATURE_HEADER,
    WebhookOptions,
    WebhookRouter,
    build_webhook_router,
    sign,
    verify_signature,
)
from controller.adapters.routing import ROUTERS, Router, RouterError, build_router
from monitors.testing import free_port
from serving.route import Backend, Route
from tests.clock import Clock

SECRET = "s3cret-shared-with-the-receiver"
NOW = 1_700_000_000.0
URL = "http://serving.test/routes"


def route(revision: int = 1, weights: tuple[int, int] = (90, 10), model: str = "fraud") -> Route:
    return Route(
        model,
        (Backend("v1.0.0", weights[0], "a" * 64), Backend("v1.1.0", weights[1], "b" * 64)),
        revision=revision,
        salt="s",
    )


class Receiver:
    """A MockTransport handler answering with a scripted list of responses."""

    def __init__(self, *answers: int | type[Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type):
            raise answer("connection refused", request=request)
        return httpx.Response(answer, text="" if answer < 400 else f"status {answer}")


def make_router(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> tuple[WebhookRouter, list[float]]:
    sleeps: list[float] = []
    router = WebhookRouter(
        url=URL,
        secret=SECRET,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=sleeps.append,
        clock=Clock(datetime.fromtimestamp(NOW, UTC)).timestamp,
        **kwargs,
    )
    return router, sleeps


class TestSet:
    def test_signed_json_post(self) -> None:
        """set() POSTs the route JSON with a signature the receiver helper accepts."""
        receiver = Receiver(200)
        router, sleeps = make_router(receiver)
        router.set(route())
        (request,) = receiver.requests
        assert request.method == "POST"
        assert str(request.url) == URL
        assert json.loads(request.content) == route().to_dict()
        assert request.headers["X-Modelreg-Revision"] == "1"
        header = request.headers[SIGNATURE_HEADER]
        assert header.startswith(f"t={int(NOW)},v1=")
        assert verify_signature(SECRET, header, request.content, now=NOW + 10)
        assert sleeps == []

    def test_confirmed_route_is_read_back(self) -> None:
        """After a 2xx the route is confirmed: read() returns it, nothing pending."""
        router, _ = make_router(Receiver(204))
        router.set(route())
        assert router.read("fraud") == route()
        assert router.pending() == []
        assert router.status().ok

    def test_retries_with_exponential_backoff(self) -> None:
        """5xx and transport errors are retried after 0.5, 1, 2 s, then a 2xx confirms."""
        receiver = Receiver(503, httpx.ConnectError, 500, 200)
        router, sleeps = make_router(receiver)
        router.set(route())
        assert len(receiver.requests) == 4
        assert sleeps == [0.5, 1.0, 2.0]
        assert router.read("fraud") == route()

    def test_backoff_is_capped(self) -> None:
        """Delays double up to max_backoff_s and stay there."""
        router, sleeps = make_router(Receiver(502), attempts=6, backoff_s=1, max_backoff_s=4)
        with pytest.raises(RouterError):
            router.set(route())
        assert sleeps == [1, 2, 4, 4, 4]

    def test_bounded_attempts_then_router_error(self) -> None:
        """After `attempts` failures set() raises RouterError naming URL, model and cause."""
        receiver = Receiver(503)
        router, _ = make_router(receiver, attempts=3)
        with pytest.raises(RouterError, match=r"serving\.test.*'fraud'.*3 attempt\(s\): HTTP 503"):
            router.set(route())
        assert len(receiver.requests) == 3
        assert router.pending() == ["fraud"]
        assert router.read("fraud") is None

    def test_client_error_is_not_retried(self) -> None:
        """A 400 will not get better: one attempt, then RouterError with the body."""
        receiver = Receiver(400)
        router, sleeps = make_router(receiver)
        with pytest.raises(RouterError, match="HTTP 400: status 400"):
            router.set(route())
        assert len(receiver.requests) == 1
        assert sleeps == []

    @pytest.mark.parametrize("code", [301, 304, 404])
    def test_only_2xx_confirms(self, code: int) -> None:
        """Redirects and other non-2xx answers are failures."""
        router, _ = make_router(Receiver(code))
        with pytest.raises(RouterError):
            router.set(route())
        assert router.pending() == ["fraud"]

    def test_429_is_retried(self) -> None:
        """Too Many Requests is temporary."""
        receiver = Receiver(429, 200)
        router, _ = make_router(receiver)
        router.set(route())
        assert len(receiver.requests) == 2


class TestPending:
    def test_resend_pending_until_confirmed(self) -> None:
        """A failed route stays pending and resend_pending() delivers it later."""
        receiver = Receiver(503)
        router, _ = make_router(receiver, attempts=2)
        with pytest.raises(RouterError):
            router.set(route(1))
        assert router.resend_pending() == ["fraud"]  # still down: no exception
        receiver.answers = [200]
        assert router.resend_pending() == []
        assert router.read("fraud") == route(1)
        assert json.loads(receiver.requests[-1].content)["revision"] == 1

    def test_newer_route_replaces_pending_one(self) -> None:
        """Only the latest desired route per model is re-sent."""
        receiver = Receiver(503)
        router, _ = make_router(receiver, attempts=1)
        with pytest.raises(RouterError):
            router.set(route(1))
        with pytest.raises(RouterError):
            router.set(route(2, (50, 50)))
        receiver.answers = [200]
        sent_before = len(receiver.requests)
        router.resend_pending()
        assert len(receiver.requests) == sent_before + 1
        assert router.read("fraud") == route(2, (50, 50))

    def test_previous_confirmed_route_is_kept_while_new_one_pends(self) -> None:
        """read() reports what the receiver took, not what is still pending."""
        receiver = Receiver(200)
        router, _ = make_router(receiver, attempts=1)
        router.set(route(1))
        receiver.answers = [500]
        with pytest.raises(RouterError):
            router.set(route(2, (50, 50)))
        assert router.read("fraud") == route(1)
        assert router.pending() == ["fraud"]

    def test_status_names_pending_models_and_errors(self) -> None:
        """status() carries the last error per pending model for /readyz."""
        receiver = Receiver(503)
        router, _ = make_router(receiver, attempts=1)
        with pytest.raises(RouterError):
            router.set(route(model="churn"))
        status = router.status()
        assert not status.ok
        assert status.pending == ("churn",)
        assert "HTTP 503" in status.errors["churn"]
        assert status.to_dict()["kind"] == "webhook"
        receiver.answers = [200]
        router.resend_pending()
        assert router.status().to_dict() == {
            "kind": "webhook",
            "url": URL,
            "ok": True,
            "pending": [],
            "errors": {},
        }


class TestReadFromReceiver:
    def handler(
        self, status: int, payload: Any = None
    ) -> Callable[[httpx.Request], httpx.Response]:
        def answer(request: httpx.Request) -> httpx.Response:
            assert request.method == "GET"
            assert request.url.params["model"] == "fraud"
            assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], b"", now=NOW)
            return httpx.Response(status, json=payload)

        return answer

    def test_get_returns_receiver_route(self) -> None:
        """With read_url, read() asks the receiver (signed GET) and parses its route."""
        router, _ = make_router(self.handler(200, route(7).to_dict()), read_url=URL)
        assert router.read("fraud") == route(7)

    def test_404_means_nothing(self) -> None:
        """A 404 from the receiver means it holds no route for the model."""
        router, _ = make_router(self.handler(404), read_url=URL)
        assert router.read("fraud") is None

    @pytest.mark.parametrize(
        ("status", "payload", "message"),
        [
            (500, None, "answered 500"),
            (200, {"nothing": 1}, "not a route"),
            (200, route(model="other").to_dict(), "returned model 'other'"),
        ],
    )
    def test_bad_answers_raise(self, status: int, payload: Any, message: str) -> None:
        """Errors and wrong shapes from the receiver become RouterError."""
        router, _ = make_router(self.handler(status, payload), read_url=URL)
        with pytest.raises(RouterError, match=message):
            router.read("fraud")


class TestVerifySignature:
    body = b'{"model":"fraud"}'

    @pytest.mark.parametrize(
        ("header", "body", "now", "expected"),
        [
            (sign(SECRET, body, timestamp=int(NOW)), body, NOW, True),
            (sign(SECRET, body, timestamp=int(NOW)), body, NOW + 299, True),
            (sign(SECRET, body, timestamp=int(NOW)), body, NOW + 301, False),  # stale
            (sign(SECRET, body, timestamp=int(NOW)), body, NOW - 301, False),  # future
            (sign("other", body, timestamp=int(NOW)), body, NOW, False),
            (sign(SECRET, body, timestamp=int(NOW)), body + b" ", NOW, False),
            (None, body, NOW, False),
            ("", body, NOW, False),
            ("t=abc,v1=00", body, NOW, False),
            (f"t={int(NOW)}", body, NOW, False),
            (
                f"t={int(NOW)},v1=deadbeef," + sign(SECRET, body, timestamp=int(NOW)).split(",")[1],
                body,
                NOW,
                True,
            ),  # rotation: any v1 may match
        ],
    )
    def test_table(self, header: str | None, body: bytes, now: float, expected: bool) -> None:
        """Valid, stale, tampered, wrong-secret and malformed signatures."""
        assert verify_signature(SECRET, header, body, now=now) is expected


class TestFactory:
    def test_registered_kind(self) -> None:
        """kind: webhook builds a WebhookRouter from WebhookOptions (Router protocol)."""
        assert ROUTERS["webhook"].factory is build_webhook_router
        assert ROUTERS["webhook"].options is WebhookOptions
        router = build_router("webhook", {"url": URL, "secret": SECRET})
        assert isinstance(router, WebhookRouter)
        assert isinstance(router, Router)
        router.close()

    def test_secret_file_and_env(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        port: int,
        start_receiver: Callable[[], ReceiverServer],
    ) -> None:
        """The secret may come from a file (its trailing newline dropped) or an environment
        variable; either way the router signs with it, so a receiver holding the secret
        takes the route."""
        server = start_receiver()
        secret_file = tmp_path / "secret"
        secret_file.write_text(SECRET + "\n")
        monkeypatch.setenv("MODELREG_TEST_WEBHOOK_SECRET", SECRET)
        sources = [
            {"secret_file": str(secret_file)},
            {"secret_env": "MODELREG_TEST_WEBHOOK_SECRET"},
        ]
        for revision, source in enumerate(sources, start=1):
            options = WebhookOptions(url=f"http://127.0.0.1:{port}/routes", **source)
            assert options.environment_problems() == []
            router = build_webhook_router(options)
            try:
                router.set(route(revision))
            finally:
                router.close()
        assert server.rejected == 0
        assert server.received == [route(1).to_dict(), route(2).to_dict()]

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"secret": SECRET}, "url: Field required"),
            ({"url": "ftp://x", "secret": SECRET}, "url: .*expected an http:// or https:// URL"),
            ({"url": URL}, "exactly one of secret"),
            ({"url": URL, "secret": SECRET, "secret_env": "X"}, r"got secret, secret_env"),
            (
                {"url": URL, "secret_env": "MODELREG_TEST_UNSET_VAR"},
                "secret_env: MODELREG_TEST_UNSET_VAR is not set",
            ),
            (
                {"url": URL, "secret_file": "/nonexistent/secret"},
                "secret_file: cannot read /nonexistent/secret",
            ),
            ({"url": URL, "secret": SECRET, "retries": 3}, "retries: Extra inputs are not"),
            (
                {"url": URL, "secret": SECRET, "attempts": 0},
                "attempts: Input should be greater than or equal to 1",
            ),
            ({"url": URL, "secret": SECRET, "attempts": "4"}, "attempts: .*valid integer"),
            ({"url": URL, "secret": SECRET, "timeout_s": -1}, "timeout_s: .*greater than 0"),
        ],
    )
    def test_invalid_options(self, options: dict[str, Any], message: str) -> None:
        """Config mistakes are ValueErrors naming the option (WebhookOptions' one check; an
        unset variable or unreadable file is an OptionError, also a ValueError)."""
        with pytest.raises(ValueError, match=message):
            build_router("webhook", options)


# -- against a real HTTP server ----------------------------------------------------


class RecordingHandler(BaseHTTPRequestHandler):
    """Checks the signature like a real receiver and records accepted routes."""

    received: list[dict[str, Any]]
    rejected: int = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        assert isinstance(server, ReceiverServer)
        if not verify_signature(SECRET, self.headers[SIGNATURE_HEADER], body, now=time.time()):
            server.rejected += 1
            self.send_response(401)
            self.end_headers()
            return
        server.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), RecordingHandler)
        self.received: list[dict[str, Any]] = []
        self.rejected = 0


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def start_receiver(port: int) -> Iterator[Callable[[], ReceiverServer]]:
    servers: list[ReceiverServer] = []

    def start() -> ReceiverServer:
        server = ReceiverServer(port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class TestRealServer:
    def test_down_then_up(self, port: int, start_receiver: Callable[[], ReceiverServer]) -> None:
        """Connection refused leaves the route pending; once up, it is delivered and verified."""
        sleeps: list[float] = []
        router = WebhookRouter(
            url=f"http://127.0.0.1:{port}/routes", secret=SECRET, attempts=3, sleep=sleeps.append
        )
        try:
            with pytest.raises(RouterError, match="ConnectError"):
                router.set(route(3))
            assert sleeps == [0.5, 1.0]
            assert router.pending() == ["fraud"]
            server = start_receiver()
            assert router.resend_pending() == []
            assert server.received == [route(3).to_dict()]
            assert server.rejected == 0
            assert router.read("fraud") == route(3)
        finally:
            router.close()

    def test_wrong_secret_rejected_by_receiver(
        self, port: int, start_receiver: Callable[[], ReceiverServer]
    ) -> None:
        """A receiver checking signatures refuses a sender with another secret (401)."""
        server = start_receiver()
        router = WebhookRouter(
            url=f"http://127.0.0.1:{port}/routes", secret="not-the-secret", sleep=lambda _: None
        )
        try:
            with pytest.raises(RouterError, match="HTTP 401"):
                router.set(route())
            assert server.rejected == 1
            assert server.received == []
        finally:
            router.close()
