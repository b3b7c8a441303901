"""Sharded ownership, the pure part: which shard a model is in, and who should own it.

Several daemons share one PostgreSQL database. Models map to a fixed number of shards
by a stable hash of the name (``shard_of``: the same on every host and Python version,
unlike ``hash()``). Every member computes the same assignment from the same list of
live members (``assign``): each shard goes to the member that ranks it highest by
rendezvous hashing, bounded so that every member gets its fair share (``shards //
members``, one more for the first ``shards % members`` members by their own rank).
Rendezvous ranks make the assignment stable: a member joining or leaving moves about
``shards / members`` shards, not all of them.

``plan`` turns the assignment and the leases as read into what this member does now:
renew what it holds and should, acquire what it should and nobody holds (or whose
lease expired), release what it holds but should not (so its new owner takes it on
its next renewal, well within one lease TTL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Lease", "Plan", "assign", "plan", "shard_of"]


def _rank(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def shard_of(model: str, shards: int) -> int:
    """The shard of ``model`` among ``shards``: stable across hosts and restarts."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    return _rank("model", model) % shards


def assign(members: Sequence[str], shards: int) -> dict[int, str]:
    """Each shard's owner among ``members``: fair shares, chosen by rendezvous rank.

    Pairs (shard, member) are taken best rank first; a shard goes to the first member
    that still has room. Deterministic for a given set of members, whatever its order.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    live = sorted(set(members))
    if not live:
        return {}
    base, extra = divmod(shards, len(live))
    # Who gets the extra shards is itself decided by rank, so it does not depend on
    # the order of the member list.
    by_rank = sorted(live, key=lambda m: (_rank("extra", m), m), reverse=True)
    room = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_rank)}
    pairs = sorted(
        ((_rank("shard", str(s), m), s, m) for s in range(shards) for m in live), reverse=True
    )
    owner: dict[int, str] = {}
    for _, shard, member in pairs:
        if shard not in owner and room[member] > 0:
            owner[shard] = member
            room[member] -= 1
            if len(owner) == shards:
                break
    return owner


@dataclass(frozen=True, slots=True)
class Lease:
    """A shard's lease as read from the database (times are the database's clock)."""

    shard: int
    owner: str | None
    token: int  # increases with every acquisition: the fencing token
    expires_at: float  # epoch seconds on the database's clock

    def live(self, now: float) -> bool:
        return self.owner is not None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class Plan:
    """What one member does with the leases this round."""

    renew: frozenset[int]  # held and still ours
    acquire: frozenset[int]  # ours by assignment, free or expired
    release: frozenset[int]  # held but assigned to another member
    waiting: frozenset[int]  # ours by assignment, still held by another (live) member


def plan(
    me: str, members: Sequence[str], leases: Mapping[int, Lease], *, shards: int, now: float
) -> Plan:
    """This member's moves given the live ``members`` (itself included) and the leases."""
    wanted = {s for s, owner in assign([*members, me], shards).items() if owner == me}
    held = {s for s, lease in leases.items() if lease.owner == me and lease.live(now)}
    free = {s for s in range(shards) if s not in leases or not leases[s].live(now)}
    return Plan(
        renew=frozenset(held & wanted),
        acquire=frozenset(wanted & free),
        release=frozenset(held - wanted),
        waiting=frozenset(wanted - held - free),
    )
