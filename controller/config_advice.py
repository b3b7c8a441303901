"""Warnings ``modelreg config check`` gives about policies that are valid but unwise.

An absolute ``margin`` larger than half of a metric's typical value tolerates a loss
of half the metric (``margin: 0.01`` on a 1% error rate lets a candidate with twice
the errors pass as non-inferior). The typical value comes from what can be known
without a running daemon, best first:

1. the production version's recent data in the policy's ingest source (the last
   hour, when the source's database exists);
2. the production version's registered metadata under the metric's name or query
   (when the registry's database exists);
3. a trigger on the metric: its ``above`` threshold bounds the values the policy
   lets through, so a typical value is below it;
4. for a proportion, 1: an absolute margin of 0.5 or more is too large for any rate.

``margin_warnings`` and ``direction_warnings`` are pure; ``typical_values`` does the
reading, through read-only connections to databases that already exist (never
creating or migrating anything), and treats anything it cannot read as unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from controller.config import Config, MetricConfig, PolicyConfig
from monitors import IngestOptions, IngestSource, IngestStore, Subject, Window
from registry.schema import models_t, versions_t

__all__ = ["Typical", "direction_warnings", "margin_warnings", "typical_values"]


@dataclass(frozen=True, slots=True)
class Typical:
    """A typical value of a metric and where it was found."""

    value: float
    where: str


Key = tuple[str, str]  # (model, metric)


def _from_policy(policy: PolicyConfig, metric: MetricConfig) -> Typical | None:
    """The inference that needs no data: the lowest of a trigger's threshold and, for a
    rate, its ceiling of 1."""
    bounds = [
        Typical(t.threshold, f"below the trigger threshold {t.threshold:g}")
        for t in policy.triggers
        if t.metric == metric.name and t.direction == "above" and t.compare == "value"
        and t.threshold > 0
    ]  # fmt: skip
    if metric.kind == "proportion":
        bounds.append(Typical(1.0, "a rate is at most 1"))
    return min(bounds, key=lambda b: b.value, default=None)


def margin_warnings(config: Config, typical: Mapping[Key, Typical] | None = None) -> list[str]:
    """One line per absolute margin larger than half of a typical value of its metric."""
    found = dict(typical or {})
    out = []
    for model, policy in sorted(config.models.items()):
        for i, m in enumerate(policy.analysis.metrics):
            if m.relative_margin or m.margin <= 0 or m.role != "guardrail":
                continue
            seen = found.get((model, m.name)) or _from_policy(policy, m)
            if seen is None or not (math.isfinite(seen.value) and seen.value > 0):
                continue
            if m.margin > seen.value / 2:
                ratio = m.margin / seen.value
                out.append(
                    f"{config.source_file}: models.{model}.analysis.metrics[{i}].margin: "
                    f"{m.margin:g} is {ratio:.3g}x a typical {m.name} of {seen.value:.4g} "
                    f"({seen.where}): a candidate that much worse passes as non-inferior; "
                    "a relative margin such as 10% follows the control's value"
                )
    return out


def direction_warnings(config: Config) -> list[str]:
    """One line per metric without a direction: it is reported, never judged (before
    directions were optional, a missing one meant ``higher``)."""
    return [
        f"{config.source_file}: models.{model}.analysis.metrics[{i}].direction: not set: "
        f"{m.name} is only reported; it can neither roll a candidate back nor block or "
        "allow a promotion (set direction: higher or lower)"
        for model, policy in sorted(config.models.items())
        for i, m in enumerate(policy.analysis.metrics)
        if m.direction is None
    ]


def _read_only(url: str) -> sa.Engine | None:
    """An engine that cannot write to ``url``'s database, or None when there is no
    such database to read (a SQLite file that does not exist, an unsupported kind)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            return None
        return sa.create_engine(f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true")
    if backend == "postgresql":
        return sa.create_engine(parsed, execution_options={"postgresql_readonly": True})
    return None


def typical_values(config: Config, *, now: datetime) -> dict[Key, Typical]:
    """Typical values from the production versions' data and metadata (see the module
    docstring), for every guardrail with an absolute margin; best effort, read-only."""
    wanted = {
        (model, m.name): m
        for model, policy in config.models.items()
        for m in policy.analysis.metrics
        if m.role == "guardrail" and not m.relative_margin and m.margin > 0
    }
    if not wanted:
        return {}
    production = _production(config, {model for model, _ in wanted})
    found: dict[Key, Typical] = {}
    for (model, name), metric in wanted.items():
        version, metadata = production.get(model, (None, {}))
        if version is None:
            continue
        value = _recent(config, model, version, metric, now)
        if value is not None:
            where = f"{model} {version}, last hour of {metric.source}"
            found[(model, name)] = Typical(value, where)
            continue
        for key in (metric.name, metric.query):
            meta = metadata.get(key)
            if isinstance(meta, int | float) and not isinstance(meta, bool):
                found[(model, name)] = Typical(float(meta), f"{model} {version} metadata {key!r}")
                break
    return found


def _production(config: Config, models: set[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each model's production version and its metadata, read from the registry's
    tables through a read-only connection (opening the registry would migrate it)."""
    engine = _read_only(config.registry_url())
    if engine is None:
        return {}
    model, version = models_t, versions_t
    query = (
        sa.select(model.c.name, version.c.major, version.c.minor, version.c.patch,
                  version.c.metadata)
        .select_from(version.join(model, version.c.model_id == model.c.id))
        .where(version.c.stage == "production", model.c.name.in_(sorted(models)))
    )  # fmt: skip
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    try:
        with engine.connect() as conn:
            for name, major, minor, patch, meta in conn.execute(query):
                out[name] = (f"v{major}.{minor}.{patch}", meta if isinstance(meta, dict) else {})
    except sa.exc.SQLAlchemyError:
        return {}  # not a registry of this schema, or unreadable: nothing to infer
    finally:
        engine.dispose()
    return out


def _recent(
    config: Config, model: str, version: str, metric: MetricConfig, now: datetime
) -> float | None:
    """The metric over the last hour of an existing ingest source, for ``version``."""
    source = config.sources.get(metric.source)
    if source is None or not isinstance(source.options, IngestOptions):
        return None
    url = source.options.url
    engine = _read_only(url) if url is not None else None
    if engine is None:
        return None
    try:
        measured = IngestSource(IngestStore.reader(engine)).measure(
            metric.monitor_spec(),
            Subject(model, version=version),
            Window(end=now, length=timedelta(hours=1)),
        )
    except Exception:  # a source reports failures as data; advice must never break a check
        return None
    finally:
        engine.dispose()
    if not measured.ok or measured.value is None or measured.sample_size < 30:
        return None
    return measured.value
