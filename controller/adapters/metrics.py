"""The daemon's own metrics, on an injected prometheus-client ``CollectorRegistry``.

All names start with ``modelreg_controller_``. Tests pass a fresh registry; the
daemon passes its own and serves it on ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.core.causes import Cause
from controller.core.phases import Phase

__all__ = ["ControllerMetrics"]

_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ControllerMetrics:
    """Counters, gauges and histograms the shell updates."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = "modelreg_controller_"
        self.rollouts = Gauge(p + "rollouts", "Rollouts by phase.", ["phase"], registry=registry)
        self.evaluations = Counter(p + "evaluations", "Rollout evaluations.", registry=registry)
        self.evaluation_seconds = Histogram(
            p + "evaluation_seconds", "Time one evaluation took.", registry=registry
        )
        self.decisions = Counter(
            p + "decisions", "Decisions by action.", ["action"], registry=registry
        )
        self.rollbacks = Counter(
            p + "rollbacks",
            "Rollbacks by cause (harm, trigger, max_duration, no_gain, missing_data, ...).",
            ["reason"],
            registry=registry,
        )
        self.weight = Gauge(
            p + "route_weight",
            "Current traffic weight (percent) per model and version.",
            ["model", "version"],
            registry=registry,
        )
        self.source_errors = Counter(
            p + "source_errors",
            "Measurements that came back as errors, by source.",
            ["source"],
            registry=registry,
        )
        self.router_errors = Counter(
            p + "router_errors", "Failed router writes or reads.", ["router"], registry=registry
        )
        self.router_ready = Gauge(
            p + "router_ready", "1 when the router took the last route.", ["router"],
            registry=registry,
        )  # fmt: skip
        self.lag = Histogram(
            p + "evaluation_lag_seconds",
            "How late an evaluation ran after it was due.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.awaiting_approval = Gauge(
            p + "awaiting_approval_seconds",
            "Seconds the model's rollout has waited for approval (0 when not waiting).",
            ["model"],
            registry=registry,
        )
        self.approval_overdue = Counter(
            p + "approval_overdue",
            "Approval waits that went past the policy's approval.max_wait (once per wait).",
            ["model"],
            registry=registry,
        )
        for phase in Phase:
            self.rollouts.labels(phase.value)

    def set_phases(self, phases: Iterable[str]) -> None:
        counts = {phase.value: 0 for phase in Phase}
        for phase in phases:
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.rollouts.labels(phase).set(count)


def rollback_label(cause: Cause | None) -> str:
    """A low-cardinality label for a rollback: its typed cause
    (``controller.core.causes``), ``other`` when it has none."""
    return "other" if cause is None else cause.value
