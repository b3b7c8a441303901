"""Two members on one database act on disjoint models: each starts, ticks and routes only
the models of the shards it holds, and a takeover moves the work (SQLite and the real
PostgreSQL)."""

from __future__ import annotations

import re

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


def _retake_while_measuring(controller: object, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch ``controller``'s measurer so that, during the next measurement, its member
    gives every shard up and takes it back under new tokens (as a stalled member whose
    leases another took and handed back would); returns the count of retakes."""
    from controller.shell.controller import Controller

    assert isinstance(controller, Controller)
    assert controller.membership is not None
    membership, measurer = controller.membership, controller.measurer
    retakes: list[int] = []

    def retake() -> None:
        if retakes:
            return
        owned = membership.owned()
        membership.leases.release(owned.items())
        membership.round()
        assert all(membership.owned()[s] > token for s, token in owned.items())
        retakes.append(1)

    observe, observe_many = measurer.observe, measurer.observe_many

    def observing(*args, **kwargs):  # type: ignore[no-untyped-def]
        retake()
        return observe(*args, **kwargs)

    def observing_many(*args, **kwargs):  # type: ignore[no-untyped-def]
        retake()
        return observe_many(*args, **kwargs)

    monkeypatch.setattr(measurer, "observe", observing)
    monkeypatch.setattr(measurer, "observe_many", observing_many)
    return retakes


def test_a_tick_decided_on_leases_retaken_meanwhile_writes_nothing(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick measures and decides on the leases held as it began: when its member lost
    them and took them again meanwhile (under new tokens, so another member may have
    acted in between), its write is refused; the next tick, on the new leases, acts."""
    from controller.adapters.leases import Fenced

    mine = next(r for r in pair.a.watch_once())
    retakes = _retake_while_measuring(pair.a, monkeypatch)
    assert pair.a.membership is not None
    refused = pair.a.membership.refused_writes
    with pytest.raises(Fenced):
        pair.a.reconcile_once(mine.id, force=True)
    assert retakes == [1]
    assert pair.a.membership.refused_writes == refused + 1
    assert pair.a.store.decisions(mine.id) == []
    assert pair.a.reconcile_once(mine.id, force=True) is not None
    assert len(pair.a.store.decisions(mine.id)) == 1


def test_a_round_decided_on_leases_retaken_meanwhile_stores_no_hold(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched round's holds are fenced with the leases of the round's start: after
    a retake mid-round they are refused, and so is each rollout's single tick within
    that round (the round is the unit of work). The next round, on the new leases,
    decides them all."""
    from controller.adapters.leases import Fenced

    clock = pair.a.clock
    assert isinstance(clock, Clock)
    started = pair.a.watch_once()
    assert len(started) >= 2, "a owns too few models for a round"
    for record in started:  # their first steps: from here on, plain holds
        pair.a.reconcile_once(record.id, force=True)
    clock.advance(pair.a.config.models[started[0].model].interval)
    retakes = _retake_while_measuring(pair.a, monkeypatch)
    assert pair.a.membership is not None
    refused = pair.a.membership.refused_writes
    before = {r.id: len(pair.a.store.decisions(r.id)) for r in started}
    with pytest.raises(Fenced):
        pair.a.reconcile_once(started[0].id)
    assert retakes == [1]
    # The batched write, then each rollout's single tick.
    assert pair.a.membership.refused_writes == refused + 1 + len(started)
    assert {r.id: len(pair.a.store.decisions(r.id)) for r in started} == before
    decision = pair.a.reconcile_once(started[0].id)  # the next round's job
    assert decision is not None
    assert decision.action == "hold"
    for record in started:  # each held once, by that round
        assert len(pair.a.store.decisions(record.id)) == before[record.id] + 1


def test_a_watch_pass_reads_the_registrys_staging_versions_once(pair: Pair) -> None:
    """One query for every model's staging versions, however many models there are:
    a pass over a thousand models every few seconds must not be a thousand queries."""
    from tests.sql_statements import Statements

    pair.a.watch_once()
    with Statements() as statements:
        assert pair.a.watch_once() == []  # all started: nothing more to do
    reads = [s for s in statements.seen if re.search(r"FROM model_version\b", s)]
    assert len(reads) == 1, reads
