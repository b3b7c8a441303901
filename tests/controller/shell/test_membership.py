"""controller.shell.membership: members converge on a fair split of the shards, take a
stopped member's shards over after its lease expires, and give everything up on leave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.adapters.leases import LeaseStore
from controller.adapters.rollout_store import RolloutStore
from controller.core.shards import assign, shard_of
from controller.shell.membership import Membership
from monitors.testing import wait_until

SHARDS = 12


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    store = RolloutStore.open(db_url)
    yield store.engine
    store.close()


def _member(engine: sa.Engine, name: str, ttl: float = 30.0) -> Membership:
    return Membership(LeaseStore(engine, member=name, shards=SHARDS, ttl=ttl))


def _taken_over(a: Membership, b: Membership) -> None:
    """``a`` stalls past its leases' TTL and ``b`` takes every shard over."""
    expires = max(lease.expires_at for lease in a.leases.leases().values())
    wait_until(lambda: b.leases.now() > expires, timeout=5)
    b.round()


def _lost_and_retaken(a: Membership, b: Membership) -> None:
    """``a``'s shards are taken over by ``b``, handed back, and taken again by ``a``
    under new fencing tokens."""
    _taken_over(a, b)
    b.leave()
    a.round()


def _rounds(members: list[Membership], n: int = 3) -> None:
    for _ in range(n):
        for m in members:
            m.round()


def test_three_members_converge_on_the_assignment(engine: sa.Engine) -> None:
    trio = [_member(engine, name) for name in ("a", "b", "c")]
    _rounds(trio)
    want = assign(["a", "b", "c"], SHARDS)
    for m in trio:
        assert set(m.owned()) == {s for s, o in want.items() if o == m.member}
    owners = [s for m in trio for s in m.owned()]
    assert sorted(owners) == list(range(SHARDS))  # each shard exactly once
    model = "fraud"
    (owner,) = [m for m in trio if m.token_for(model) is not None]
    assert owner.member == want[shard_of(model, SHARDS)]


def test_a_stopped_member_is_taken_over_after_its_ttl(engine: sa.Engine) -> None:
    a, b = _member(engine, "a"), _member(engine, "b", ttl=0.2)
    _rounds([a, b])
    b_shards = set(b.owned())
    assert b_shards
    expires = max(lease.expires_at for s, lease in a.leases.leases().items() if s in b_shards)
    wait_until(lambda: a.leases.now() > expires, timeout=5)  # b stopped renewing
    result = a.round()
    assert set(result.acquired) == b_shards
    assert all(token >= 2 for token in result.acquired.values())  # new tokens
    assert set(a.owned()) == set(range(SHARDS))
    lost = b.round()  # b comes back: its old leases are gone, it rejoins
    assert lost.lost == b_shards
    _rounds([a, b])
    assert set(a.owned()) | set(b.owned()) == set(range(SHARDS))
    assert not set(a.owned()) & set(b.owned())


def test_leave_hands_the_shards_over_at_once(engine: sa.Engine) -> None:
    a, b = _member(engine, "a"), _member(engine, "b")
    _rounds([a, b])
    b.leave()
    a.round()
    assert set(a.owned()) == set(range(SHARDS))


def test_a_round_without_the_database_owns_nothing(engine: sa.Engine) -> None:
    a = _member(engine, "a")
    a.round()
    assert a.owned()
    engine.dispose()
    broken = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    a.leases = LeaseStore(broken, member="a", shards=SHARDS, ttl=30.0)
    result = a.round()
    assert result.error is not None
    assert a.last_error == result.error  # /readyz turns 503 with it
    assert a.owned() == {}
    assert result.lost


def test_a_member_that_lost_its_shard_writes_nothing(engine: sa.Engine, db_url: str) -> None:
    """The rollout store fenced by a member: once another member took the shard over,
    every write of the old owner is refused in its own transaction and counted."""
    from datetime import UTC, datetime

    from controller.adapters.leases import Fenced
    from controller.adapters.production_ledger import ProductionLedger
    from controller.core.causes import Cause
    from controller.core.production import RollbackRequest
    from serving.route import Backend, Route

    a, b = _member(engine, "a", ttl=0.2), _member(engine, "b")
    a.round()  # alone: a owns every shard
    store = RolloutStore.open(db_url)
    store.fencing.fence = a.fence
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    record = store.create(model="fraud", control="v1", treatment="v2", control_digest=None,
                          treatment_digest="d" * 64, now=t0, reason="test")  # fmt: skip
    _taken_over(a, b)
    assert b.token_for("fraud") is not None
    with pytest.raises(Fenced):
        store.create(model="fraud", control="v1", treatment="v3", control_digest=None,
                     treatment_digest="e" * 64, now=t0, reason="after the takeover")  # fmt: skip
    ledger = ProductionLedger(store.engine, fencing=store.fencing)  # shares the fence
    request = RollbackRequest(model="fraud", cause=Cause.ALERT, actor="alert:r", reason="r")
    with pytest.raises(Fenced):
        ledger.begin(request, "v1", now=t0)
    assert ledger.actions("fraud") == []
    assert a.refused_writes == 2
    assert store.exists("fraud", "v2")
    assert not store.exists("fraud", "v3")  # nothing committed
    store.fencing.fence = b.fence  # the new owner writes
    store.record_pushed(Route("fraud", (Backend("v1", 100),)), now=t0)
    assert store.pushed_route("fraud") is not None
    assert store.get(record.id).treatment == "v2"
    store.close()


def test_a_stage_move_of_a_member_that_lost_its_shard_is_refused(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    """The registry runs the member's fence inside the promotion's transaction: after a
    takeover the old owner's move is refused and leaves no trace; the owner's goes in."""
    from controller.adapters.leases import Fenced
    from registry import ModelRegistry

    from ..support import register

    a, b = _member(engine, "a", ttl=0.2), _member(engine, "b")
    a.round()
    with ModelRegistry(url=db_url, home=tmp_path / "home") as registry:
        register(registry, tmp_path, "fraud", "1.0.0", "production")
        register(registry, tmp_path, "fraud", "1.1.0", "staging")
        registry.stage_guard = a.fence
        audit_before = len(registry.audit_log())
        _taken_over(a, b)
        with pytest.raises(Fenced):
            registry.promote_model("fraud", "1.1.0", to_stage="production", reason="stale")
        assert str(registry.resolve("fraud").version) == "v1.0.0"
        assert len(registry.audit_log()) == audit_before  # nothing committed
        registry.stage_guard = b.fence
        registry.promote_model("fraud", "1.1.0", to_stage="production", reason="owner")
        assert str(registry.resolve("fraud").version) == "v1.1.0"


def test_work_pinned_before_a_loss_and_retake_is_refused(engine: sa.Engine, db_url: str) -> None:
    """A unit of work (a tick, a round) writes under the leases held when it began: when
    its member loses the shard and takes it again under a new token meanwhile (another
    member may have acted in between), its write is refused; the next unit's goes in."""
    from datetime import UTC, datetime

    from controller.adapters.leases import Fenced

    a, b = _member(engine, "a", ttl=0.2), _member(engine, "b")
    a.round()
    store = RolloutStore.open(db_url)
    store.fencing.fence = a.fence
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    fields = {"model": "fraud", "control": "v1", "treatment": "v2", "control_digest": None,
              "treatment_digest": "d" * 64, "now": t0}  # fmt: skip
    with a.pinned():
        first = a.token_for("fraud")
        assert first is not None
        _lost_and_retaken(a, b)
        retaken = a.owned()[first[0]]
        assert retaken > first[1]
        assert a.token_for("fraud") == first  # the pin's view, not the new lease
        with pytest.raises(Fenced):
            store.create(**fields, reason="decided on the old lease")
    assert a.token_for("fraud") == (first[0], retaken)
    with a.pinned():
        store.create(**fields, reason="decided on the new lease")
    assert store.exists("fraud", "v2")
    assert a.refused_writes == 1
    store.close()


def test_a_shard_taken_during_pinned_work_is_not_that_works(engine: sa.Engine) -> None:
    """Work that began before its member took a shard neither sees nor writes it; a
    pin inside it (an operator's action inside a request's application) keeps the
    outer one."""
    a = _member(engine, "a")
    with a.pinned():
        assert a.token_for("fraud") is None
        a.round()
        assert a.token_for("fraud") is None
        with a.pinned():
            assert a.token_for("fraud") is None
    assert a.token_for("fraud") is not None
    with a.pinned():
        assert a.token_for("fraud") is not None


def test_a_stage_move_run_by_another_thread_is_fenced_with_its_callers_pin(
    engine: sa.Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry's group commit may run a caller's move in another thread (its
    batch's leader). The fence must still see the caller's pin: a move decided on
    leases since lost and retaken is refused, whoever runs it."""
    import threading

    from controller.adapters.leases import Fenced
    from registry import ModelRegistry

    from ..support import register

    a, b = _member(engine, "a", ttl=0.2), _member(engine, "b")
    a.round()
    with ModelRegistry(url=db_url, home=tmp_path / "home") as registry:
        register(registry, tmp_path, "fraud", "1.0.0", "production")
        register(registry, tmp_path, "fraud", "1.1.0", "staging")
        registry.stage_guard = a.fence
        store = registry._store
        run = store._run

        def led_elsewhere(batch: list[object]) -> None:  # as a leader thread runs it
            leader = threading.Thread(target=run, args=(batch,))
            leader.start()
            leader.join()

        monkeypatch.setattr(store, "_run", led_elsewhere)
        with a.pinned():
            _lost_and_retaken(a, b)
            with pytest.raises(Fenced):
                registry.promote_model("fraud", "1.1.0", to_stage="production", reason="stale")
        assert str(registry.resolve("fraud").version) == "v1.0.0"
        with a.pinned():  # a unit of work on the new leases
            registry.promote_model("fraud", "1.1.0", to_stage="production", reason="fresh")
        assert str(registry.resolve("fraud").version) == "v1.1.0"
