"""Guarding production, the shell: ``Guard.run_once()`` is one pass over every model.

For each model with a production version, triggers (policy ``triggers`` and/or the
registry's auto-rollback triggers, ``controller.core.guard.merge``) and no active
rollout (a rollout's own triggers judge it then):

1. **measure** the production version over each trigger's window, from the source
   the policy names for that metric, else ``guard.source`` or the ingest source,
   with the metric's name as the statistic. Failures are error measurements.
2. **judge** (pure, ``controller.core.guard.judge``) with the remembered streaks and the
   model's last guard action; a streak whose last judgement is older than a few
   guard intervals (a model skipped during a rollout) starts over.
3. **act** on a firing outside cooldown: ask the actuator's one production-rollback
   path (``Actuator.roll_back_production``, judged by ``controller.core.production``):
   a ``pending`` row in the production ledger, ``registry.rollback`` (the previous
   production version; audited, the trigger's numbers as the reason, actor
   ``modelreg-controller:guard``), the outcome, all traffic to the restored version
   with a newer revision, a notification. Nothing to roll back to is recorded too,
   with the cooldown, so it is not retried every interval.
4. **remember** every trigger's streak, in one transaction for the whole pass.

All times come from the controller's injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.adapters.guard_store import GuardStore
from controller.core.causes import Cause
from controller.core.guard import (
    GuardTrigger,
    GuardVerdict,
    TriggerMemory,
    from_policy,
    from_registry,
    judge,
    merge,
    registered_baseline,
)
from controller.core.production import ProductionAction, RollbackRequest
from controller.shell.controller import Controller
from controller.shell.measure import FrameCache
from monitors import Measurement, MetricSpec, Subject, Window
from registry import RegistryError
from registry.auto_rollback import Setting

__all__ = ["GUARD_ACTOR", "Guard", "GuardMetrics"]

GUARD_ACTOR = "modelreg-controller:guard"
log = structlog.get_logger("controller.core.guard")


class GuardMetrics:
    """``modelreg_guard_*`` on the daemon's collector registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "modelreg_guard_"
        self.evaluations = Counter(
            p + "evaluations", "Trigger evaluations on production versions, by result.",
            ["status"], registry=registry,
        )  # fmt: skip
        self.rollbacks = Counter(
            p + "rollbacks", "Production rollbacks made by the guard.", ["model"],
            registry=registry,
        )  # fmt: skip
        self.models = Gauge(p + "models", "Models guarded in the last pass.", registry=registry)
        self.pass_seconds = Histogram(
            p + "pass_seconds", "Time one guard pass over every model took.", registry=registry
        )


class Guard:
    """Measures, judges and rolls back production versions; state in ``GuardStore``."""

    def __init__(
        self,
        controller: Controller,
        store: GuardStore,
        *,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self.controller = controller
        self.store = store
        self.metrics = GuardMetrics(metrics) if metrics is not None else None

    def triggers_for(
        self, model: str, settings: Mapping[str | None, Setting]
    ) -> tuple[GuardTrigger, ...]:
        """The policy's triggers, then the registry's (its own, else registry-wide)."""
        config = self.controller.config
        policy = config.models.get(model)
        guard = config.guard
        from_file = [
            from_policy(
                t.spec(),
                window=guard.window,
                cooldown=guard.cooldown,
                min_samples=guard.min_samples,
            )
            for t in (policy.triggers if policy is not None else ())
        ]
        own = settings.get(model)
        stored = own.triggers if own is not None and own.triggers is not None else None
        if stored is None:
            default = settings.get(None)
            stored = default.triggers if default is not None else None
        return merge(from_file, (from_registry(t) for t in stored or ()))

    def run_once(self) -> list[GuardVerdict]:
        """One pass over every guarded model, on the shards held as it begins
        (``Controller.acting``); returns the verdicts."""
        if not self.controller.config.guard.enabled:
            return []
        with self.controller.acting():
            return self._pass()

    def _pass(self) -> list[GuardVerdict]:
        started = time.perf_counter()
        registry = self.controller.registry
        now = self.controller.clock()
        settings = registry.auto_rollback_settings()
        active = {r.model for r in self.controller.store.active()}
        memories = self.store.memories()
        actions = self.store.ledger.last_actions(Cause.GUARD)
        verdicts: list[GuardVerdict] = []
        remembered: dict[str, Mapping[str, TriggerMemory]] = {}
        for summary in registry.list_models():
            if summary.production is None or summary.name in active:
                continue  # nothing to guard, or its rollout judges it
            if not self.controller.owns(summary.name):
                continue  # another member's shard (several daemons)
            triggers = self.triggers_for(summary.name, settings)
            if not triggers:
                continue
            version = str(summary.production)
            verdict = self.check(
                summary.name,
                version,
                triggers,
                memories.get(summary.name, {}),
                actions.get(summary.name),
                now=now,
            )
            verdicts.append(verdict)
            remembered[summary.name] = verdict.memories
            if verdict.action == "rollback":
                self._act(verdict, now)
            elif verdict.action == "cooldown":
                log.warning("guard_fired_in_cooldown", model=verdict.model,
                            version=version, reason=verdict.reason)  # fmt: skip
        self.store.save_memories(remembered)
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.models.set(len(verdicts))
            self.metrics.pass_seconds.observe(seconds)
        log.info("guard_pass", models=len(verdicts), seconds=round(seconds, 4),
                 rollbacks=sum(v.action == "rollback" for v in verdicts))  # fmt: skip
        return verdicts

    def check(
        self,
        model: str,
        version: str,
        triggers: Sequence[GuardTrigger],
        memories: Mapping[str, TriggerMemory],
        last_action: ProductionAction | None,
        *,
        now: datetime,
    ) -> GuardVerdict:
        """Measure the production version for every trigger, then judge (no action)."""
        subject = Subject(model, version=version)
        frames: dict[float, FrameCache] = {}
        measured: dict[str, Measurement] = {}
        baselines: dict[str, Measurement] = {}
        metadata: Mapping[str, object] | None = None
        for trigger in triggers:
            window = Window(end=now, length=trigger.window)
            where = self._where(model, trigger.spec.metric)
            if where is None:
                measured[trigger.name] = Measurement.nodata(
                    trigger.spec.metric, subject, window,
                    "no source measures this metric: define it in the model's policy or "
                    "give the config an ingest source (guard.source)",
                )  # fmt: skip
                continue
            source, spec = where
            cache = frames.setdefault(trigger.window.total_seconds(), {})
            # The controller's one measuring path, shared with rollouts (one read per
            # source, version and window, whatever the number of metrics).
            measurement = self.controller.measurer.measure(source, spec, subject, window, cache)
            measured[trigger.name] = measurement
            if trigger.spec.compare != "value":
                if metadata is None:
                    metadata = self._metadata(model, version)
                base = registered_baseline(metadata, trigger.spec.metric, measurement)
                if base is not None:
                    baselines[trigger.name] = base
        interval = timedelta(seconds=self.controller.config.guard.interval)
        verdict = judge(model, version, triggers, measured, memories, now=now, interval=interval,
                        last_action=last_action, baselines=baselines)  # fmt: skip
        if self.metrics is not None:
            for result in verdict.results:
                self.metrics.evaluations.labels(result.status.value).inc()
        for result in verdict.results:
            if result.status.value in ("error", "breached") or result.fired:
                log.info("guard_result", model=model, version=version, trigger=result.trigger,
                         status=result.status.value, reason=result.reason)  # fmt: skip
        return verdict

    def _metadata(self, model: str, version: str) -> Mapping[str, object]:
        try:
            return self.controller.registry.get_model_version(model, version).metadata
        except RegistryError:
            return {}

    def _where(self, model: str, metric: str) -> tuple[str, MetricSpec] | None:
        """The policy's source and query for ``metric``, else the guard's source with
        the metric's name as the statistic."""
        config = self.controller.config
        policy = config.models.get(model)
        for defined in policy.analysis.metrics if policy is not None else ():
            if defined.name == metric:
                return defined.source, defined.monitor_spec()
        source = config.guard.source or config.ingest_source_name()
        if source is None:
            return None
        return source, MetricSpec(name=metric, query=metric)

    def _act(self, verdict: GuardVerdict, now: datetime) -> None:
        """Roll production back through the actuator (see the module docstring, step 3)."""
        done = self.controller.actuator.roll_back_production(
            RollbackRequest(
                model=verdict.model,
                cause=Cause.GUARD,
                actor=GUARD_ACTOR,
                reason=verdict.reason,
                expected=verdict.version,
                cooldown_until=now + verdict.cooldown,
            )
        )
        if done.changed and self.metrics is not None:
            self.metrics.rollbacks.labels(verdict.model).inc()
