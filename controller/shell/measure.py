"""Measuring: one path from a configured source to a ``Measurement``, for rollouts and
the guard alike.

Every source is a ``MetricSource``. An ingest source (``monitors.IngestSource``) answers
every query of a tick at once (``measure_many``: for one rollout or all the rollouts a
batched tick looks at, one batch read per source, whatever the number of metrics,
arms and windows); the guard reads a window's events once per source and version
(``events``, shared by every metric of a pass) and has each metric computed from
them by the source itself (``measure_events``); any other source answers
``measure``. A source that raises gives an error measurement, never an exception, and
every error measurement is counted per source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Union

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.registry_gateway import read_approvals
from controller.adapters.rollout_store import RolloutRecord
from controller.core.phases import Phase
from controller.core.policy import PolicyConfig
from controller.core.state import Approvals, ArmPair, Observations
from monitors import IngestSource, Measurement, MetricSource, MetricSpec, Status, Subject, Window
from monitors.measurement import MetricQuery
from registry import ModelRegistry

if TYPE_CHECKING:
    import pandas as pd  # the guard's frames; pandas loads when one is read

__all__ = ["FrameCache", "Look", "Measurer"]

FrameCache = dict[tuple[str, str], Union["pd.DataFrame", str]]  # (source, version) -> events


@dataclass(frozen=True, slots=True)
class Look:
    """One rollout to observe at ``now``, with the registry's approvals of its candidate."""

    policy: PolicyConfig
    record: RolloutRecord
    now: datetime
    approval_required: bool = False
    approvals: Approvals = field(default_factory=Approvals)


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
        return self.observe_many([Look(policy, record, now, required, approvals)])[0]

    def observe_many(self, looks: Sequence[Look]) -> list[Observations]:
        """``observe`` of every look, each source asked once for all of them (an ingest
        source answers in one batch read; another source query by query)."""
        asked: dict[str, list[MetricQuery]] = {}
        plans: list[dict[str, tuple[tuple[str, int], tuple[str, int]]] | None] = []
        made: dict[int, list[tuple[str, str, MetricSpec]]] = {}
        for look in looks:
            policy, record, now = look.policy, look.record, look.now
            begin = record.step_started_at + timedelta(seconds=policy.settle_seconds)
            if now <= begin or record.phase is Phase.AWAITING_APPROVAL:  # no metric judges a wait
                plans.append(None)
                continue
            window = Window(end=now, length=now - begin)
            # By version, not arm: a version's traffic is its arm's, whatever serving labels.
            control = Subject(record.model, version=record.control)
            treatment = Subject(record.model, version=record.treatment)
            plan: dict[str, tuple[tuple[str, int], tuple[str, int]]] = {}
            specs = made.get(id(policy))  # the looks hold their policies: ids stay theirs
            if specs is None:
                specs = made[id(policy)] = _specs(policy)
            for key, source, spec in specs:
                queries = asked.setdefault(source, [])
                plan[key] = ((source, len(queries)), (source, len(queries) + 1))
                queries.append(MetricQuery(spec, control, window))
                queries.append(MetricQuery(spec, treatment, window))
            plans.append(plan)
        answers = {source: self.measure_all(source, queries) for source, queries in asked.items()}
        observed = []
        for look, planned in zip(looks, plans, strict=True):
            if planned is None:
                observed.append(Observations(approval_required=look.approval_required,
                                             approvals=look.approvals))  # fmt: skip
                continue
            pairs: dict[str, ArmPair] = {
                key: (answers[a[0]][a[1]], answers[b[0]][b[1]]) for key, (a, b) in planned.items()
            }
            units_pair = pairs.pop("")
            observed.append(Observations(pairs, units_pair, approvals=look.approvals,
                                         approval_required=look.approval_required))  # fmt: skip
        return observed

    def measure_all(self, source: str, queries: Sequence[MetricQuery]) -> list[Measurement]:
        """Every query of ``source``: at once from an ingest source, else one by one."""
        found = self.sources.get(source)
        if isinstance(found, IngestSource):
            try:
                results = found.measure_many(queries)
            except Exception as exc:  # a source must not raise; if one does, it is an error
                why = f"{type(exc).__name__}: {exc}"
                results = [Measurement.error(q.metric.name, q.subject, q.window, why)
                           for q in queries]  # fmt: skip
            if self.metrics is not None:
                errors = sum(1 for r in results if r.status is Status.ERROR)
                if errors:
                    self.metrics.source_errors.labels(source).inc(errors)
            return results
        return [self.measure(source, q.metric, q.subject, q.window, {}) for q in queries]

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


def _specs(policy: PolicyConfig) -> list[tuple[str, str, MetricSpec]]:
    """(key, source, spec) of each metric of ``policy``, then of its units under the
    key ``""`` (no metric has an empty name)."""
    units = policy.analysis.units
    return [
        *((m.name, m.source, m.monitor_spec()) for m in policy.analysis.metrics),
        (
            "",
            units.source or policy.analysis.metrics[0].source,
            MetricSpec(name="units", query=units.query, type=units.type),
        ),
    ]
