"""Which role each API route needs, checked before the request body is parsed.

One rule for every route, so that a route added later is guarded by default:
reads (GET, HEAD) need ``reader``; writes need ``deployer``; approving or
rejecting a rollout needs ``approver``; the alert intake needs ``alerts``. Routes tagged ``health``
(``/healthz``, ``/readyz``, ``/metrics``) are open, so that probes and scrapers
need no token. The API's description (``/openapi.json``, ``/docs``, ``/redoc``) is a
read like the others: with tokens on, it needs ``reader``.

Why a pure-ASGI middleware and not a FastAPI dependency: FastAPI reads and
decodes a body before any dependency runs, so an anonymous caller sending broken
JSON would be told 422 about the body instead of 401. The middleware matches the
route itself (the same templates FastAPI routes by) and answers 401/403 before a
byte of the body is read.

The check runs once per request: the middleware records who passed it in the
request's state, and a handler that needs the caller (approve and reject act as the
token's identity) reads it with ``caller`` instead of authenticating again. One
check means one place where a route's role is decided, and one token lookup per
request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.http.auth import (
    AuthError,
    Principal,
    Role,
    TokenStore,
    Unauthorized,
    authorize,
)
from controller.http.problems import problem

__all__ = ["OPEN_TAG", "AccessCheck", "caller", "required_role"]

OPEN_TAG = "health"
UI_TAG = "ui"  # the dashboard's pages: the session cookie stands for the bearer header
UI_OPEN_TAG = "ui-open"  # sign-in, sign-out and static files: open like the probes
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_APPROVALS = frozenset({"approve", "reject"})
_PRINCIPAL = "principal"  # the key in the ASGI scope's "state" (request.state.principal)
_UNSET = object()


def required_role(method: str, path: str) -> Role:
    """The role a request to the route ``path`` (its template) with ``method`` needs."""
    if path == "/v1/alerts":
        return Role.ALERTS
    if method.upper() in _READS:
        return Role.READER
    prefix, _, action = path.rpartition("/")
    if (
        prefix in ("/v1/rollouts/{rollout_id}", "/ui/rollouts/{rollout_id}")
        and action in _APPROVALS
    ):
        return Role.APPROVER
    return Role.DEPLOYER


class AccessCheck:
    """ASGI middleware: 401 without a known token, 403 without the route's role.

    ``tokens`` is called per request (None: authentication is off, everything
    passes); ``routes`` gives the application's routes to match against. A path no
    route matches passes through, to get the application's own 404 or 405. Every
    HTTP request it lets through carries the caller in its state (see ``caller``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Callable[[], TokenStore | None],
        routes: Callable[[], Sequence[BaseRoute]],
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        store = self.tokens()
        matched = _match(self.routes(), scope) if store is not None else None
        principal: Principal | None = None
        tags = matched[0] if matched is not None else ()
        if store is not None and matched is not None and not {OPEN_TAG, UI_OPEN_TAG} & set(tags):
            role = required_role(scope["method"], matched[1])
            headers = Headers(scope=scope)
            credential = headers.get("authorization")
            if credential is None and UI_TAG in tags:
                credential = _session_bearer(headers)
            try:
                principal = authorize(store.authenticate(credential), role)
            except AuthError as exc:
                if UI_TAG in tags:
                    await _ui_refusal(exc, scope, receive, send)
                    return
                extra = (
                    {"WWW-Authenticate": Unauthorized.www_authenticate}
                    if exc.status_code == 401
                    else None
                )
                reply = problem(exc.status_code, exc.message, headers=extra)
                await reply(scope, receive, send)
                return
        scope.setdefault("state", {})[_PRINCIPAL] = principal
        await self.app(scope, receive, send)


def _session_bearer(headers: Headers) -> str | None:
    """The dashboard's session cookie as a bearer credential (see ``ui.session``)."""
    from starlette.requests import cookie_parser  # noqa: PLC0415

    from controller.http.ui.session import COOKIE  # noqa: PLC0415 -- the UI loads on its first page

    value = cookie_parser(headers.get("cookie", "")).get(COOKIE)  # as request.cookies reads it
    return f"Bearer {value}" if value else None


async def _ui_refusal(exc: AuthError, scope: Scope, receive: Receive, send: Send) -> None:
    """A page asked for without a session goes to sign-in (and back after it); a
    signed-in person without the role is told so on a page, not in JSON."""
    from urllib.parse import quote  # noqa: PLC0415

    from starlette.responses import HTMLResponse, RedirectResponse  # noqa: PLC0415

    if exc.status_code == 401 and scope["method"] in _READS:
        target = scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"]
                                  else "")  # fmt: skip
        reply: Response = RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
    else:
        from html import escape  # noqa: PLC0415

        reply = HTMLResponse(
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused'
            f"</title></head><body><h1>Refused</h1><p>{escape(exc.message)}</p>"
            '<p><a href="/ui/">Back to the dashboard</a> · <a href="/ui/login">Sign in as '
            "someone else</a></p></body></html>",
            status_code=exc.status_code,
        )
    await reply(scope, receive, send)


def caller(request: Request) -> Principal | None:
    """Who ``AccessCheck`` let ``request`` through as; None when authentication is off
    (or the route is open).

    A request that did not pass ``AccessCheck`` is a wiring error, raised as
    ``RuntimeError`` (a 500): guessing instead, say from a body's ``actor``, would let
    a caller name someone else.
    """
    principal = getattr(request.state, _PRINCIPAL, _UNSET)
    if principal is _UNSET:
        raise RuntimeError(
            f"{request.method} {request.url.path} did not pass AccessCheck: no caller recorded"
        )
    if principal is not None and not isinstance(principal, Principal):
        raise RuntimeError(f"request.state.{_PRINCIPAL} is not a Principal: {principal!r}")
    return principal


def _match(routes: Sequence[BaseRoute], scope: Scope) -> tuple[Sequence[str], str] | None:
    """The tags and path template of the route ``scope`` fully matches
    (path and method). The framework's own routes (``/openapi.json``, ``/docs``,
    ``/redoc``) have no tags: they are reads like any other, and need ``reader``."""
    for route in routes:
        if isinstance(route, Route):  # APIRoute is one
            match, _ = route.matches(scope)
            if match is Match.FULL:
                tags = route.tags if isinstance(route, APIRoute) else ()
                return [str(tag) for tag in tags], route.path
    return None
