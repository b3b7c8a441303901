"""controller.core.shards: stable shards, fair and stable assignment, the lease plan."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from controller.core.shards import Lease, assign, plan, shard_of

MEMBERS = ["alpha", "bravo", "charlie"]


def test_shard_of_is_stable_across_processes() -> None:
    """Not Python's salted hash(): another interpreter computes the same shards."""
    here = [shard_of(f"model-{i}", 64) for i in range(50)]
    code = ("from controller.core.shards import shard_of; "
            "print([shard_of(f'model-{i}', 64) for i in range(50)])")  # fmt: skip
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123"}).stdout  # fmt: skip
    assert str(here) == there.strip()
    assert len(set(here)) > 25  # spread over the shards, not a constant


def test_shard_of_refuses_no_shards() -> None:
    with pytest.raises(ValueError, match="shards must be >= 1"):
        shard_of("fraud", 0)


@pytest.mark.parametrize(("members", "shards"), [(1, 64), (2, 64), (3, 64), (5, 7), (4, 2)])
def test_every_shard_has_one_owner_and_shares_are_fair(members: int, shards: int) -> None:
    names = [f"m{i}" for i in range(members)]
    owner = assign(names, shards)
    assert sorted(owner) == list(range(shards))
    counts = [sum(1 for o in owner.values() if o == m) for m in names]
    assert sum(counts) == shards
    assert max(counts) - min(counts) <= 1


def test_assignment_ignores_member_order() -> None:
    results = {tuple(sorted(assign(list(p), 64).items())) for p in itertools.permutations(MEMBERS)}
    assert len(results) == 1


def test_a_member_leaving_moves_little_more_than_its_shards() -> None:
    before = assign(MEMBERS, 64)
    after = assign(["alpha", "bravo"], 64)
    moved = {s for s in range(64) if before[s] != after[s]}
    gone = {s for s, o in before.items() if o == "charlie"}
    assert gone <= moved
    # The bounded shares may shift a shard or two more between the ones that stay.
    assert len(moved - gone) <= 2


def test_a_member_joining_moves_about_a_fair_share() -> None:
    before = assign(MEMBERS, 64)
    after = assign([*MEMBERS, "delta"], 64)
    moved = {s for s in range(64) if before[s] != after[s]}
    assert {after[s] for s in moved} == {"delta"}  # shards only move to the newcomer
    assert len(moved) == 16


def test_plan_renews_acquires_releases_and_waits() -> None:
    now = 1000.0
    mine = [s for s, o in assign(MEMBERS, 8).items() if o == "alpha"]
    theirs = [s for s, o in assign(MEMBERS, 8).items() if o != "alpha"]
    leases = {
        mine[0]: Lease(mine[0], "alpha", 3, now + 10),  # held, still ours: renew
        mine[1]: Lease(mine[1], "bravo", 5, now + 10),  # ours, held by bravo: wait
        theirs[0]: Lease(theirs[0], "alpha", 2, now + 10),  # held, not ours: release
        theirs[1]: Lease(theirs[1], "alpha", 1, now - 1),  # expired: not held any more
    }
    p = plan("alpha", MEMBERS, leases, shards=8, now=now)
    assert p.renew == {mine[0]}
    assert p.waiting == {mine[1]}
    assert p.release == {theirs[0]}
    assert p.acquire == set(mine) - {mine[0], mine[1]}


def test_a_lone_member_plans_every_shard() -> None:
    p = plan("alpha", [], {}, shards=4, now=0.0)
    assert p.acquire == {0, 1, 2, 3}
    assert (p.renew, p.release, p.waiting) == (frozenset(), frozenset(), frozenset())
