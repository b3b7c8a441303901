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

``margin_warnings`` is pure; ``typical_values`` does the reading, opening only
databases that already exist, and treats anything it cannot read as unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from controller.config import Config, MetricConfig, PolicyConfig

__all__ = ["Typical", "margin_warnings", "typical_values"]


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


def _sqlite_missing(url: str) -> bool:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return False
    path = url[len(prefix) :].split("?", 1)[0]
    return path in ("", ":memory:") or not Path(path).exists()


def typical_values(config: Config, *, now: datetime) -> dict[Key, Typical]:
    """Typical values from the production versions' data and metadata (see the module
    docstring), for every guardrail with an absolute margin; best effort."""
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
            found[(model, name)] = Typical(
                value, f"{model} {version}, last hour of {metric.source}"
            )
            continue
        for key in (metric.name, metric.query):
            meta = metadata.get(key)
            if isinstance(meta, int | float) and not isinstance(meta, bool):
                found[(model, name)] = Typical(float(meta), f"{model} {version} metadata {key!r}")
                break
    return found


def _production(config: Config, models: set[str]) -> dict[str, tuple[str, dict[str, object]]]:
    """Each model's production version and its metadata, from an existing registry."""
    url = config.registry_url()
    if _sqlite_missing(url):
        return {}
    try:
        from registry import ModelRegistry  # noqa: PLC0415 -- only when a registry exists

        registry = ModelRegistry(url, home=config.registry.home)
    except Exception:
        return {}
    out: dict[str, tuple[str, dict[str, object]]] = {}
    try:
        for model in models:
            try:
                v = registry.resolve(model)
            except Exception:  # noqa: S112 -- no production version: nothing to infer
                continue
            out[model] = (str(v.version), dict(v.metadata or {}))
    finally:
        registry.close()
    return out


def _recent(
    config: Config, model: str, version: str, metric: MetricConfig, now: datetime
) -> float | None:
    """The metric over the last hour of an existing ingest source, for ``version``."""
    source = config.sources.get(metric.source)
    if source is None or source.kind != "ingest":
        return None
    url = source.options.get("url")
    if not isinstance(url, str) or _sqlite_missing(url):
        return None
    try:
        from monitors import IngestSource, Subject, Window  # noqa: PLC0415 -- ditto

        measured = IngestSource.from_config(source.options).measure(
            metric.monitor_spec(),
            Subject(model, version=version),
            Window(end=now, length=timedelta(hours=1)),
        )
    except Exception:
        return None
    if not measured.ok or measured.value is None or measured.sample_size < 30:
        return None
    return measured.value
