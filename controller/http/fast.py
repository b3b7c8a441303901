"""What the daemon serves: the hot reads in raw ASGI, in front of the FastAPI application.

Serving code asks ``GET /v1/models/{name}/resolve`` and routers' clients poll
``GET /v1/routes/{model}`` (mostly answered 304) far more often than anything else,
and probes ask ``/healthz`` and ``/readyz``. Through FastAPI each costs its routing,
dependency solving, validation and response machinery: most of a request's time
when the answer is a cached dict lookup. ``FastReads`` answers the successful case
of these reads itself and hands every other request, and every request it cannot
answer exactly as the application would, to the application unchanged: an unknown
model, a bad name, an unexpected query parameter, a missing token or role. The
application then gives the full answer (404, 422, 401, 403 problem documents), so
the two agree by construction: the fast path only ever says what the application
would say on success (``tests/controller/http/test_fast_reads.py`` compares them
byte for byte). Authentication is the same: with tokens on, the caller must hold
``reader`` (``controller.http.access`` gives these routes that role too).

The application itself is built by ``DeferredApp`` in a worker thread: importing
FastAPI and building its routes takes about 0.4 s, which neither readiness nor the
hot reads wait for. A request that needs the application before it is built waits
for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from controller.http.auth import Role
from controller.http.deps import ApiDeps, readiness

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DeferredApp", "FastReads", "build_api"]

_STAGES = frozenset({"dev", "staging", "production", "archived"})
_RESOLVE_PREFIX = "/v1/models/"
_RESOLVE_SUFFIX = "/resolve"
_ROUTES_PREFIX = "/v1/routes/"
_HEALTHZ = b'{"status":"ok"}'
_JSON = b"application/json"


def build_api(deps: ApiDeps) -> ASGIApp:
    """The FastAPI application over ``deps``, importing FastAPI only now."""
    from controller.http.app import create_app  # noqa: PLC0415 -- the point: not at start

    return create_app(deps)


class DeferredApp:
    """An ASGI application built once, in a worker thread, on ``start()`` or first need."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._built: concurrent.futures.Future[ASGIApp] = concurrent.futures.Future()
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Begin building in the background (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="api-build", daemon=True).start()

    def _run(self) -> None:
        try:
            self._built.set_result(self._build())
        except BaseException as exc:  # handed to every request that needs the app
            self._built.set_exception(exc)

    def wait(self, timeout: float | None = None) -> ASGIApp:
        """The built application (starting the build if nobody has)."""
        self.start()
        return self._built.result(timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._built.done():
            app = self._built.result()
        else:
            self.start()
            app = await asyncio.wrap_future(self._built)
        await app(scope, receive, send)


def _body(payload: Any) -> bytes:
    # As FastAPI's JSONResponse renders it, so the two paths answer the same bytes.
    return json.dumps(
        payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def _send(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    head = list(headers)
    if status != 304:  # as Starlette: a 304 has neither length nor type
        head += [(b"content-length", str(len(body)).encode("ascii")), (b"content-type", _JSON)]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class FastReads:
    """ASGI application answering the hot reads and probes, the rest by ``app``.

    ``deps`` is read per request (a reload may replace its tokens and routers)."""

    def __init__(self, app: ASGIApp | DeferredApp, deps: ApiDeps) -> None:
        self.app = app
        self.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        answered = False
        if path == "/healthz" and not scope["query_string"]:
            await _send(send, 200, _HEALTHZ)
            answered = True
        elif path == "/readyz" and not scope["query_string"]:
            status, body = readiness(self.deps)
            await _send(send, status, _body(body))
            answered = True
        elif path.startswith(_RESOLVE_PREFIX) and path.endswith(_RESOLVE_SUFFIX):
            answered = await self._resolve(scope, send, path)
        elif path.startswith(_ROUTES_PREFIX):
            answered = await self._route(scope, send, path)
        if not answered:
            await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        """Whether the caller may read; False hands the request to the application,
        whose access check gives the 401 or 403."""
        store = self.deps.tokens
        if store is None:
            return True
        principal = store.authenticate(_header(scope, b"authorization"))
        return principal is not None and principal.has(Role.READER)

    async def _resolve(self, scope: Scope, send: Send, path: str) -> bool:
        name = path[len(_RESOLVE_PREFIX) : -len(_RESOLVE_SUFFIX)]
        stage = _stage(scope["query_string"])
        if not name or "/" in name or stage is None or not self._allowed(scope):
            return False
        try:
            found = self.deps.controller.registry.resolve(name, stage)
        except Exception:  # the application answers it, with its problem document
            return False
        body = _body({
            "name": found.name,
            "version": str(found.version),
            "stage": found.stage,
            "digest": found.artifact_digest,
            "artifact": found.artifact_name,
        })  # fmt: skip
        await _send(send, 200, body)
        return True

    async def _route(self, scope: Scope, send: Send, path: str) -> bool:
        model = path[len(_ROUTES_PREFIX) :]
        if not model or "/" in model or scope["query_string"] or not self._allowed(scope):
            return False
        for router in self.deps.http_routers:
            published = router.published(model)
            if published is None:
                continue
            current, etag = published
            headers = [(b"etag", etag.encode("latin-1")), (b"cache-control", b"no-cache")]
            if _header(scope, b"if-none-match") == etag:
                await _send(send, 304, b"", headers)
            else:
                await _send(send, 200, _body(current.to_dict()), headers)
            return True
        return False


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``Headers`` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _stage(query: bytes) -> str | None:
    """The stage of an empty query or exactly ``stage=<a stage>``; None for anything
    else (a typo, another parameter, a repeat), which the application judges."""
    if not query:
        return "production"
    key, sep, value = query.decode("latin-1").partition("=")
    stage = unquote(value)
    if key != "stage" or not sep or "&" in value or stage not in _STAGES:
        return None
    return stage
