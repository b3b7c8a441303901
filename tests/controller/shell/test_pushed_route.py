"""A route pushed where the router cannot say what serving holds (``read()`` is None)
goes above the route last pushed, which the controller's database remembers across
restarts: receivers ignore routes that are not newer than the one they hold."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.adapters.guard_store import GuardStore
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.http import HttpRouter
from controller.adapters.routers.webhook import SIGNATURE_HEADER, WebhookRouter, verify_signature
from controller.adapters.routing import Router
from controller.shell.controller import Controller
from controller.shell.guard_pass import Guard
from monitors import IngestSource
from monitors.alerts import AlertAction
from monitors.testing import free_port
from serving.route import Route

from ..adapters.test_webhook_router import SECRET
from ..support import register
from .test_guard import World, world  # noqa: F401 -- a fixture used below


class NewestOnly(BaseHTTPRequestHandler):
    """A receiver as the webhook docs ask: signed routes only, a non-newer one ignored."""

    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, Serving)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if server.down:
            self.send_response(503)
        elif server.lose_answers:  # takes the route, but the answer never confirms it
            route = Route.from_dict(json.loads(body))
            held = server.routes.get(route.model)
            if held is None or route.revision > held.revision:
                server.routes[route.model] = route
            self.send_response(503)
        elif not verify_signature(SECRET, self.headers[SIGNATURE_HEADER], body, now=time.time()):
            self.send_response(401)
        else:
            route = Route.from_dict(json.loads(body))
            server.posted.append(route)
            held = server.routes.get(route.model)
            if held is None or route.revision > held.revision:
                server.routes[route.model] = route
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Serving(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), NewestOnly)
        self.routes: dict[str, Route] = {}
        self.posted: list[Route] = []
        self.down = False
        self.lose_answers = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/routes"

    def versions(self, model: str = "fraud") -> list[str]:
        return [b.version for b in self.routes[model].backends]


@pytest.fixture
def serving() -> Iterator[Serving]:
    server = Serving()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _daemon(at: World, serving: Serving | None) -> tuple[Controller, Guard]:
    """A controller and guard as a (re)started daemon builds them, on the same database:
    a webhook router without ``read_url`` that remembers nothing yet (an ``http``
    router, empty until its first route, without ``serving``)."""
    router: Router = HttpRouter()
    if serving is not None:
        router = WebhookRouter(url=serving.url, secret=SECRET, attempts=1, sleep=lambda _: None)
    store = RolloutStore.open(at.registry.url)
    controller = Controller(
        config=at.controller.config, registry=at.registry, store=store,
        sources={"events": IngestSource(at.ingest)}, routers={"table": router},
        clock=at.clock,
    )  # fmt: skip
    return controller, Guard(controller, GuardStore(store.engine))


class TestUnknownHeldRoute:
    def test_guard_rollback_whose_push_failed_reaches_serving_after_restart(
        self,
        world: World,  # noqa: F811 -- the imported fixture
        serving: Serving,
    ) -> None:
        """Serving holds v1.1.0; the guard rolls back while the receiver is down (its push
        fails); after a restart the webhook router knows nothing, yet the route to
        v1.0.0 goes out with a revision above the held one and serving takes it."""
        controller, guard = _daemon(world, serving)
        assert controller.reconcile_routers() == {}
        assert serving.versions() == ["v1.1.0"]
        held = serving.routes["fraud"].revision
        serving.down = True
        world.bad("v1.1.0")
        (verdict,) = guard.run_once()
        assert verdict.action == "rollback"
        assert world.prod() == "v1.0.0"
        assert controller.reconcile_routers() != {}  # still down
        serving.down = False
        restarted, _ = _daemon(world, serving)  # a restart: the router remembers nothing
        assert restarted.reconcile_routers() == {}
        assert serving.versions() == ["v1.0.0"]
        assert serving.routes["fraud"].revision == held + 1
        posted = len(serving.posted)
        assert restarted.reconcile_routers() == {}  # settled: nothing more to push
        assert len(serving.posted) == posted
        again, _ = _daemon(world, serving)  # another restart: the same route, not a new one
        assert again.reconcile_routers() == {}
        assert serving.routes["fraud"].revision == held + 1
        assert serving.posted[-1] == serving.routes["fraud"]

    def test_guard_rollback_after_restart_with_serving_unknown(
        self,
        world: World,  # noqa: F811 -- the imported fixture
        serving: Serving,
    ) -> None:
        """The reviewer's case: the daemon restarted (its router knows nothing) and the
        guard rolls back; the push goes above the revision serving holds."""
        first, _ = _daemon(world, serving)
        assert first.reconcile_routers() == {}
        held = serving.routes["fraud"]
        controller, guard = _daemon(world, serving)
        world.bad("v1.1.0")
        (verdict,) = guard.run_once()
        assert verdict.action == "rollback"
        assert serving.versions() == ["v1.0.0"]
        assert serving.routes["fraud"].revision > held.revision
        assert controller.router_errors == {}

    def test_http_router_after_a_crash_between_rollback_and_push(
        self,
        world: World,  # noqa: F811 -- the imported fixture
    ) -> None:
        """An alert's rollback was committed in the registry and the daemon died before
        routing it; the restarted daemon's http router (empty) publishes the route to
        v1.0.0 above the revision pollers last saw, not at it."""
        first, _ = _daemon(world, None)
        assert first.reconcile_routers() == {}
        seen = first.routers["table"].read("fraud")
        assert seen is not None
        world.registry.rollback("fraud", reason="alert FraudErrors", actor="alert:0")
        restarted, _ = _daemon(world, None)
        assert restarted.reconcile_routers() == {}
        published = restarted.routers["table"].read("fraud")
        assert published is not None
        assert [b.version for b in published.backends] == ["v1.0.0"]
        assert published.revision > seen.revision

    def test_a_route_taken_without_confirmation_is_not_reused(
        self,
        world: World,  # noqa: F811 -- the imported fixture
        serving: Serving,
    ) -> None:
        """The guard's rollback to v1.1.0 reaches serving but its answer is lost; the
        next production change (an alert's rollback to v1.0.0) must go above the
        revision of the route serving took, not just above the last confirmed one."""
        register(world.registry, world.tmp, "fraud", "1.2.0", "production")
        controller, guard = _daemon(world, serving)
        assert controller.reconcile_routers() == {}
        assert serving.versions() == ["v1.2.0"]
        serving.lose_answers = True
        world.bad("v1.2.0")
        (verdict,) = guard.run_once()
        assert verdict.action == "rollback"
        assert serving.versions() == ["v1.1.0"]  # taken, though the controller saw a 503
        serving.lose_answers = False
        alert = AlertAction("rollback", "fraud", None, "r0", "FraudErrors", "fp",
                            world.clock(), "errors")  # fmt: skip
        outcome = controller.handle_alert(alert)
        assert outcome["acted"], outcome
        assert world.prod() == "v1.0.0"
        assert serving.versions() == ["v1.0.0"]
