"""Measuring: one path from a configured source to a ``Measurement``, for rollouts and
the guard alike.

Every source is a ``MetricSource``. An ingest source (``monitors.IngestSource``) is
read once per source, version and window (its ``events``, shared by every metric of a
tick or a guard pass) and each metric computed from them by the source itself
(``measure_events``, with the source's own options); any other source answers
``measure``. A source that raises gives an error measurement, never an exception, and
every error measurement is counted per source.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import pandas as pd

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.registry_gateway import read_approvals
from controller.adapters.rollout_store import RolloutRecord
from controller.core.phases import Phase
from controller.core.policy import PolicyConfig
from controller.core.state import Observations
from monitors import IngestSource, Measurement, MetricSource, MetricSpec, Status, Subject, Window
from registry import ModelRegistry

__all__ = ["FrameCache", "Measurer"]

FrameCache = dict[tuple[str, str], pd.DataFrame | str]  # (source, version) -> events


class Measurer:
    """The configured sources by name."""

    def __init__(
        self, *, sources: Mapping[str, MetricSource], metrics: ControllerMetrics | None = None
    ) -> None:
        self.sources = dict(sources)
        self.metrics = metrics

    def observe(
        self, registry: ModelRegistry, policy: PolicyConfig, record: RolloutRecord, now: datetime
    ) -> Observations:
        """Both arms' measurements since the step started plus the settle time, and the
        registry's approvals of the candidate."""
        required, approvals = read_approvals(registry, record.model, record.treatment)
        begin = record.step_started_at + timedelta(seconds=policy.settle_seconds)
        if now <= begin or record.phase is Phase.AWAITING_APPROVAL:  # no metric judges a wait
            return Observations(approval_required=required, approvals=approvals)
        window = Window(end=now, length=now - begin)
        # By version, not arm: a version's traffic is its arm's, whatever serving labels.
        subjects = (
            Subject(record.model, version=record.control),
            Subject(record.model, version=record.treatment),
        )
        measured = {}
        frames: FrameCache = {}
        for metric in policy.analysis.metrics:
            spec = metric.monitor_spec()
            pair = tuple(self.measure(metric.source, spec, s, window, frames) for s in subjects)
            measured[metric.name] = (pair[0], pair[1])
        units_cfg = policy.analysis.units
        units_source = units_cfg.source or policy.analysis.metrics[0].source
        units_spec = MetricSpec(name="units", query=units_cfg.query, type=units_cfg.type)
        units = tuple(self.measure(units_source, units_spec, s, window, frames) for s in subjects)
        return Observations(
            measured, (units[0], units[1]), approval_required=required, approvals=approvals
        )

    def measure(
        self,
        source: str,
        spec: MetricSpec,
        subject: Subject,
        window: Window,
        frames: FrameCache,
    ) -> Measurement:
        """``spec`` of ``subject`` over ``window`` from ``source`` (``frames``: the
        caller's cache of ingest windows, one read per source and version)."""
        try:
            found = self.sources[source]
            if isinstance(found, IngestSource):  # one read per version and window
                key = (source, subject.version)
                if key not in frames:
                    frames[key] = found.events(subject, window)
                result = found.measure_events(frames[key], spec, subject, window)
            else:
                result = found.measure(spec, subject, window)
        except Exception as exc:  # a source must not raise; if one does, it is an error reading
            result = Measurement.error(spec.name, subject, window, f"{type(exc).__name__}: {exc}")
        if result.status is Status.ERROR and self.metrics is not None:
            self.metrics.source_errors.labels(source).inc()
        return result
