"""Two members on one database act on disjoint models: each starts, ticks and routes only
the models of the shards it holds, and a takeover moves the work (SQLite and the real
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.adapters.leases import LeaseStore
from controller.adapters.rollout_store import RolloutStore
from controller.shell.controller import Controller
from controller.shell.membership import Membership
from monitors import IngestStore
from registry import ModelRegistry
from tests.clock import Clock

from ..support import config, file_controller, register

MODELS = [f"m{i}" for i in range(8)]


@dataclass
class Pair:
    a: Controller
    b: Controller
    registry: ModelRegistry


def _member(controller: Controller, store: RolloutStore, name: str, ttl: float) -> None:
    membership = Membership(LeaseStore(store.engine, member=name, shards=16, ttl=ttl))
    store.fencing.fence = membership.fence
    controller.membership = membership


@pytest.fixture
def pair(tmp_path: Path, db_url: str) -> Iterator[Pair]:
    registry = ModelRegistry(url=db_url, home=tmp_path / "home")
    for model in MODELS:
        register(registry, tmp_path, model, "1.0.0", "production")
        register(registry, tmp_path, model, "1.1.0", "staging")
    routes = tmp_path / "routes.json"
    ingest_url = f"sqlite:///{tmp_path}/ingest.db"
    cfg = config(tmp_path, routes, ingest_url)
    cfg = cfg.model_copy(update={"models": dict.fromkeys(MODELS, cfg.models["fraud"])})
    ingest = IngestStore.open(ingest_url)
    stores = [RolloutStore.open(db_url), RolloutStore.open(db_url)]
    a, b = (file_controller(cfg, registry, s, ingest, routes, Clock()) for s in stores)
    _member(a, stores[0], "a", ttl=30.0)
    _member(b, stores[1], "b", ttl=30.0)
    for _ in range(2):
        for c in (a, b):
            assert c.membership is not None
            c.membership.round()
    yield Pair(a, b, registry)
    ingest.close()
    for s in stores:
        s.close()
    registry.close()


def test_each_member_starts_only_its_models(pair: Pair) -> None:
    started_a = {r.model for r in pair.a.watch_once()}
    started_b = {r.model for r in pair.b.watch_once()}
    assert started_a | started_b == set(MODELS)
    assert not started_a & started_b
    assert started_a == {m for m in MODELS if pair.a.owns(m)}


def test_a_tick_of_another_members_rollout_does_nothing(pair: Pair) -> None:
    pair.a.watch_once()
    pair.b.watch_once()
    theirs = next(r for r in pair.a.store.active() if not pair.a.owns(r.model))
    assert pair.a.reconcile_once(theirs.id, force=True) is None
    assert pair.a.store.decisions(theirs.id) == []
    assert pair.b.reconcile_once(theirs.id, force=True) is not None  # its owner acts


def test_an_operator_action_sent_to_another_member_is_refused_with_where_to_go(
    pair: Pair,
) -> None:
    """Until members forward requests, an action on a model this member does not own
    is refused whole (503, nothing written) and says to ask the owner."""
    import warnings

    from prometheus_client import CollectorRegistry

    from controller.http.app import ApiDeps, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    pair.a.watch_once()
    pair.b.watch_once()
    theirs = next(r for r in pair.a.store.active() if not pair.a.owns(r.model))
    app = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    with TestClient(app) as client:
        answer = client.post(f"/v1/rollouts/{theirs.id}/abort", json={"reason": "x"})
    assert answer.status_code == 503
    assert "GET /v1/cluster" in answer.json()["detail"]
    assert pair.a.store.get(theirs.id).phase == theirs.phase  # nothing written
    assert pair.a.store.decisions(theirs.id) == []


def test_a_member_does_not_push_routes_for_a_model_it_does_not_own(pair: Pair) -> None:
    """Even when its cache says the route was already stored, a push checks the fence
    before it touches the router."""
    from controller.adapters.leases import Fenced
    from serving.route import Backend, Route

    theirs = next(m for m in MODELS if not pair.a.owns(m))
    route = Route(theirs, (Backend("v9.9.9", 100),), revision=10**6)
    pair.b.store.record_pushed(route, now=Clock()())  # the owner stored it (not pushed)
    before = pair.a.routers["table"].read(theirs)
    assert before != route
    with pair.a.actuator.lock(theirs), pytest.raises(Fenced):
        pair.a.actuator.push(route)
    assert pair.a.routers["table"].read(theirs) == before
