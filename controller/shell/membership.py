"""One member's part in sharded ownership: a round every fraction of the lease TTL.

A round heartbeats this member, reads the live members and every lease (one query
each), plans with ``controller.core.shards.plan`` and acts: renew what it holds and
should, release what it should not, acquire what is free and its own. The shards it
holds afterwards, with their fencing tokens, are ``owned``: the shell acts only on
models in those shards and every write checks the token (``LeaseStore.fence``).

A round that cannot reach the database owns nothing afterwards: its leases will
expire on the database's clock anyway, and acting on them without renewing could
outlive them. Acquisitions and losses are logged and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog

from controller.adapters.leases import Fenced, LeaseStore
from controller.core.shards import plan, shard_of

__all__ = ["Membership", "RoundResult"]

log = structlog.get_logger("controller.membership")
# Key of ``Connection.info``: (the transaction, the (shard, token)s the fence passed in it).
_FENCED = "modelreg_fenced_shards"


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What a round changed: shards taken (with tokens), renewed, released and lost."""

    acquired: dict[int, int] = field(default_factory=dict)
    renewed: frozenset[int] = frozenset()
    released: frozenset[int] = frozenset()
    lost: frozenset[int] = frozenset()
    error: str | None = None


class Membership:
    """This member's leases; ``round()`` is called by the runtime every ``ttl / 3``."""

    def __init__(self, leases: LeaseStore, *, address: str = "") -> None:
        self.leases = leases
        self.address = address
        self._owned: dict[int, int] = {}  # shard -> fencing token
        # Inside ``pinned()``: the shards held when that unit of work began (this
        # context's, so per thread); None outside one.
        self._pinned: ContextVar[dict[int, int] | None] = ContextVar(
            f"modelreg_pinned_shards_{id(self)}", default=None
        )
        self._lock = threading.Lock()
        self._joined = False
        self._ever_joined = False  # a process that never took part (CLI --direct) leaves nothing
        self.refused_writes = 0  # writes the fence refused (a stalled member's, mostly)
        self.last_error: str | None = None  # the last round's, None when it reached the DB
        self._last_round: float | None = None  # time.monotonic() at the last round's start
        # Told of each round's result (metrics); must not raise.
        self.on_round: Callable[[RoundResult], None] | None = None
        # Told of each write the fence refused (metrics); must not raise.
        self.on_refused: Callable[[], None] | None = None

    @property
    def member(self) -> str:
        return self.leases.member

    def owned(self) -> dict[int, int]:
        """The shards held after the last round, with their fencing tokens (a copy)."""
        with self._lock:
            return dict(self._owned)

    def token_for(self, model: str) -> tuple[int, int] | None:
        """(shard, token) when this member owns ``model``'s shard, else None; inside
        ``pinned()``, as it was when the pin was taken."""
        shard = shard_of(model, self.leases.shards)
        pinned = self._pinned.get()
        if pinned is not None:
            token = pinned.get(shard)
        else:
            with self._lock:
                token = self._owned.get(shard)
        return None if token is None else (shard, token)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """One unit of work (a tick, a round, an operator's action) on the shards held
        when it began: its ownership checks see them, and its writes are fenced with
        their tokens. A lease round meanwhile may lose a shard and take it again under
        a new token; work that read and decided under the old one must then be refused
        at its write, not pass on the new token, since another member may have acted
        for the shard in between. A pin inside a pin keeps the outer one: the unit of
        work is the outermost (a request claimed under one token is applied under it)."""
        if self._pinned.get() is not None:
            yield
            return
        with self._lock:
            owned = dict(self._owned)
        reset = self._pinned.set(owned)
        try:
            yield
        finally:
            self._pinned.reset(reset)

    def token_of(self, model: str) -> int | None:
        """The fencing token ``model``'s shard is held with, None when not held."""
        found = self.token_for(model)
        return None if found is None else found[1]

    def fence(self, conn: sa.Connection, model: str) -> None:
        """The write fence for ``model`` (``RolloutStore(fence=...)``): inside the write's
        transaction, refuse unless this member holds the model's shard with the token it
        acquired, on an unexpired lease. Refusals are counted (``refused_writes``).

        A shard is checked once per transaction: the first check keeps its lease row
        locked until the transaction ends (``LeaseStore.fence``), so no other member can
        take it over meanwhile, and a write of many models (a batched tick's holds)
        checks each of their shards once, not each model."""
        found = self.token_for(model)
        try:
            if found is None:
                shard = shard_of(model, self.leases.shards)
                raise Fenced(f"member {self.member} does not own shard {shard} of {model!r}")
            transaction = conn.get_transaction()
            memo = conn.info.get(_FENCED)
            passed: set[tuple[int, int]] = (
                memo[1] if memo is not None and memo[0] is transaction else set()
            )
            if transaction is not None and found in passed:
                return  # checked, and locked, earlier in this transaction
            self.leases.fence(conn, *found)
            if transaction is not None:
                passed.add(found)
                conn.info[_FENCED] = (transaction, passed)
        except Fenced:
            with self._lock:
                self.refused_writes += 1
            if self.on_refused is not None:
                self.on_refused()
            raise

    def round_if_due(self) -> RoundResult | None:
        """A round when the last one began a third of the TTL ago or more (the
        scheduler's pace), else None. For work that runs before the scheduler's lease
        job does: a start-up reconciliation of many routers can outlast a lease."""
        last = self._last_round
        if last is not None and time.monotonic() - last < self.leases.ttl / 3:
            return None
        return self.round()

    def round(self) -> RoundResult:
        """Heartbeat, plan and act once (see the module docstring)."""
        self._last_round = time.monotonic()
        try:
            result = self._round()
        except sa.exc.SQLAlchemyError as exc:
            with self._lock:
                lost = frozenset(self._owned)
                self._owned = {}
            self._joined = False
            error = str(exc).splitlines()[0]
            log.error("lease_round_failed", member=self.member, error=error, gave_up=sorted(lost))
            result = RoundResult(lost=lost, error=error)
        self.last_error = result.error
        if self.on_round is not None:
            self.on_round(result)
        return result

    def _round(self) -> RoundResult:
        store = self.leases
        if not self._joined or not store.heartbeat():
            store.ensure_shards()
            store.join(self.address)
            self._joined = self._ever_joined = True
        members = store.members()
        leases = store.leases()
        now = store.now()
        moves = plan(self.member, members, leases, shards=store.shards, now=now)
        with self._lock:
            before = dict(self._owned)
        held = {s: leases[s].token for s in moves.renew}
        renewed = store.renew(held)
        store.release((s, leases[s].token) for s in moves.release)
        acquired = {}
        for shard in sorted(moves.acquire):
            token = store.acquire(shard)
            if token is not None:
                acquired[shard] = token
        owned = {s: held[s] for s in renewed} | acquired
        lost = frozenset(set(before) - set(owned) - moves.release)
        # Said before this member acts on them: no decision taken under a new token
        # precedes the line that says it was acquired.
        for shard, token in acquired.items():
            log.info("shard_acquired", member=self.member, shard=shard, token=token)
        with self._lock:
            self._owned = owned
        for shard in sorted(moves.release):
            log.info("shard_released", member=self.member, shard=shard)
        for shard in sorted(lost):
            log.warning("shard_lost", member=self.member, shard=shard)
        return RoundResult(acquired, frozenset(renewed), frozenset(moves.release), lost)

    def leave(self) -> None:
        """A clean stop: free every lease now so the others need not wait a TTL. A
        process that never ran a round (``modelreg rollout --direct`` builds the daemon's
        parts with the daemon's member id) must not erase the running member's row."""
        with self._lock:
            self._owned = {}
        if not self._ever_joined:
            return
        self.leases.leave()
        self._joined = False
