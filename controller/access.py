"""Which role each API route needs, checked before the request body is parsed.

One rule for every route, so that a route added later is guarded by default:
reads (GET, HEAD) need ``reader``; writes need ``deployer``; approving or
rejecting a rollout needs ``approver``; the alert intake needs ``alerts``. Routes tagged ``health``
(``/healthz``, ``/readyz``, ``/metrics``) are open, so that probes and scrapers
need no token.

Why a dependency of the whole app and not only checks inside the handlers:
FastAPI validates a body before the handler runs, so an anonymous or
under-privileged caller would otherwise be told 422 about the body's fields
instead of 401 or 403.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.routing import APIRoute

from controller.auth import Role, TokenStore, authorize

__all__ = ["OPEN_TAG", "guard", "required_role"]

OPEN_TAG = "health"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_APPROVALS = frozenset({"approve", "reject"})


def required_role(method: str, path: str, path_params: dict[str, str]) -> Role:
    """The role a request to the route ``path`` (its template) with ``method`` needs."""
    if path == "/v1/alerts":
        return Role.ALERTS
    if method.upper() in _READS:
        return Role.READER
    if path == "/v1/rollouts/{rollout_id}/{action}" and path_params.get("action") in _APPROVALS:
        return Role.APPROVER
    return Role.DEPLOYER


def guard(tokens: Callable[[], TokenStore | None]) -> Callable[[Request], None]:
    """An app-wide dependency: 401 without a known token, 403 without the route's role."""

    def check(request: Request) -> None:
        store = tokens()
        route = request.scope.get("route")
        if store is None or not isinstance(route, APIRoute) or OPEN_TAG in route.tags:
            return
        role = required_role(request.method, route.path, dict(request.path_params))
        authorize(store.authenticate(request.headers.get("authorization")), role)

    return check
