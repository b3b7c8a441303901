"""The webhook router backs off between failed pushes of the same pending route, so a
receiver that is down is retried with growing pauses and a pass is not held up by it;
a new route goes out at once. MockTransport for the receiver, an injected clock."""

from __future__ import annotations

import httpx
import pytest

from controller.adapters.routers.webhook import WebhookRouter
from controller.adapters.routing import RouterError
from serving.route import Backend, Route
from tests.clock import Clock

SECRET = "backoff-secret"


def route(revision: int, treatment: int = 10) -> Route:
    return Route("fraud", (Backend("v1.0.0", 100 - treatment), Backend("v1.1.0", treatment)),
                 revision=revision)  # fmt: skip


class Scripted:
    """Answers every request with ``status``; counts requests."""

    def __init__(self) -> None:
        self.status = 503
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(self.status, text="" if self.status < 400 else "down")


class TestBackoffBetweenPushes:
    def setup_method(self) -> None:
        self.clock = Clock(monotonic=1000.0)
        self.receiver = Scripted()
        self.router = WebhookRouter(
            url="http://serving.test/routes", secret=SECRET, attempts=2, backoff_s=1.0,
            max_backoff_s=4.0, sleep=lambda _: None, monotonic=self.clock.monotonic,
            client=httpx.Client(transport=httpx.MockTransport(self.receiver)),
        )  # fmt: skip

    def teardown_method(self) -> None:
        self.router.close()

    def test_same_route_waits_doubling_up_to_the_cap(self) -> None:
        """After each failed push the same route waits 2, 4, then 4 s (capped): earlier
        calls raise the last error naming the wait and send nothing."""
        with pytest.raises(RouterError, match="HTTP 503"):
            self.router.set(route(1))
        assert self.receiver.requests == 2  # the push's own two attempts
        for wait in (2.0, 4.0, 4.0):
            self.clock.advance(wait - 0.5)
            with pytest.raises(RouterError, match=r"HTTP 503.*next attempt in 0\.5s"):
                self.router.set(route(1))
            assert self.receiver.requests % 2 == 0
            sent = self.receiver.requests
            self.clock.advance(0.5)
            with pytest.raises(RouterError, match="after 2 attempt"):
                self.router.set(route(1))
            assert self.receiver.requests == sent + 2
        assert self.router.pending() == ["fraud"]

    def test_a_new_route_is_pushed_at_once(self) -> None:
        """A different route (here: back to the control) does not wait for the backoff."""
        with pytest.raises(RouterError):
            self.router.set(route(1))
        self.receiver.status = 204
        self.router.set(route(2, treatment=0))
        assert self.receiver.requests == 3
        assert self.router.pending() == []
        assert self.router.read("fraud") == route(2, treatment=0)

    def test_confirmation_resets_the_backoff(self) -> None:
        """Once a route is confirmed, the next failure starts again at the first delay."""
        for _ in range(3):
            with pytest.raises(RouterError):
                self.router.set(route(1))
            self.clock.advance(10)
        self.receiver.status = 204
        self.router.set(route(1))
        self.receiver.status = 503
        with pytest.raises(RouterError, match="after 2 attempt"):
            self.router.set(route(2))
        self.clock.advance(1.9)
        with pytest.raises(RouterError, match=r"next attempt in 0\.1s"):
            self.router.set(route(2))

    def test_resend_pending_pushes_now(self) -> None:
        """resend_pending() is an explicit push: no backoff applies."""
        with pytest.raises(RouterError):
            self.router.set(route(1))
        self.receiver.status = 204
        assert self.router.resend_pending() == []
        assert self.receiver.requests == 3
