"""Wiring several daemons on one database: this member's leases, its fence and metrics.

``join(config, store, controller, metrics)`` builds the member's ``Membership`` when
``ha.enabled``: every write of the rollout store, the production ledger and the guard's
table, and every registry stage move, is fenced by it, and the controller acts only
on the models of the shards it holds. The scheduler runs a lease round every third of the lease TTL
(``RolloutScheduler``); the daemon runs the first one before it reconciles the
routers, and gives every lease up on a clean stop.
"""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.adapters.leases import LeaseStore
from controller.adapters.request_store import RequestStore
from controller.adapters.rollout_store import RolloutStore
from controller.config import Config
from controller.shell.controller import Controller
from controller.shell.membership import Membership, RoundResult

__all__ = ["join"]


def join(
    config: Config, store: RolloutStore, controller: Controller, metrics: CollectorRegistry
) -> Membership | None:
    """This daemon's membership (None unless ``ha.enabled``), wired in (see above)."""
    ha = config.ha
    if not ha.enabled:
        return None
    port = config.server.listen.rpartition(":")[2]
    member = ha.member_id or f"{socket.gethostname()}:{port}"
    leases = LeaseStore(store.engine, member=member, shards=ha.shards, ttl=ha.lease_ttl)
    membership = Membership(leases, address=config.server.listen)
    owned = Gauge("modelreg_ha_shards_owned", "Shards this member holds.", registry=metrics)
    failures = Counter(
        "modelreg_ha_lease_renew_failures",
        "Lease rounds that could not reach the database, and leases lost before renewal.",
        registry=metrics,
    )
    takeovers = Counter("modelreg_ha_takeovers", "Shards this member acquired.", registry=metrics)
    refused = Counter(
        "modelreg_ha_refused_writes",
        "Writes the fence refused: this member no longer held the model's shard.",
        registry=metrics,
    )

    def record(result: RoundResult) -> None:
        owned.set(len(membership.owned()))
        takeovers.inc(len(result.acquired))
        if result.error is not None or result.lost:
            failures.inc()

    membership.on_round = record
    membership.on_refused = refused.inc
    store.fencing.fence = membership.fence
    store.fencing.member = member
    store.fencing.token = membership.token_of
    controller.registry.stage_guard = membership.fence  # stage moves are fenced too
    controller.membership = membership
    controller.requests = RequestStore(
        store.engine, fencing=store.fencing, shards=ha.shards, ttl=ha.request_ttl
    )
    return membership
