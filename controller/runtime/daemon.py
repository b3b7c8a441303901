"""Wiring: build every part from a ``Config`` and run the daemon in one process.

``Daemon.build(config)`` first refuses a config whose options this process's
environment cannot serve (``controller.config.environment_problems``: an unset
variable, an unreadable secret or CA file; the lines ``config check`` warns with),
before anything is opened. Then it opens the registry, the controller's store
(migrating it) and the sources, builds the routers from their validated options,
the notifiers, the controller, the scheduler and the API. Committed decisions are
posted to the ``notifications`` webhooks.
``start()`` reconciles every router with the database, rebuilds the jobs and
marks the daemon ready; ``run(config)`` serves the API with uvicorn until SIGTERM
or SIGINT, then stops the scheduler and closes everything.

Under systemd (``Type=notify``) the daemon sends ``READY=1`` once migrations ran
(``build``), the routers were reconciled and the jobs rebuilt (``start``) and the
API's socket listens (uvicorn's ``started``); ``WATCHDOG=1`` at half of
``WatchdogSec`` but only while the reconcile loop's heartbeat is fresh
(``controller.runtime.heartbeat``), so a wedged loop gets the daemon restarted;
``RELOADING=1`` on SIGHUP and ``STOPPING=1`` on shutdown (``controller.runtime.systemd``;
no-ops elsewhere).

SIGTERM: the API stops accepting and finishes its requests, the scheduler starts
no new job and waits ``server.stop_timeout_s`` for running ones, then the
databases are closed and the exit code is 0. A job still running then is
abandoned: the process exits under it (``os._exit``, as joining it could hang),
which the intent-first store makes safe; the next start finishes its intent.

SIGHUP re-reads the config file, one reload at a time; signals arriving during
a reload cause one more reload after it (``controller.runtime.reloader``). Policies
(``models``), ``alerts``, ``guard`` and ``watch_interval`` take effect at once: jobs are
re-planned at the new intervals. A new file that is invalid, or that changes
``registry``, ``server``, ``sources``, ``routers``, ``notifications`` or ``ha`` (which
need a restart), is refused with an error log line and the running config stays
in force.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import Any

import structlog
import uvicorn
from prometheus_client import CollectorRegistry, Gauge

from controller.adapters.alert_ledger import AlertLedger
from controller.adapters.guard_store import GuardStore
from controller.adapters.metrics import ControllerMetrics
from controller.adapters.notify import EventKind, Notifications, build_notifier
from controller.adapters.registry_gateway import open_registry
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.http import HttpRouter
from controller.adapters.routing import Router, build_router
from controller.adapters.sources import build_sources, ingest_stores
from controller.config import Config, environment_problems, load_config
from controller.config_paths import path_problems
from controller.errors import ConfigError, OptionError
from controller.http.auth import TokenStore
from controller.http.deps import ApiDeps
from controller.http.fast import DeferredApp, FastReads, build_api
from controller.runtime import ha, heap, listen, systemd
from controller.runtime.heartbeat import Heartbeat, stale_after
from controller.runtime.reloader import Reloader
from controller.runtime.scheduler import RolloutScheduler
from controller.shell.clock_steps import ClockSteps
from controller.shell.controller import Clock, Controller
from controller.shell.guard_pass import Guard
from monitors import AlertIntake, IngestStore
from registry import ModelRegistry, faults

__all__ = ["Daemon", "run"]

log = structlog.get_logger("controller.runtime.daemon")


def utcnow() -> datetime:
    """The daemon's clock: the system's, shifted only by a test's ``clock`` fault."""
    return datetime.now(UTC) + timedelta(seconds=faults.offset("clock"))


def build_notifications(config: Config) -> Notifications | None:
    """One ``Notifier`` per ``notifications`` target; None when there are none.

    A ``url_env`` that is not set is a ``ConfigError`` naming the target's key.
    """
    targets = []
    try:
        for index, target in enumerate(config.notifications):
            try:
                notifier = build_notifier(target)
            except OptionError as exc:
                raise ConfigError(f"{config.source_file}: notifications[{index}].{exc}") from None
            targets.append((notifier, frozenset(EventKind(e) for e in target.events)))
    except ConfigError:
        Notifications(targets).close(0)
        raise
    return Notifications(targets) if targets else None


@dataclass
class Daemon:
    """Every long-lived part of the daemon, built once."""

    config: Config
    registry: ModelRegistry
    store: RolloutStore
    controller: Controller
    scheduler: RolloutScheduler
    app: FastReads  # what uvicorn serves: the hot reads, then ``api``
    api: DeferredApp  # the FastAPI application, built after readiness
    metrics: CollectorRegistry
    deps: ApiDeps
    alerts: AlertIntake | None = None
    ingest: dict[str, IngestStore] = field(default_factory=dict)
    notifications: Notifications | None = None
    ready: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        clock: Clock = utcnow,
        metrics: CollectorRegistry | None = None,
    ) -> Daemon:
        # First, before anything is opened: what the environment lacks (an unset
        # variable, an unreadable secret) and the paths it could not write, the lines
        # `config check` prints.
        databases = [p.line for p in path_problems(config) if p.database]
        missing = environment_problems(config) + databases
        if missing:
            raise ConfigError(missing[0], missing)
        notifications = build_notifications(config)
        registry = open_registry(config, clock)
        store = RolloutStore.open(registry.url)
        sources = build_sources(config)
        ingest = ingest_stores(sources)
        routers: dict[str, Router] = {
            name: build_router(r.kind, r.options) for name, r in config.routers.items()
        }
        collector = metrics or CollectorRegistry()
        controller = Controller(
            config=config,
            registry=registry,
            store=store,
            sources=sources,
            routers=routers,
            clock=clock,
            metrics=ControllerMetrics(collector),
            clock_steps=ClockSteps() if clock is utcnow else None,  # an injected one is a test's
        )
        if notifications is not None:
            controller.on_decision = notifications.post
        guard_store = GuardStore(store.engine, fencing=store.fencing, writes=store.writes)
        guard = Guard(controller, guard_store, metrics=collector)
        ha.join(config, store, controller, collector)  # several daemons: leases, fence
        scheduler = RolloutScheduler(controller, guard)
        ingest_name = config.ingest_source_name()
        holder: dict[str, Daemon] = {}
        ledger = AlertLedger(store.engine, writes=store.writes)
        alerts = (
            AlertIntake(
                [r.rule(i) for i, r in enumerate(config.alerts)], seen=ledger.load(now=clock())
            )
            if config.alerts
            else None
        )
        deps = ApiDeps(
            controller=controller,
            metrics=collector,
            ingest=ingest.get(ingest_name) if ingest_name else None,
            http_routers=[r for r in routers.values() if isinstance(r, HttpRouter)],
            ready=lambda: holder["daemon"].ready,
            alerts=alerts,
            alert_ledger=ledger,
            guard=guard_store,
            tokens=TokenStore.load(config.server.tokens_file)
            if config.server.tokens_file
            else None,
            max_body_bytes=config.server.max_body_bytes,
            max_ingest_body_bytes=config.server.max_ingest_body_bytes,
        )
        api = DeferredApp(partial(build_api, deps))
        daemon = cls(
            config=config,
            registry=registry,
            store=store,
            controller=controller,
            scheduler=scheduler,
            app=FastReads(api, deps),
            api=api,
            metrics=collector,
            deps=deps,
            alerts=alerts,
            ingest=ingest,
            notifications=notifications,
        )
        holder["daemon"] = daemon
        Gauge(
            "modelreg_controller_resident_memory_bytes",
            "Peak resident memory of the daemon process.",
            registry=collector,
        ).set_function(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return daemon

    def start(self) -> None:
        """Reconcile routers with the database, rebuild jobs, then report ready."""
        faults.point("start")
        membership = self.controller.membership
        if membership is not None:
            membership.round()  # this member's shards, before acting

        def progress() -> None:
            self.scheduler.heartbeat.beat()
            if membership is not None:  # the lease job starts with the scheduler, after
                membership.round_if_due()

        errors = self.controller.reconcile_routers(progress=progress)
        self.controller.refresh_phase_metrics()
        self.scheduler.start()
        self.ready = True
        self.api.start()  # FastAPI's import and routes, off the path to readiness
        heap.settle()
        log.info(
            "daemon_ready",
            listen=self.config.server.listen,
            config=self.config.source_file,
            jobs=self.scheduler.job_ids(),
            router_errors=errors,
            seconds=round(time.monotonic() - self.started_at, 3),
            pid=os.getpid(),
        )

    def reload(self) -> bool:
        """Re-read the config file (SIGHUP); True when the new one took effect."""
        systemd.reloading()
        faults.point("reload")
        try:
            new = load_config(self.config.source_file)
        except ConfigError as exc:
            log.error("reload_refused", error=str(exc))
            systemd.ready()
            return False
        fixed = ("registry", "server", "sources", "routers", "notifications", "ha")
        changed = [k for k in fixed if getattr(new, k) != getattr(self.config, k)]
        if changed:
            log.error("reload_refused", error=f"changing {', '.join(changed)} needs a restart")
            systemd.ready()
            return False
        previous = self.config
        try:
            self._apply(new)
        except Exception:  # re-planning failed half-way: the last good config again, whole
            log.exception("reload_failed", config=new.source_file)
            try:
                self._apply(previous)
            finally:
                systemd.ready()  # systemctl reload must not hang whatever happened
            return False
        heap.resettle()
        log.info("reloaded", config=new.source_file, models=sorted(new.models))
        systemd.ready()
        return True

    def _apply(self, config: Config) -> None:
        """Run under ``config``: the controller's policies, the alert rules, the jobs."""
        self.config = config
        self.controller.config = config
        rules = [r.rule(i) for i, r in enumerate(config.alerts)]
        if self.alerts is not None and rules:
            # In place: a delivery handled meanwhile keeps its keys (a new intake built
            # from a snapshot would forget them, and a repeat would act again).
            self.alerts.set_rules(rules)
        elif rules:
            seen = AlertLedger(self.store.engine).load(now=self.controller.clock())
            self.alerts = AlertIntake(rules, seen=seen)
        else:
            self.alerts = None
        self.deps.alerts = self.alerts
        self.scheduler.replan()

    def stop(self) -> int:
        """Stop everything; return how many running jobs were abandoned (see above)."""
        systemd.stopping()
        self.ready = False
        timeout = self.config.server.stop_timeout_s
        log.info("stopping", running_jobs=self.scheduler.running(), timeout_s=timeout)
        abandoned = self.scheduler.shutdown(timeout)
        if self.controller.membership is not None and not abandoned:
            try:  # hand the shards over now rather than after a lease TTL
                self.controller.membership.leave()
            except Exception as exc:  # the leases expire on their own
                log.warning("ha_leave_failed", error=str(exc))
        if abandoned:
            log.error("jobs_abandoned", running_jobs=abandoned, timeout_s=timeout)
        if self.notifications is not None:
            self.notifications.close(timeout_s=5.0)
        for store in self.ingest.values():
            store.close()
        self.store.close()
        self.registry.close()
        log.info("daemon_stopped", abandoned_jobs=abandoned)
        return abandoned


def run(config: Config, *, on_ready: Callable[[Daemon], Any] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (SIGHUP reloads); return the exit code."""
    if os.environ.get(faults.ENV):  # a bad spec fails here, not at the first fault point
        log.warning("test_faults_active", faults=dict(faults.parse(os.environ[faults.ENV])))
    # SIGHUP's default action ends the process: until the reloader exists, a SIGHUP
    # during startup (migrations, first reconcile) is only noted, then done once.
    early: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, frame: early.append(signum))
    # SIGTERM/SIGINT: the same for stopping. Until uvicorn serves (and again after
    # it re-raises the signal it handled) this handler only asks the server to exit,
    # so a stop requested during startup ends in the clean stop below, exit code 0.
    servers: list[uvicorn.Server] = []
    stop_asked: list[int] = []

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop_asked.append(signum)
        for started in servers:
            started.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    # The socket first: a taken port ends here (ListenError), before the database is
    # opened, a job runs or readiness is announced.
    sock = listen.bind(config.server.listen)
    try:
        daemon = Daemon.build(config)
    except BaseException:
        sock.close()
        raise
    server = uvicorn.Server(
        uvicorn.Config(
            daemon.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="uvloop",  # libuv's event loop, as uvicorn[standard] serves
            timeout_keep_alive=30,
        )
    )
    servers.append(server)
    daemon.start()
    if on_ready is not None:
        on_ready(daemon)

    reloader = Reloader(daemon.reload)

    def _hup(signum: int, frame: FrameType | None) -> None:
        reloader.request()  # not in the handler: reloading touches the database

    signal.signal(signal.SIGHUP, _hup)
    if early:
        reloader.request()
    if stop_asked:
        log.info("stop_requested_during_startup", signals=stop_asked)
        server.should_exit = True
    done = threading.Event()
    heartbeat = daemon.scheduler.heartbeat
    threading.Thread(
        target=_supervise, args=(server, done, heartbeat, config),
        name="notify", daemon=True,
    ).start()  # fmt: skip
    try:
        server.run(sockets=[sock])
    finally:
        done.set()
        # Stopping: a SIGHUP now reloads nothing, and must not write to the closed pipe.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        reloader.close()
        abandoned = daemon.stop()
    if abandoned:  # their threads may never end; the store's intents make this safe
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _supervise(
    server: uvicorn.Server, done: threading.Event, heartbeat: Heartbeat, config: Config
) -> None:
    """READY=1 once uvicorn listens, then watchdog pings at half the interval while
    the reconcile loop's heartbeat is fresh; none while it is stale."""
    while not server.started and not done.wait(0.05):
        pass
    if done.is_set():
        return
    systemd.ready()
    systemd.status("serving")
    interval = systemd.watchdog_interval()
    if interval is None:
        return
    limit = stale_after(interval, config.watch_interval, config.server.watchdog_stale_s)
    healthy = True
    while not done.wait(interval / 2):
        fresh = heartbeat.fresh(limit)
        if fresh:
            systemd.watchdog()
        if fresh != healthy:
            healthy = fresh
            if fresh:
                log.info("watchdog_resumed", heartbeat_age_s=round(heartbeat.age(), 3))
                systemd.status("serving")
            else:
                log.error("watchdog_withheld", heartbeat_age_s=round(heartbeat.age(), 3),
                          stale_after_s=limit)  # fmt: skip
                systemd.status("reconcile loop stalled; watchdog pings withheld")
