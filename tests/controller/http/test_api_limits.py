"""The API's edges over real HTTP (uvicorn on a loopback port): body size limits,
no server-side path or URL taken from clients, and 401/403 on every route."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.adapters.routers.http import HttpRouter
from controller.config import AlertRoute
from controller.http.access import OPEN_TAG, UI_OPEN_TAG, UI_TAG
from controller.http.app import ApiDeps, create_app
from controller.http.auth import TokenStore, hash_token
from controller.http.limits import BodyLimit
from controller.shell.controller import Controller
from monitors import AlertIntake, IngestSource, IngestStore
from monitors.testing import free_port, wait_until
from registry import ModelRegistry
from tests.clock import Clock

from ..runtime.test_e2e import build_stack
from ..support import config, register

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMIT = 1024
INGEST_LIMIT = 64 * 1024
TOKENS = {"reader": "mrt_" + "r" * 40, "deployer": "mrt_" + "d" * 40,
          "approver": "mrt_" + "a" * 40, "alerts": "mrt_" + "x" * 40}  # fmt: skip


@dataclass
class Served:
    url: str
    app: FastAPI
    store: RolloutStore

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("limits")
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp / "home", actor="tester", clock=clock)
    register(registry, tmp, "fraud", "1.0.0", "production")
    register(registry, tmp, "fraud", "1.1.0", "staging")
    ingest = IngestStore.open(f"sqlite:///{tmp}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp / "routes.json"
    collector = CollectorRegistry()
    controller = Controller(
        config=config(tmp, routes, f"sqlite:///{tmp}/ingest.db"),
        registry=registry,
        store=store,
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=routes)},
        clock=clock,
        metrics=ControllerMetrics(collector),
    )
    entries = [{"identity": role, "roles": [role], "hash": hash_token(token)}
               for role, token in TOKENS.items()]  # fmt: skip
    rules = [AlertRoute(match={"alertname": "FraudErrors"}, action="rollback").rule(0)]
    app = create_app(
        ApiDeps(controller=controller, metrics=collector, ingest=ingest,
                http_routers=[HttpRouter()], alerts=AlertIntake(rules),
                tokens=TokenStore.from_mapping({"tokens": entries}),
                max_body_bytes=LIMIT, max_ingest_body_bytes=INGEST_LIMIT)
    )  # fmt: skip
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=20)
    yield Served(f"http://127.0.0.1:{port}", app, store)
    server.should_exit = True
    thread.join(timeout=10)
    ingest.close()
    store.close()
    registry.close()


def _events(n: int) -> dict[str, Any]:
    return {"events": [
        {"prediction_id": f"p{i}-{time.monotonic_ns()}", "model": "fraud", "version": "v1.0.0",
         "arm": "control", "unit_id": f"u{i}", "timestamp": 1.0e9, "latency_ms": 3.0,
         "error": False} for i in range(n)
    ]}  # fmt: skip


class TestBodyLimit:
    def test_declared_length_over_the_limit_is_413(self, served: Served) -> None:
        """A Content-Length over server.max_body_bytes is refused, naming limit and key."""
        body = {"model": "fraud", "version": "1.1.0", "reason": "x" * (2 * LIMIT)}
        reply = httpx.post(f"{served.url}/v1/rollouts", json=body,
                           headers=served.headers("deployer"), timeout=10)  # fmt: skip
        assert reply.status_code == 413, reply.text
        detail = reply.json()["detail"]
        assert f"the limit is {LIMIT} bytes" in detail
        assert "server.max_body_bytes" in detail
        assert "/v1/rollouts" in detail
        assert served.store.list_rollouts(model="fraud") == []  # nothing acted on it

    def test_chunked_body_over_the_limit_is_413(self, served: Served) -> None:
        """A body without Content-Length is counted as it streams and cut off."""

        def chunks() -> Iterator[bytes]:
            yield b'{"model": "fraud", "version": "1.1.0", "reason": "'
            for _ in range(8):
                yield b"y" * 512
            yield b'"}'

        reply = httpx.post(f"{served.url}/v1/rollouts", content=chunks(),
                           headers={**served.headers("deployer"),
                                    "Content-Type": "application/json"}, timeout=10)  # fmt: skip
        assert reply.status_code == 413, reply.text
        assert "more than 1024 bytes" in reply.json()["detail"]
        assert served.store.list_rollouts(model="fraud") == []

    def test_small_chunked_body_passes(self, served: Served) -> None:
        """The counting lets a chunked body under the limit through untouched: the
        handler reads the whole payload and answers it."""

        def chunks() -> Iterator[bytes]:
            yield b'{"version": "4", "receiver": "modelreg", "status": "firing",'
            yield b' "groupKey": "g", "alerts": []}'

        reply = httpx.post(f"{served.url}/v1/alerts", content=chunks(),
                           headers={**served.headers("alerts"),
                                    "Content-Type": "application/json"}, timeout=10)  # fmt: skip
        assert reply.request.headers["transfer-encoding"] == "chunked"
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"actions": [], "duplicates": 0, "unmatched": 0, "resolved": 0}

    def test_ingest_has_its_own_larger_limit(self, served: Served) -> None:
        """A batch over the default but under server.max_ingest_body_bytes is stored."""
        batch = _events(40)
        assert len(httpx.Request("POST", "/", json=batch).content) > LIMIT
        reply = httpx.post(f"{served.url}/v1/ingest/events", json=batch,
                           headers=served.headers("deployer"), timeout=10)  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"stored": 40}

    def test_ingest_over_its_limit_is_413(self, served: Served) -> None:
        """Past the ingest limit the batch is refused and nothing of it stored."""
        batch = _events(600)
        reply = httpx.post(f"{served.url}/v1/ingest/events", json=batch,
                           headers=served.headers("deployer"), timeout=10)  # fmt: skip
        assert reply.status_code == 413, reply.text
        assert "server.max_ingest_body_bytes" in reply.json()["detail"]
        assert f"the limit is {INGEST_LIMIT} bytes" in reply.json()["detail"]

    def test_limits_must_be_positive(self, served: Served) -> None:
        """A zero or negative limit is a configuration error, not 'no limit'."""
        with pytest.raises(ValueError, match="positive"):
            BodyLimit(served.app, default=0)
        with pytest.raises(ValueError, match="positive"):
            BodyLimit(served.app, default=10, per_prefix={"/v1/ingest/": -1})


# -- no server-side path or URL from a client -----------------------------------------

_SUSPECT = re.compile(r"path|url|uri|file|dir|folder|location|href|endpoint|host|socket",
                      re.IGNORECASE)  # fmt: skip
_SUSPECT_FORMATS = {"uri", "url", "iri", "uri-reference", "path", "file-path", "hostname"}


def client_fields(openapi: dict[str, Any]) -> list[str]:
    """Every input a client can send, as ``METHOD /path: where.name`` (bodies walked
    through ``$ref``s and nesting), with ``!format`` appended for string formats."""
    schemas = openapi.get("components", {}).get("schemas", {})
    found: list[str] = []

    def walk(schema: dict[str, Any], where: str, seen: frozenset[str]) -> None:
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas[name], where, seen | {name})
            return
        if schema.get("format") in _SUSPECT_FORMATS:
            found.append(f"{where}!{schema['format']}")
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                walk(sub, where, seen)
        if "items" in schema:
            walk(schema["items"], f"{where}[]", seen)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{where}.*", seen)
        for prop, sub in schema.get("properties", {}).items():
            found.append(f"{where}.{prop}")
            walk(sub, f"{where}.{prop}", seen)

    for path, operations in openapi["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                found.append(f"{where}: {param['in']}.{param['name']}")
                walk(param.get("schema", {}), f"{where}: {param['in']}.{param['name']}",
                     frozenset())  # fmt: skip
            for media in op.get("requestBody", {}).get("content", {}).values():
                walk(media.get("schema", {}), f"{where}: body", frozenset())
    return found


# Alertmanager's own fields, documented because its webhook carries them: links for
# people, which the daemon stores as text and never fetches
# (test_urls_in_an_alert_are_never_fetched below).
_ALERTMANAGER_LINKS = {"POST /v1/alerts: body.externalURL",
                       "POST /v1/alerts: body.alerts[].generatorURL"}  # fmt: skip


def suspects(fields: list[str]) -> list[str]:
    """The inputs whose name or format says path, URL or file."""
    out = []
    for field in fields:
        _, _, name = field.rpartition(".")
        if field in _ALERTMANAGER_LINKS:
            continue
        if "!" in field or _SUSPECT.search(name):
            out.append(field)
    return out


class TestNoServerSidePaths:
    def test_no_input_names_a_path_or_url(self, served: Served) -> None:
        """No parameter or body field (at any depth) of the live OpenAPI is a path/URL."""
        openapi = httpx.get(
            f"{served.url}/openapi.json", headers=served.headers("reader"), timeout=10
        ).json()
        fields = client_fields(openapi)
        assert len(fields) > 20  # the walk reached the bodies, not just the paths
        assert any(f.endswith("body.events[].prediction_id") for f in fields)
        assert suspects(fields) == []

    def test_the_check_catches_a_path_field(self) -> None:
        """The same walk flags a nested artifact path, a URL-format field and a query file."""
        doc = {
            "paths": {"/x": {"post": {
                "parameters": [{"in": "query", "name": "config_file", "schema": {}}],
                "requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Outer"}}}},
            }}},
            "components": {"schemas": {
                "Outer": {"properties": {"inner": {"items": {"$ref": "#/components/schemas/In"}},
                                         "callback": {"type": "string", "format": "uri"}}},
                "In": {"properties": {"artifact_path": {"type": "string"}}},
            }},
        }  # fmt: skip
        assert sorted(suspects(client_fields(doc))) == [
            "POST /x: body.callback!uri",
            "POST /x: body.inner[].artifact_path",
            "POST /x: query.config_file",
        ]


class _Counting(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Spy)
        server.hits += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _Spy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counting)
        self.hits = 0


class TestAlertUrlsAreData:
    def test_urls_in_an_alert_are_never_fetched(self, served: Served) -> None:
        """Alertmanager's payload carries URLs (externalURL, generatorURL); the daemon
        keeps them as text and never requests them."""
        spy = _Spy()
        threading.Thread(target=spy.serve_forever, daemon=True).start()
        try:
            here = f"http://127.0.0.1:{spy.server_address[1]}"
            payload = {
                "version": "4", "receiver": "modelreg", "status": "firing", "groupKey": "g",
                "externalURL": f"{here}/external",
                "alerts": [{"status": "firing", "fingerprint": "url1",
                            "startsAt": "2026-03-01T12:00:00Z", "generatorURL": f"{here}/gen",
                            "labels": {"alertname": "SomethingElse", "model": "fraud"}}],
            }  # fmt: skip
            reply = httpx.post(f"{served.url}/v1/alerts", json=payload,
                               headers=served.headers("alerts"), timeout=10)  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert reply.json()["unmatched"]
            assert spy.hits == 0
            httpx.get(f"{here}/probe", timeout=5)
            assert spy.hits == 1  # the spy does count requests that reach it
        finally:
            spy.shutdown()
            spy.server_close()


# -- 401 / 403 on every route -----------------------------------------------------------

_SAMPLES = {"name": "fraud", "model": "fraud", "version": "1.0.0", "rollout_id": "1",
            "request_id": "1"}  # fmt: skip
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


# What a reader gets from each read route of ``served``, by template: the handler's own
# answer, so a 500 (or a 404 from routing) cannot pass for "got past the guard".
_READ_ANSWERS = {
    "/v1/models/{name}/resolve": (200, None),
    "/v1/models": (200, None),
    "/v1/models/{name}": (200, None),
    "/v1/models/{name}/versions/{version}": (200, None),
    "/v1/models/{name}/history": (200, None),
    "/v1/rollouts": (200, None),
    "/v1/routes/{model}": (404, "no route published for 'fraud'"),
    "/v1/guard": (404, "the production guard is not running in this process"),
    "/v1/cluster": (404, "this daemon runs alone (ha.enabled is false)"),
    "/v1/requests/{request_id}": (404, "this daemon runs alone (ha.enabled is false)"),
    "/v1/rollouts/{rollout_id}": (404, "no rollout with id 1"),
    "/v1/rollouts/{rollout_id}/explain": (404, "no rollout with id 1"),
}


def _requests(app: FastAPI, *, ui: bool = False) -> list[tuple[str, str, str]]:
    """(method, concrete URL path, route template) for every guarded route and method of
    the API (``ui``: of the dashboard, whose session is a cookie)."""
    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or {OPEN_TAG, UI_OPEN_TAG} & set(route.tags):
            continue
        if (UI_TAG in route.tags) is not ui:
            continue
        for method in sorted(route.methods):
            path = re.sub(r"\{(\w+)\}", lambda m: _SAMPLES[m[1]], route.path)
            out.append((method, path, route.path))
    return out


class TestEveryRouteIsGuarded:
    def test_no_token_is_401_with_a_clear_body(self, served: Served) -> None:
        """Every non-health route refuses a request without a token (or with an unknown
        one) with 401, a JSON detail saying what to send and WWW-Authenticate."""
        requests = _requests(served.app)
        assert len(requests) >= 15
        assert {m for m, _, _ in requests} >= {"GET", "POST"}
        for method, path, _ in requests:
            for headers in ({}, {"Authorization": "Bearer mrt_" + "z" * 40}):
                reply = httpx.request(method, f"{served.url}{path}", headers=headers, timeout=10)
                assert reply.status_code == 401, (method, path, reply.text)
                assert "authentication required" in reply.json()["detail"], (method, path)
                assert reply.headers["www-authenticate"].startswith("Bearer"), (method, path)

    def test_reader_on_a_mutating_route_is_403(self, served: Served) -> None:
        """A reader token on every mutating route is 403 naming the missing role, before
        the body is looked at (so an empty body is not a 422)."""
        mutating = [r for r in _requests(served.app) if r[0] in _MUTATING]
        assert len(mutating) >= 7
        for method, path, _ in mutating:
            reply = httpx.request(method, f"{served.url}{path}", headers=served.headers("reader"),
                                  timeout=10)  # fmt: skip
            assert reply.status_code == 403, (method, path, reply.text)
            assert "'reader' lacks the" in reply.json()["detail"], (method, path)

    def test_wrong_role_table(self, served: Served) -> None:
        """Approve and reject need approver (deployer is 403), steering needs deployer (approver is
        403), alerts need the alerts role, and the alerts token reads nothing."""
        cases = [
            ("POST", "/v1/rollouts/1/approve", "deployer", "approver"),
            ("POST", "/v1/rollouts/1/reject", "deployer", "approver"),
            ("POST", "/v1/rollouts/1/pause", "approver", "deployer"),
            ("POST", "/v1/rollouts", "approver", "deployer"),
            ("POST", "/v1/alerts", "deployer", "alerts"),
            ("GET", "/v1/models", "alerts", "reader"),
            ("GET", "/v1/models/fraud/resolve", "alerts", "reader"),
        ]
        for method, path, role, missing in cases:
            reply = httpx.request(method, f"{served.url}{path}", headers=served.headers(role),
                                  timeout=10)  # fmt: skip
            assert reply.status_code == 403, (method, path, role, reply.text)
            assert f"{role!r} lacks the {missing} role" in reply.json()["detail"]

    def test_right_role_passes_the_guard(self, served: Served) -> None:
        """Reads with a reader token get past the guard to the handler, which answers:
        200, or its own 404 naming what is missing (no route, guard or rollout)."""
        reads = [r for r in _requests(served.app) if r[0] not in _MUTATING]
        assert {template for _, _, template in reads} == set(_READ_ANSWERS)
        for method, path, template in reads:
            reply = httpx.request(method, f"{served.url}{path}", headers=served.headers("reader"),
                                  timeout=10)  # fmt: skip
            status, detail = _READ_ANSWERS[template]
            assert reply.status_code == status, (method, path, reply.text)
            if detail is not None:
                assert reply.json()["detail"] == detail, (method, path)

    def test_role_comes_before_the_body(self, served: Served) -> None:
        """Without the role, what the body is does not matter: broken JSON and a body
        over the limit both get 401 (no token) or 403 (wrong role), never 422 or 413."""
        bodies = [b"{not json", b'{"reason": "' + b"x" * (2 * LIMIT) + b'"}']
        for body in bodies:
            for headers, status in (({}, 401), (served.headers("reader"), 403)):
                reply = httpx.post(f"{served.url}/v1/rollouts", content=body,
                                   headers={**headers, "Content-Type": "application/json"},
                                   timeout=10)  # fmt: skip
                assert reply.status_code == status, (len(body), reply.text)
        unknown = httpx.post(f"{served.url}/v1/nowhere", timeout=10)
        assert unknown.status_code == 404  # no route: the application's own answer

    def test_dashboard_pages_want_a_session(self, served: Served) -> None:
        """Every page of the dashboard without a session (or with an unknown one) sends
        a browser to sign in; every action is refused (401) and does nothing."""
        requests = _requests(served.app, ui=True)
        assert {m for m, _, _ in requests} == {"GET", "POST"}
        for method, path, _ in requests:
            for cookies in ({}, {"modelreg_session": "mrt_" + "z" * 40}):
                reply = httpx.request(method, f"{served.url}{path}", cookies=cookies, timeout=10)
                if method == "GET":
                    assert reply.status_code == 303, (method, path, reply.text)
                    assert reply.headers["location"].startswith("/ui/login?next=/ui"), path
                else:
                    assert reply.status_code == 401, (method, path, reply.text)
                    assert "authentication required" in reply.text, (method, path)

    def test_health_routes_are_open(self, served: Served) -> None:
        """Probes and scrapers need no token."""
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"{served.url}{path}", timeout=10).status_code == 200, path


@pytest.mark.slow
class TestDaemonWiresTheLimits:
    def test_config_limits_reach_the_daemon(self, tmp_path: Path) -> None:
        """server.max_body_bytes and server.max_ingest_body_bytes from the YAML file are
        what the daemon subprocess enforces."""
        s = build_stack(tmp_path)
        data = yaml.safe_load(s.config.read_text())
        data["server"].update(max_body_bytes=2048, max_ingest_body_bytes=4096)
        s.config.write_text(yaml.safe_dump(data))
        s.register("1.0.0", "production")
        s.start_daemon()
        try:
            body = {"model": "fraud", "version": "1.0.0", "reason": "x" * 3000}
            reply = httpx.post(f"{s.url}/v1/rollouts", json=body, timeout=10)
            assert reply.status_code == 413
            assert (
                "the limit is 2048 bytes (config server.max_body_bytes)" in (reply.json()["detail"])
            )
            reply = httpx.post(f"{s.url}/v1/ingest/events", json=_events(60), timeout=10)
            assert reply.status_code == 413
            assert (
                "the limit is 4096 bytes (config server.max_ingest_body_bytes)"
                in (reply.json()["detail"])
            )
            assert httpx.post(f"{s.url}/v1/ingest/events", json=_events(5),
                              timeout=10).status_code == 200  # fmt: skip
        finally:
            s.stop()
