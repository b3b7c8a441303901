"""Moved: the route contract is ``serving.route`` (``Route``, ``Backend``) and the router
protocol and registry are ``controller.adapters.routing``. This alias keeps custom
routers written against ``controller.routing`` working for one release, with a
``DeprecationWarning``."""

from __future__ import annotations

import warnings

from controller.adapters.routing import (
    ROUTERS,
    Router,
    RouterError,
    UnknownRouterKind,
    build_router,
    register_router,
)
from serving.route import Backend, Route

__all__ = [
    "ROUTERS",
    "Backend",
    "Route",
    "Router",
    "RouterError",
    "UnknownRouterKind",
    "build_router",
    "register_router",
]

warnings.warn(
    "controller.routing moved: Route and Backend to serving.route, routers to "
    "controller.adapters.routing",
    DeprecationWarning,
    stacklevel=2,
)
