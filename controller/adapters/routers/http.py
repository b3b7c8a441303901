"""``kind: http``: serving pulls routes from the daemon (``GET /v1/routes/{model}``).

The router keeps the current route of every model in memory; the daemon's API
serves it with an ETag (the route's revision and a hash of its content), so
serving code polling every second costs one 304 when nothing changed. The
in-memory table is rebuilt from the database when the daemon starts
(reconciliation), so it never needs a file of its own.
"""

from __future__ import annotations

import hashlib
import json
import threading

from controller.adapters.routing import RouterOptions, register_router
from serving.route import Route

__all__ = ["HttpOptions", "HttpRouter", "etag_of"]


class HttpOptions(RouterOptions):
    """``kind: http`` takes no options: the daemon's API publishes the routes."""


def etag_of(route: Route) -> str:
    """A strong ETag for the route's content."""
    body = json.dumps(route.to_dict(), sort_keys=True).encode()
    return '"' + f"{route.revision}-" + hashlib.sha256(body).hexdigest()[:16] + '"'


class HttpRouter:
    """An in-memory route table that the daemon's HTTP API publishes."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[Route, str]] = {}
        self._lock = threading.Lock()

    def set(self, route: Route) -> None:
        with self._lock:
            self._routes[route.model] = (route, etag_of(route))

    def read(self, model: str) -> Route | None:
        found = self._routes.get(model)
        return found[0] if found else None

    def published(self, model: str) -> tuple[Route, str] | None:
        """The route and its ETag, for the API."""
        return self._routes.get(model)


@register_router("http", options=HttpOptions)
def build_http_router(options: HttpOptions) -> HttpRouter:
    """The factory for ``kind: http``."""
    return HttpRouter()
