"""The routers' contract: the protocol every router kind implements, and their registry.

A ``Route`` (``serving.route``) is the desired split for one model: versions with
integer weights in percent (summing to 100) and the artifact digest serving must load. Routers are
narrow: ``set`` pushes one model's route, ``read`` reads back what serving has
(so the daemon can reconcile on start and detect drift). Routers are registered
by the ``kind:`` string used in config; an unknown kind is a configuration error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from serving.route import Route

__all__ = [
    "ROUTERS",
    "Router",
    "RouterError",
    "RouterFactory",
    "UnknownRouterKind",
    "build_router",
    "register_router",
]


class RouterError(Exception):
    """A router could not apply or read a route; the daemon retries and reports it."""


class UnknownRouterKind(ValueError):
    """A config names a router kind nobody registered."""


@runtime_checkable
class Router(Protocol):
    """Pushes desired routes to serving and reads back what serving has."""

    def set(self, route: Route) -> None:
        """Apply ``route``; raise ``RouterError`` if serving did not take it."""

    def read(self, model: str) -> Route | None:
        """What serving currently has for ``model`` (None: nothing yet)."""


RouterFactory = Callable[[Mapping[str, Any]], Router]
ROUTERS: dict[str, RouterFactory] = {}


def register_router(kind: str) -> Callable[[RouterFactory], RouterFactory]:
    """Decorator: make ``kind:`` in config build a router with this factory."""

    def wrap(factory: RouterFactory) -> RouterFactory:
        if kind in ROUTERS:
            raise ValueError(f"router kind {kind!r} is registered twice")
        ROUTERS[kind] = factory
        return factory

    return wrap


def build_router(kind: str, options: Mapping[str, Any]) -> Router:
    factory = ROUTERS.get(kind)
    if factory is None:
        known = ", ".join(sorted(ROUTERS)) or "none"
        raise UnknownRouterKind(f"unknown router kind {kind!r}; known kinds: {known}")
    return factory(options)
