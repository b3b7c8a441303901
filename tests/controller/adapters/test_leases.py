"""controller.adapters.leases on SQLite and the real PostgreSQL: leases timed by the
database's clock, fencing tokens, and a fenced write refused."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from controller.adapters.leases import Fenced, LeaseStore
from controller.adapters.rollout_store import RolloutStore
from monitors.testing import wait_until


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    store = RolloutStore.open(db_url)  # migrates the controller's tables
    yield store.engine
    store.close()


def _store(engine: sa.Engine, member: str, ttl: float = 30.0) -> LeaseStore:
    leases = LeaseStore(engine, member=member, shards=4, ttl=ttl)
    leases.ensure_shards()
    return leases


def test_a_free_shard_is_taken_once_and_its_token_grows(engine: sa.Engine) -> None:
    a, b = _store(engine, "a"), _store(engine, "b")
    assert a.acquire(0) == 1
    assert b.acquire(0) is None  # held and live
    assert a.renew({0: 1}) == {0}
    a.release([(0, 1)])
    assert b.acquire(0) == 2  # a new acquisition, a new token
    lease = a.leases()[0]
    assert (lease.owner, lease.token) == ("b", 2)
    assert lease.expires_at > a.now()


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(engine: sa.Engine) -> None:
    a, b = _store(engine, "a", ttl=0.05), _store(engine, "b")
    token = a.acquire(1)
    assert token is not None
    expires = a.leases()[1].expires_at
    wait_until(lambda: a.now() > expires, timeout=5)  # the database's clock, not ours
    assert a.renew({1: token}) == set()  # lost: expired before the renewal
    assert b.acquire(1) == token + 1
    with pytest.raises(Fenced, match="no longer holds shard 1"), engine.begin() as conn:
        a.fence(conn, 1, token)
    with engine.begin() as conn:
        b.fence(conn, 1, token + 1)  # the owner passes


def test_ensure_shards_keeps_existing_leases(engine: sa.Engine) -> None:
    a = _store(engine, "a")
    assert a.acquire(2) == 1
    a.ensure_shards()
    assert a.leases()[2].owner == "a"
    assert sorted(a.leases()) == [0, 1, 2, 3]


def test_members_are_live_for_one_ttl_and_leave_frees_leases(engine: sa.Engine) -> None:
    a, b = _store(engine, "a"), _store(engine, "b", ttl=0.05)
    a.join("127.0.0.1:1")
    b.join("127.0.0.1:2")
    assert a.acquire(3) == 1
    gone = b.now() + 0.05
    assert wait_until(lambda: a.now() > gone, timeout=5)
    assert a.members() == ["a"]  # b stopped heartbeating
    assert _store(engine, "b").heartbeat()  # its row is still there: a long enough beat
    assert a.members() == ["a", "b"]
    a.leave()
    assert a.members() == ["b"]
    assert a.leases()[3].owner is None


@pytest.mark.postgres
def test_no_takeover_lands_inside_a_fenced_write_in_flight(pg_url: str) -> None:
    """The lease row stays locked by the writer's fence until it commits: a member
    taking the expired shard over skips it meanwhile (PostgreSQL's FOR UPDATE, SKIP
    LOCKED on the taker's side) and takes it once the write committed."""
    store = RolloutStore.open(pg_url)
    engine = store.engine
    token = _store(engine, "a", ttl=0.5).acquire(0)  # a short lease ...
    assert token is not None
    a, b = _store(engine, "a", ttl=5.0), _store(engine, "b")  # ... a write well within 5 s
    with engine.begin() as conn:
        a.fence(conn, 0, token)  # the write's check passes and holds the row
        expires = a.leases()[0].expires_at
        assert wait_until(lambda: b.now() > expires, timeout=5)  # the lease has expired
        assert b.acquire(0) is None  # not now: the write is still open
    assert b.acquire(0) == token + 1  # committed: the next round takes it
    store.close()


@pytest.mark.postgres
def test_the_holder_renews_and_releases_past_its_own_write_in_flight(pg_url: str) -> None:
    """The fence's lock stops takeovers, not the holder: its lease round renews (and a
    clean stop releases) while one of its writes, such as a route push to a slow
    router, is still open. Waiting there would let its leases run out behind its own
    push. Two writes of the holder's on one shard do not wait on each other either."""
    store = RolloutStore.open(pg_url)
    engine = store.engine
    a, b = _store(engine, "a", ttl=5.0), _store(engine, "b")
    token = a.acquire(0)
    assert token is not None
    with engine.connect() as pushing, engine.connect() as other:
        pushing.begin()
        a.fence(pushing, 0, token)  # a push in flight holds the fence
        other.begin()
        a.fence(other, 0, token)  # a second write for the shard: not queued behind it
        other.commit()
        renewed: list[set[int]] = []  # in a thread: a wait shows as a join timeout
        renewer = threading.Thread(target=lambda: renewed.append(a.renew({0: token})))
        renewer.start()
        renewer.join(timeout=5)
        assert renewed == [{0}], "the renewal waited on the holder's own write"
        assert b.acquire(0) is None  # the takeover side still skips the row
        a.release([(0, token)])
        assert b.acquire(0) is None  # free now, yet the write is open: still skipped
        pushing.commit()
    assert b.acquire(0) == token + 1
    store.close()


@pytest.mark.postgres
def test_a_member_stalled_inside_a_fenced_write_blocks_no_takeover(pg_url: str) -> None:
    """A member stopped (SIGSTOP, a long pause) between its fence check and its commit
    keeps the lease row locked. A member taking the expired shard over must not wait on
    it, or its whole lease round hangs and its own leases expire: the acquisition gives
    up for this round at once. PostgreSQL ends the stalled transaction once it sat idle
    for a lease TTL, so a later round takes the shard."""
    store = RolloutStore.open(pg_url)
    engine = store.engine
    b = _store(engine, "b", ttl=1.0)
    # One member, a; its lease (1 s) was renewed before the write began, which stalls
    # for longer: the fence's TTL is 5 s here, so the lease expires first.
    token = _store(engine, "a", ttl=1.0).acquire(0)
    assert token is not None
    a = _store(engine, "a", ttl=5.0)
    stalled = engine.connect()
    acquired: list[int | None] = []
    taker = threading.Thread(target=lambda: acquired.append(b.acquire(0)), daemon=True)
    try:
        stalled.begin()
        a.fence(stalled, 0, token)  # the check passed; the commit never comes
        expires = a.leases()[0].expires_at
        assert wait_until(lambda: b.now() > expires, timeout=5)
        taker.start()
        taker.join(timeout=2)
        assert acquired == [None], "the acquisition waited on the stalled writer's lock"
        assert wait_until(lambda: b.acquire(0) == token + 1, timeout=10)
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):
            stalled.rollback()  # its session was ended by the server: nothing to undo
        stalled.close()
        if taker.is_alive():
            taker.join(timeout=10)
        store.close()
