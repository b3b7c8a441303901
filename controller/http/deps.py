"""What the API serves from, and the readiness answer, apart from the web framework.

The daemon answers ``/readyz`` and the hot reads before FastAPI is even imported
(``controller.http.fast``), so what they need lives here, free of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from controller.adapters.alert_ledger import AlertLedger
    from controller.adapters.guard_store import GuardStore
    from controller.adapters.routers.http import HttpRouter
    from controller.http.auth import TokenStore
    from controller.shell.controller import Controller
    from monitors import IngestStore
    from monitors.alerts import AlertIntake

__all__ = ["ApiDeps", "readiness"]


@dataclass
class ApiDeps:
    """What the API needs; the daemon builds them, tests inject their own."""

    controller: Controller
    metrics: CollectorRegistry
    ingest: IngestStore | None = None
    http_routers: list[HttpRouter] = field(default_factory=list)
    ready: Callable[[], bool] = lambda: True
    alerts: AlertIntake | None = None
    tokens: TokenStore | None = None  # None: no authentication (a loopback-only daemon)
    alert_ledger: AlertLedger | None = None  # keeps alert dedup across restarts
    guard: GuardStore | None = None  # what the production guard knows (GET /v1/guard)
    # What each recent alert action did (the dashboard's alerts page), newest last;
    # this process's deliveries only, and only since it started.
    recent_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    max_body_bytes: int = 1_048_576  # every route but ingest; see controller.http.limits
    max_ingest_body_bytes: int = 67_108_864


def readiness(deps: ApiDeps) -> tuple[int, dict[str, Any]]:
    """``/readyz``: 200 once started, every router taking routes and (several daemons)
    the leases renewed; else 503 with the same body naming what fails."""
    controller = deps.controller
    errors = controller.failing_routers()
    membership = controller.membership
    lease_error = membership.last_error if membership is not None else None
    ready = deps.ready() and not errors and lease_error is None
    body: dict[str, Any] = {"ready": ready, "started": deps.ready(), "router_errors": errors}
    if membership is not None:  # several daemons: this member's leases
        body["ha"] = {"member": membership.member, "shards": len(membership.owned()),
                      "error": lease_error}  # fmt: skip
    return (200 if ready else 503), body
