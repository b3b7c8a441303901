"""``controller.http.fast`` answers the hot reads without FastAPI; every answer must be
the one the application gives. Each request below goes through the daemon's app with
the fast path and through the same app without it, and the two answers are compared:
status, body bytes and the headers a client reads."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.adapters.routers.http import HttpRouter
from controller.http.app import ApiDeps, create_app
from controller.http.auth import TokenStore, hash_token
from controller.http.fast import DeferredApp, FastReads, build_api
from serving.route import Backend, Route

from ..approval_support import Loop, make_loop

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient asks for httpx2
    from fastapi.testclient import TestClient

PEOPLE = {
    "reader": (["reader"], "mrt_" + "r" * 40),
    "deployer": (["deployer"], "mrt_" + "d" * 40),
    "alerts": (["alerts"], "mrt_" + "x" * 40),
}
HEADERS = ("content-type", "content-length", "etag", "cache-control", "www-authenticate")


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


def _tokens() -> TokenStore:
    return TokenStore.from_mapping(
        {"tokens": [{"identity": who, "roles": roles, "hash": hash_token(token)}
                    for who, (roles, token) in PEOPLE.items()]}
    )  # fmt: skip


def _router() -> HttpRouter:
    router = HttpRouter()
    route = Route(model="fraud", backends=(Backend("1.0.0", 90), Backend("1.1.0", 10)), salt="s")
    router.set(route)
    return router


def _apps(loop: Loop, tokens: TokenStore | None) -> tuple[ASGIApp, FastAPI]:
    """The daemon's served app (``FastReads`` over a deferred application) and the
    plain application, each over its own deps (each registers its metrics)."""
    assert loop.controller is not None
    controller, router = loop.controller, _router()

    def deps() -> ApiDeps:
        return ApiDeps(controller=controller, metrics=CollectorRegistry(), tokens=tokens,
                       http_routers=[router])  # fmt: skip

    served = deps()
    return FastReads(DeferredApp(partial(build_api, served)), served), create_app(deps())


def _answer(client: TestClient, path: str, headers: dict[str, str]) -> tuple[object, ...]:
    r = client.get(path, headers=headers)
    return (r.status_code, r.content, *(r.headers.get(h) for h in HEADERS))


def _compare(fast: ASGIApp, slow: FastAPI, path: str, headers: dict[str, str]) -> int:
    with TestClient(fast) as a, TestClient(slow) as b:
        answer = _answer(a, path, headers)
        assert answer == _answer(b, path, headers), path
    status = answer[0]
    assert isinstance(status, int)
    return status


READS = [
    ("/healthz", 200),
    ("/readyz", 200),
    ("/v1/models/fraud/resolve", 200),
    ("/v1/models/fraud/resolve?stage=production", 200),
    ("/v1/models/fraud/resolve?stage=staging", 404),
    ("/v1/models/nobody/resolve", 404),
    ("/v1/models/bad%20name!/resolve", 404),
    ("/v1/models/fraud/resolve?stage=prod", 422),
    ("/v1/models/fraud/resolve?stage=", 422),
    ("/v1/models/fraud/resolve?stage=production&x=1", 200),
    ("/v1/models/fraud%2Fx/resolve", 404),
    ("/v1/routes/fraud", 200),
    ("/v1/routes/nobody", 404),
    ("/v1/routes/fraud?x=1", 200),
]


@pytest.mark.parametrize(("path", "status"), READS)
def test_without_tokens_both_paths_answer_alike(loop: Loop, path: str, status: int) -> None:
    fast, slow = _apps(loop, None)
    assert _compare(fast, slow, path, {}) == status


@pytest.mark.parametrize(
    ("who", "status"), [(None, 401), ("alerts", 403), ("reader", 200), ("deployer", 200)]
)
@pytest.mark.parametrize("path", ["/v1/models/fraud/resolve", "/v1/routes/fraud"])
def test_with_tokens_both_paths_answer_alike(
    loop: Loop, path: str, who: str | None, status: int
) -> None:
    fast, slow = _apps(loop, _tokens())
    headers = {"Authorization": f"Bearer {PEOPLE[who][1]}"} if who else {}
    assert _compare(fast, slow, path, headers) == status


def test_a_route_answers_304_with_its_etag(loop: Loop) -> None:
    fast, slow = _apps(loop, None)
    etag = TestClient(fast).get("/v1/routes/fraud").headers["etag"]
    assert _compare(fast, slow, "/v1/routes/fraud", {"If-None-Match": etag}) == 304
    assert _compare(fast, slow, "/v1/routes/fraud", {"If-None-Match": '"other"'}) == 200


def test_the_fast_path_answers_its_reads_itself(loop: Loop) -> None:
    """The application below never sees a successful resolve, route or probe (so the
    comparisons above compare two paths, not one path twice)."""
    assert loop.controller is not None
    seen: list[str] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    deps = ApiDeps(controller=loop.controller, metrics=CollectorRegistry(), tokens=_tokens(),
                   http_routers=[_router()])  # fmt: skip
    token = {"Authorization": f"Bearer {PEOPLE['reader'][1]}"}
    client = TestClient(FastReads(record, deps))  # no lifespan: the daemon runs none
    assert client.get("/v1/models/fraud/resolve", headers=token).status_code == 200
    assert client.get("/v1/routes/fraud", headers=token).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert seen == []
    assert client.get("/v1/models/fraud/resolve").status_code == 418  # no token
    assert client.get("/v1/models/nobody/resolve", headers=token).status_code == 418
    assert client.post("/v1/models/fraud/resolve", headers=token).status_code == 418
    assert seen == [  # what it could not answer as the application would, and the POST
        "/v1/models/fraud/resolve",
        "/v1/models/nobody/resolve",
        "/v1/models/fraud/resolve",
    ]


class TestDeferredApp:
    def test_a_request_before_the_build_waits_for_it(self) -> None:
        gate = threading.Event()

        def build() -> ASGIApp:
            gate.wait(10)
            return PlainTextResponse("built")

        deferred = DeferredApp(build)
        client = TestClient(deferred)
        threading.Timer(0.2, gate.set).start()
        assert client.get("/anything").text == "built"
        assert deferred.wait(0) is not None

    def test_a_failed_build_fails_each_request_that_needs_it(self) -> None:
        def build() -> ASGIApp:
            raise RuntimeError("broken wiring")

        deferred = DeferredApp(build)
        with pytest.raises(RuntimeError, match="broken wiring"):
            TestClient(deferred).get("/anything")
        with pytest.raises(RuntimeError, match="broken wiring"):
            deferred.wait(5)

    def test_the_build_runs_once(self) -> None:
        built: list[int] = []

        def build() -> ASGIApp:
            built.append(1)
            return PlainTextResponse("ok")

        deferred = DeferredApp(build)
        for _ in range(3):
            deferred.start()
        deferred.wait(5)
        assert TestClient(deferred).get("/").text == "ok"
        assert built == [1]
