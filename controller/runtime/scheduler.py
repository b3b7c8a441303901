"""APScheduler 3.x runs one job per active rollout, plus a light watcher job.

Jobs live in a ``MemoryJobStore`` and are rebuilt from the database at start (never
APScheduler's pickling job stores: the database is the only truth). Each rollout
job runs ``Controller.reconcile_once`` every ``interval`` of its policy with
``max_instances=1`` (no overlap), ``coalesce=True`` (missed runs collapse into one)
and a misfire grace of one interval. The watcher starts rollouts for new staging
versions, reconciles every router with the database (so a router that failed is
retried and drift is repaired) and refreshes the phase gauges. Each watcher pass
beats ``heartbeat`` as it starts and again after each model's routes, which gates
systemd's watchdog (``controller.runtime.heartbeat``): a pass slowed by slow routers keeps
beating while it moves; one stuck on a single call stops.
One guard job (not one per model) runs ``Guard.run_once`` every ``guard.interval``,
first after one interval, with the same no-overlap and coalescing rules.

``shutdown(timeout_s)`` stops starting jobs and waits that long for running ones;
a job still running then is abandoned (the daemon exits under it, and the
intent recorded before any effect lets the next start finish it).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from controller.adapters.rollout_store import RolloutRecord
from controller.runtime.heartbeat import Heartbeat
from controller.shell import requests
from controller.shell.clock_steps import ClockSteps
from controller.shell.controller import Controller
from controller.shell.guard_pass import Guard
from registry import faults

__all__ = ["RolloutScheduler"]

log = structlog.get_logger("controller.runtime.scheduler")
WATCHER = "watcher"
GUARD = "guard"
LEASES = "leases"
REQUESTS = "requests"


RESUME_SPREAD_EACH = timedelta(milliseconds=1)  # about one look's CPU
RESUME_SPREAD_MAX = timedelta(seconds=10)
_GOLDEN = 0.6180339887498949


def resume_spread(rollouts: int) -> timedelta:
    """How long resumed looks are spread over: about a look's CPU per rollout, so a
    few rollouts resume at once and thousands over seconds, at most ``RESUME_SPREAD_MAX``."""
    return min(RESUME_SPREAD_MAX, RESUME_SPREAD_EACH * rollouts)


def resume_at(
    rollout_id: int, due: datetime, now: datetime, interval: timedelta, spread: timedelta
) -> datetime:
    """When a (re)started daemon first looks at a rollout it finds in the database
    (its next look was ``due``).

    A look due within its interval keeps its time, so a restart does not change the
    cadence. Looks already due (or set further ahead than an interval, by a clock that
    stepped back) are spread over the next ``spread`` by rollout id (evenly, by the
    golden ratio's multiples), so that a daemon restarted with thousands of rollouts
    neither looks at them all in the same instant, nor answers its first probes late
    because of it.
    """
    if now < due <= now + interval:
        return due
    return now + spread * ((rollout_id * _GOLDEN) % 1.0)


class RolloutScheduler:
    """Owns the APScheduler instance and keeps its jobs equal to the active rollouts."""

    def __init__(self, controller: Controller, guard: Guard | None = None) -> None:
        self.controller = controller
        self.guard = guard
        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        controller.on_started = self.ensure_job
        self.heartbeat = Heartbeat()
        self._running = 0  # jobs in flight, for a bounded shutdown
        self._idle = threading.Condition()
        self._stopping = False
        self._stop_watching = threading.Event()

    def start(self) -> None:
        """Start the scheduler and rebuild every job from the database."""
        self._scheduler.start()
        threading.Thread(target=self._watch_clock, name="clock-steps", daemon=True).start()
        self.sync_jobs()
        interval = self.controller.config.watch_interval
        self._scheduler.add_job(
            self.watch_pass,
            "interval",
            seconds=interval,
            id=WATCHER,
            replace_existing=True,
            misfire_grace_time=max(1, int(interval)),
            next_run_time=datetime.now(UTC),
        )
        self._plan_guard()
        membership = self.controller.membership
        if membership is not None:  # several daemons: renew every third of the TTL
            every = membership.leases.ttl / 3
            self._scheduler.add_job(
                self.lease_round,
                "interval",
                seconds=every,
                id=LEASES,
                replace_existing=True,
                misfire_grace_time=max(1, int(every)),
            )
            poll = self.controller.config.ha.request_poll
            self._scheduler.add_job(
                self.request_pass,
                "interval",
                seconds=poll,
                id=REQUESTS,
                replace_existing=True,
                misfire_grace_time=1,
            )

    def lease_round(self) -> None:
        """One lease round (``controller.shell.membership``); it never raises: a round
        without the database owns nothing, and the next one retries. Shards taken or
        lost change which rollouts this member runs jobs for."""
        membership = self.controller.membership
        if membership is None or not self._enter():
            return
        try:
            result = membership.round()
            if result.acquired or result.lost or result.released:
                self.sync_jobs()
                self.request_pass()  # what waited for this shard's owner, at once
        except Exception:
            log.exception("lease_round_crashed")
        finally:
            self._leave()

    def request_pass(self) -> None:
        """Apply the durable requests of this member's shards (``shell.requests``)."""
        if self.controller.membership is None or not self._enter():
            return
        try:
            requests.apply_pending(self.controller)
        except Exception:  # the next pass retries; a passing DB error is logged
            log.exception("request_pass_failed")
        finally:
            self._leave()

    def sync_jobs(self) -> None:
        """One job per active rollout this member owns (all of them for one daemon),
        none for the others: rollouts started by another member, or on shards taken
        over, get theirs here."""
        wanted = {
            f"rollout-{record.id}": record
            for record in self.controller.store.active()
            if self.controller.owns(record.model)
        }
        have = {job.id for job in self._scheduler.get_jobs() if job.id.startswith("rollout-")}
        spread = resume_spread(len(wanted.keys() - have))
        for job_id, record in wanted.items():
            if job_id not in have:
                self.ensure_job(record, resume=spread)
        for job_id in have - set(wanted):
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(job_id)

    def _watch_clock(self, every_s: float = 1.0) -> None:
        """Rewind the jobs when the wall clock steps back (``rewind``); APScheduler sets
        every next run by the wall clock, so without this a clock set back ten minutes
        would stall every job for ten minutes."""
        steps = ClockSteps()
        steps.stepped(0, datetime.now(UTC))
        while not self._stop_watching.wait(every_s):
            try:
                stepped = steps.stepped(0, datetime.now(UTC))
                if stepped < 0:
                    log.warning("clock_stepped_back", seconds=round(-stepped, 3))
                    self.rewind()
            except Exception:  # the watcher must outlive any one pass
                log.exception("clock_watch_failed")

    def rewind(self) -> list[str]:
        """Every job whose next run lies further ahead than its interval (the clock
        stepped back after it was set) runs now instead; return their ids. Its interval
        goes on from there."""
        now = datetime.now(UTC)
        moved = []
        for job in self._scheduler.get_jobs():
            interval = getattr(job.trigger, "interval", None)
            if job.next_run_time is None or not isinstance(interval, timedelta):
                continue
            if job.next_run_time > now + interval:
                with contextlib.suppress(JobLookupError):  # the job ended meanwhile
                    job.modify(next_run_time=now)
                    moved.append(job.id)
        return moved

    def shutdown(self, timeout_s: float | None = None) -> int:
        """Stop; wait up to ``timeout_s`` (None: forever) for running jobs; return how
        many were still running (abandoned)."""
        self._stop_watching.set()
        with self._idle:
            self._stopping = True  # jobs the executor still holds will not start
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout=timeout_s)
            return self._running

    def running(self) -> int:
        with self._idle:
            return self._running

    def _enter(self) -> bool:
        """Count a job in; False once shutdown began (the job must not start)."""
        with self._idle:
            if self._stopping:
                return False
            self._running += 1
            return True

    def _leave(self) -> None:
        with self._idle:
            self._running -= 1
            self._idle.notify_all()

    def replan(self) -> None:
        """After a config reload: every active rollout's job at its (new) interval, and
        the watcher at the new watch interval."""
        mine = [r for r in self.controller.store.active() if self.controller.owns(r.model)]
        spread = resume_spread(len(mine))
        for record in mine:
            self.ensure_job(record, resume=spread)
        interval = self.controller.config.watch_interval
        self._scheduler.reschedule_job(WATCHER, trigger="interval", seconds=interval)
        self._plan_guard()

    def _plan_guard(self) -> None:
        """The guard job at the config's interval; none when guarding is off."""
        settings = self.controller.config.guard
        if self.guard is None or not settings.enabled:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(GUARD)
            return
        job = self._scheduler.get_job(GUARD)
        if job is not None and job.trigger.interval.total_seconds() == settings.interval:
            return  # unchanged: keep its next run
        self._scheduler.add_job(
            self._guard,
            "interval",
            seconds=settings.interval,
            id=GUARD,
            replace_existing=True,
            misfire_grace_time=max(1, int(settings.interval)),
            next_run_time=datetime.now(UTC) + timedelta(seconds=settings.interval),
        )

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    def ensure_job(self, record: RolloutRecord, *, resume: timedelta | None = None) -> None:
        """One job for this rollout at its policy's interval (replacing any old one);
        its first run now (a rollout just started), or ``resume_at`` over the spread
        ``resume`` (one found in the database)."""
        policy = self.controller.policy(record.model)
        if policy is None:
            log.warning("rollout_without_policy", rollout=record.id, model=record.model)
            return
        now = datetime.now(UTC)
        interval = timedelta(seconds=policy.interval)
        soon = now + timedelta(milliseconds=50)
        first_run = (
            soon
            if resume is None
            else resume_at(record.id, record.next_eval_at, now, interval, resume)
        )
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=policy.interval,
            args=[record.id],
            id=f"rollout-{record.id}",
            replace_existing=True,
            misfire_grace_time=max(1, int(policy.interval)),
            next_run_time=first_run,
        )

    def _tick(self, rollout_id: int) -> None:
        if not self._enter():
            return
        try:
            self._tick_once(rollout_id)
        finally:
            self._leave()

    def _tick_once(self, rollout_id: int) -> None:
        try:
            faults.point("tick")
            self.controller.reconcile_once(rollout_id)
            record = self.controller.store.get(rollout_id)
        except Exception:  # a failing tick must not kill the job; it is retried next interval
            log.exception("tick_failed", rollout=rollout_id)
            return
        if not record.active and record.intent is None:
            with contextlib.suppress(JobLookupError):  # another run removed it already
                self._scheduler.remove_job(f"rollout-{rollout_id}")
            self.controller.refresh_phase_metrics()

    def _guard(self) -> None:
        if self.guard is None or not self._enter():
            return
        try:
            self.guard.run_once()
        except Exception:  # a failing pass must not kill the job; the next one retries
            log.exception("guard_failed")
        finally:
            self._leave()

    def watch_pass(self) -> None:
        """One run of the watcher job: start rollouts, reconcile routers, refresh gauges."""
        self.heartbeat.beat()
        if not self._enter():
            return
        try:
            faults.point("watch")
            self._watch_once()
        finally:
            self._leave()

    def _watch_once(self) -> None:
        try:
            self.controller.watch_once()
            if self.controller.membership is not None:
                self.sync_jobs()  # rollouts another member started on this one's shards
            self.controller.reconcile_routers(progress=self.heartbeat.beat)
            self.controller.refresh_phase_metrics()
        except Exception:  # the watcher retries next interval; the error is logged
            log.exception("watch_failed")
