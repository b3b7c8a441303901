"""Two members on one database act on disjoint models: each starts, ticks and routes only
the models of the shards it holds, and a takeover moves the work (SQLite and the real
PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.clock import Clock

from .conftest import MODELS, Pair


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


def test_a_non_owner_cannot_operate_directly(pair: Pair) -> None:
    """Below the request queue, the controller refuses to act on another member's model
    (the HTTP layer records a request for its owner instead: test_requests)."""
    from controller.adapters.leases import Fenced
    from controller.core.phases import Event

    pair.a.watch_once()
    pair.b.watch_once()
    theirs = next(r for r in pair.a.store.active() if not pair.a.owns(r.model))
    with pytest.raises(Fenced):
        pair.a.operate(theirs.id, Event.ABORT, reason="x")
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
