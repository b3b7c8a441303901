"""``modelreg ui``: the dashboard over a registry without a daemon, read-only.

The same pages as the daemon's ``/ui/``, on an app that has nothing else: no API,
no action routes, no buttons. Nothing is written to the registry's database: its
rollouts are shown when a daemon's tables are there at this version's schema, and
otherwise the dashboard shows the registry alone (its rollout store is an empty one
in memory, never a migration of the user's database).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request, Response
from prometheus_client import CollectorRegistry

from controller.adapters.rollout_store import RolloutStore
from controller.config import parse_config
from controller.http.access import AccessCheck
from controller.http.deps import ApiDeps
from controller.http.problems import install
from controller.http.ui.routes import mount
from controller.shell.controller import Controller
from registry import ModelRegistry
from registry.db import make_engine

__all__ = ["read_only_app"]


def read_only_app(registry: ModelRegistry) -> FastAPI:
    """The dashboard's pages over ``registry``, read-only, without authentication (the
    command listens on loopback unless told otherwise)."""
    engine = make_engine(registry.url, create=False)
    if RolloutStore.up_to_date(engine):
        store = RolloutStore(engine, migrated=False)
    else:  # no daemon ran here (or an older one): the registry alone
        engine.dispose()
        memory = sa.create_engine(
            "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )  # one connection for every thread: the same (empty) database
        store = RolloutStore(memory)
    controller = Controller(
        # A config needs a router; no model names it, and nothing here pushes a route.
        config=parse_config(
            {"routers": {"unused": {"kind": "file", "options": {"path": "unused.json"}}}},
            where="modelreg ui",
        ),
        registry=registry,
        store=store,
        sources={},
        routers={},
        clock=lambda: datetime.now(UTC),
    )
    deps = ApiDeps(controller=controller, metrics=CollectorRegistry())
    app = FastAPI(title="modelreg dashboard (read-only)", openapi_url=None, docs_url=None,
                  redoc_url=None)  # fmt: skip
    install(app)
    app.add_middleware(AccessCheck, tokens=lambda: None, routes=lambda: app.routes)

    async def refused(
        request: Request, rollout_id: int, action: str, body: Any, key: str | None
    ) -> Response:
        raise HTTPException(405, "the read-only dashboard (modelreg ui) cannot act")

    mount(app, deps, act=refused, action_bodies={}, read_only=True)
    return app
