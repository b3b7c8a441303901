"""Batched ticks: every rollout due at one moment looked at together, for a few queries.

The scheduler runs one job per rollout (``controller.runtime.scheduler``). The first job
that finds its rollout due runs a *round* over every owned active rollout due at that
moment; the jobs of the others, run moments later, find their look done and return.
So a tick of N rollouts costs a fixed number of queries plus a few per thousand
rollouts, instead of some twenty per rollout. A round:

1. **loads** every active rollout's schedule in one light query, keeps the owned ones
   that are due (``next_eval_at`` at most a tenth of an interval away, so that jobs
   firing a little apart share a round; the job's own rollout by the single tick's
   rule, half an interval; or more than two intervals ahead: the clock went back) and
   reads those (one query per thousand). A rollout with a pending intent or without a
   policy is left to its single tick (``controller.shell.tick``), and so is the job's
   own when it is not due.
2. **reads** the registry's facts for all of them at once (``candidate_facts``: the
   production version, the candidate's stage, its approvals) and **measures** them at
   once (``Measurer.observe_many``: one batch read per ingest source).
3. **decides** each one with the pure ``decide``, outside any lock.
4. **stores the holds** (a decision that stays in its phase and acts on nothing outside
   the database) by chunks: the chunk's model locks are taken without waiting, its
   rollouts' stamps read again in one query (``RolloutStore.stamps``: what any write
   changes), and the hold of each one unchanged since step 1 stored, the whole chunk in
   one transaction (``RolloutStore.record_holds``), then logged and counted as a single
   tick does.
5. **hands every other rollout to its single tick**, which reads, measures and decides
   it again under its lock: whatever acts outside the database (a new weight, a
   promotion, a rollback, a superseded rollout's end), a wait for approval (it reports
   overdue waits), a rollout that changed since step 1 and one whose lock was busy. The
   batched path itself never changes the world: intents, routes and registry moves stay
   the single tick's and the actuator's.

A crash in a round loses at most holds not yet stored: those rollouts' ``next_eval_at``
did not move, and their next job looks again. A look a round made is remembered
(``looked``) until half an interval has passed, the single tick's "not due yet", so
the round's other jobs return without a query; an operator action, an alert or a
single tick on the rollout outside a round forgets it (``forget``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from controller.adapters.registry_gateway import CandidateFacts, candidate_facts
from controller.adapters.rollout_store import RolloutRecord, stamp
from controller.core.decide import Decision, HoldUntil, decide
from controller.core.phases import Phase
from controller.core.policy import PolicyConfig
from controller.core.superseded import superseded
from controller.shell import tick
from controller.shell.measure import Look

if TYPE_CHECKING:
    from controller.shell.controller import Controller

__all__ = ["CHUNK", "Rounds"]

log = structlog.get_logger("controller")

_EARLY = 10  # a rollout joins a round up to 1/_EARLY of its interval before it is due

CHUNK = 500
"""Rollouts a round reads, measures and decides together, and whose holds it stores in
one transaction with their models locked (the time an alert for one of them may wait:
a read and a write)."""


@dataclass(frozen=True, slots=True)
class _Hold:
    record: RolloutRecord
    decision: Decision
    interval: timedelta
    offset: float  # the clock's offset to note as this rollout's look (``ClockSteps``)


class Rounds:
    """The controller's batched ticks (see the module docstring); one round at a time."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._lock = threading.Lock()
        # rollout -> (when a round stored its look, its interval then)
        self._looked: dict[int, tuple[datetime, timedelta]] = {}
        self._memory = threading.Lock()  # guards ``_looked``: ``forget`` comes from any thread
        self._wanted: set[int] = set()  # rollouts whose jobs came during a round

    def tick(self, rollout_id: int) -> Decision | None:
        """The scheduler job's tick of ``rollout_id``: None when a round looked at it
        less than half an interval ago, else a round (or its single tick, when it
        cannot be batched); returns its decision, None when there was nothing to do.

        While another job's round runs, this job does not wait for it (its thread is
        the scheduler's, which the lease, watcher and guard jobs need): it leaves its
        rollout to the job running rounds, which runs one more round for the rollouts
        left to it once its own is done, and returns None."""
        with self._memory:
            if self._seen(rollout_id, self.controller.clock()):
                return None
            if not self._lock.acquire(blocking=False):
                self._wanted.add(rollout_id)
                return None
        try:
            with self.controller.acting():
                decision = self._round(rollout_id, self.controller.clock())
            while True:
                with self._memory:
                    now = self.controller.clock()
                    wanted = sorted(r for r in self._wanted if not self._seen(r, now))
                    self._wanted = set()
                    if not wanted:
                        self._lock.release()  # under ``_memory``: no job is left behind
                        return decision
                for other in wanted:
                    try:
                        with self.controller.acting():
                            if not self._seen(other, self.controller.clock()):
                                self._round(other, self.controller.clock())
                    except Exception:  # as the scheduler does with a failing job
                        log.exception("tick_failed", rollout=other)
        except BaseException:
            with self._memory:
                self._lock.release()
            raise

    def _seen(self, rollout_id: int, now: datetime) -> bool:
        """Whether a round looked at the rollout less than half an interval ago (not
        due: see ``tick._tick``)."""
        looked = self._looked.get(rollout_id)
        return looked is not None and looked[0] <= now < looked[0] + looked[1] / 2

    def forget(self, rollout_id: int) -> None:
        """The rollout changed outside a round: its next job reads it again."""
        with self._memory:
            self._looked.pop(rollout_id, None)

    def _remember(self, rollout_id: int, now: datetime, interval: timedelta) -> None:
        with self._memory:
            self._looked[rollout_id] = (now, interval)

    def looked(self) -> dict[int, datetime]:
        """When a round last stored each rollout's look (a copy, for tests)."""
        with self._memory:
            return {rid: at for rid, (at, _) in self._looked.items()}

    # -- one round ----------------------------------------------------------------

    def _round(self, trigger: int, now: datetime) -> Decision | None:
        controller = self.controller
        with self._memory:
            self._looked = {rid: v for rid, v in self._looked.items() if v[0] + v[1] > now}
        due: dict[int, PolicyConfig] = {}
        pairs: dict[int, tuple[str, str]] = {}
        for entry in controller.store.schedule():
            policy = controller.policy(entry.model)
            if policy is None or entry.has_intent or not controller.owns(entry.model):
                continue  # its single tick says why (no policy), repairs or skips it
            if _due(entry.next_eval_at, policy, now, trigger=entry.id == trigger):
                due[entry.id] = policy
                pairs[entry.id] = (entry.model, entry.treatment)
        if trigger not in due:  # finished, not due, not batchable: the single tick, as ever
            return tick.single_tick(controller, trigger)
        facts = candidate_facts(controller.registry, [pairs[rid] for rid in due])
        results: dict[int, Decision | None] = {}
        handed: list[int] = []
        ids = sorted(due)
        for begin in range(0, len(ids), CHUNK):  # what one chunk makes dies with it
            started = time.perf_counter()
            records = controller.store.get_many(ids[begin : begin + CHUNK])
            batch = [(r, due[r.id]) for r in records.values() if r.active and r.intent is None]
            if trigger in records and not any(r.id == trigger for r, _ in batch):
                handed.append(trigger)  # it moved since the schedule was read: its single tick
            holds, acting = self._decide(batch, facts, now)
            handed += acting
            stored = self._store(holds, now, started)
            results.update((h.record.id, h.decision) for h in stored)
            handed += [h.record.id for h in holds if h.record.id not in results]
        failure: Exception | None = None
        for rollout_id in handed:
            try:
                results[rollout_id] = decided = tick.single_tick(controller, rollout_id)
                if decided is not None:  # looked at now: its job this round has nothing to do
                    self._remember(rollout_id, now, timedelta(seconds=due[rollout_id].interval))
            except Exception as exc:  # as the scheduler does with a failing job
                if rollout_id == trigger:
                    failure = exc
                else:
                    log.exception("tick_failed", rollout=rollout_id)
        if failure is not None:
            raise failure
        return results.get(trigger)

    def _decide(
        self,
        batch: Sequence[tuple[RolloutRecord, PolicyConfig]],
        facts: Mapping[tuple[str, str], CandidateFacts],
        now: datetime,
    ) -> tuple[list[_Hold], list[int]]:
        """Steps 2 and 3 for one chunk: the holds to store, and the rollouts for their
        single tick."""
        controller = self.controller
        looks: list[Look] = []
        handed: list[int] = []
        for record, policy in batch:
            found = facts.get((record.model, record.treatment))
            if found is None:  # not the pair the schedule named: read anew by its tick
                handed.append(record.id)
                continue
            why = superseded(record.control, record.treatment, production=found.production,
                             treatment_stage=found.stage)  # fmt: skip
            if why is not None or record.phase is Phase.AWAITING_APPROVAL:
                handed.append(record.id)  # its end, or its wait's report: the single tick's
                continue
            looks.append(Look(policy, record, now, found.approval_required, found.approvals))
        holds: list[_Hold] = []
        steps = controller.clock_steps
        for look, observed in zip(looks, controller.measurer.observe_many(looks), strict=True):
            record = look.record
            stepped, offset = (0.0, 0.0) if steps is None else steps.peek(record.id, now)
            seen = replace(observed, clock_stepped=stepped)
            decision = decide(look.policy, record.state, seen, now=now)
            if isinstance(decision, HoldUntil) and decision.state.phase is record.phase:
                interval = timedelta(seconds=look.policy.interval)
                holds.append(_Hold(record, decision, interval, offset))
            else:  # it acts: decided again by its single tick, under its lock
                handed.append(record.id)
        return holds, handed

    def _store(self, holds: Sequence[_Hold], now: datetime, started: float) -> list[_Hold]:
        """Step 4; returns the holds stored (the others go to their single tick)."""
        controller = self.controller
        stored: list[_Hold] = []
        for begin in range(0, len(holds), CHUNK):
            chunk = holds[begin : begin + CHUNK]
            with controller.actuator.locked(h.record.model for h in chunk) as held:
                mine = [h for h in chunk if h.record.model in held]
                fresh = controller.store.stamps(h.record.id for h in mine)
                ready = [h for h in mine if fresh.get(h.record.id) == stamp(h.record)]
                try:
                    controller.store.record_holds(
                        [(h.record, h.decision, now + h.interval) for h in ready], now=now
                    )
                except Exception as exc:  # e.g. a fence refused one model: one by one
                    log.warning("batched_holds_failed", rollouts=len(ready), error=repr(exc))
                    continue
                for hold in ready:  # under the locks: an operator's later change forgets it
                    self._remember(hold.record.id, now, hold.interval)
            stored.extend(ready)
        if not stored:
            return stored
        share = (time.perf_counter() - started) / len(stored)
        metrics = controller.metrics
        for hold in stored:
            record, decision = hold.record, hold.decision
            if controller.clock_steps is not None:
                controller.clock_steps.note(record.id, hold.offset)
            tick.log_decision(controller, record, decision)
            if metrics is not None:
                metrics.lag.observe(max(0.0, (now - record.next_eval_at).total_seconds()))
                metrics.evaluations.inc()
                metrics.decisions.labels(decision.action).inc()
                metrics.evaluation_seconds.observe(share)
        return stored


def _due(next_eval_at: datetime, policy: PolicyConfig, now: datetime, *, trigger: bool) -> bool:
    """Due now: ``next_eval_at`` less than a tenth of an interval away (the jobs of one
    round's rollouts fire a little apart: the next round takes them all), for the
    ``trigger``'s own rollout less than half an interval away (the single tick's rule);
    or over two intervals ahead (the clock went back: look now)."""
    interval = timedelta(seconds=policy.interval)
    ahead = next_eval_at - now
    if ahead > 2 * interval:
        return True
    return ahead <= interval / (2 if trigger else _EARLY)
