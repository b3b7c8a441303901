"""Comparing two versions: metric deltas with the right direction, feature changes,
and a recommendation, rendered in the layout the seed shows.

Pure: takes two records, returns a ``Comparison``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.records import ModelVersion
from registry.versions import required_bump

# Quantities where a smaller number is the better one.
_LOWER_IS_BETTER = re.compile(
    r"latency|size|error|loss|mae|mse|rmse|cpu|memory|duration|false_positive|fpr|fnr|drift"
)
_PERFORMANCE = re.compile(r"latency|size|cpu|memory|throughput")
_NOT_A_METRIC = re.compile(r"version|date|increment|^num_|seed|^n_|^training_")
_QUANTITY = re.compile(r"\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)(?:\s.*)?")
_UNIT_SCALE = {
    "": 1.0,
    "ms": 1.0,
    "s": 1000.0,
    "us": 0.001,
    "b": 1 / 1e6,
    "kb": 1 / 1e3,
    "mb": 1.0,
    "gb": 1e3,
    "%": 1.0,
    "cores": 1.0,
    "min": 1.0,
}
_LABELS = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "roc_auc": "ROC AUC",
    "auc": "AUC",
    "f1_score": "F1 score",
    "f1": "F1",
    "inference_latency_p50": "Latency",
    "inference_latency_p95": "Latency (p95)",
    "inference_latency_p99": "Latency (p99)",
    "latency": "Latency",
    "model_size": "Size",
    "cpu_usage": "CPU",
    "memory_usage": "Memory",
}


@dataclass(frozen=True, slots=True)
class MetricDelta:
    key: str
    label: str
    before: str
    after: str
    change_pct: float | None
    lower_is_better: bool
    better: bool | None  # None: equal or not comparable

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "a": self.before,
            "b": self.after,
            "change_pct": self.change_pct,
            "lower_is_better": self.lower_is_better,
            "better": self.better,
        }


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    version_a: str
    version_b: str
    metrics: list[MetricDelta] = field(default_factory=list)
    performance: list[MetricDelta] = field(default_factory=list)
    features_added: list[str] = field(default_factory=list)
    features_removed: list[str] = field(default_factory=list)
    features_modified: list[str] = field(default_factory=list)
    signature_changes: list[str] = field(default_factory=list)
    recommendation: str = ""
    b_is_better: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "metrics": [m.to_dict() for m in self.metrics],
            "performance": [m.to_dict() for m in self.performance],
            "features": {
                "added": self.features_added,
                "removed": self.features_removed,
                "modified": self.features_modified,
            },
            "signature_changes": self.signature_changes,
            "recommendation": self.recommendation,
            "b_is_better": self.b_is_better,
        }

    def __str__(self) -> str:
        title = f"Comparison: {self.version_a} vs {self.version_b}"
        lines = [title, "=" * len(title)]
        for heading, rows in (("Metrics", self.metrics), ("Performance", self.performance)):
            if rows:
                lines.append(f"{heading}:")
                lines += [_render(m) for m in rows]
        if self.features_added or self.features_removed or self.features_modified:
            lines.append("Features:")
            if self.features_added:
                lines.append(f"- Added: {', '.join(self.features_added)}")
            if self.features_removed:
                lines.append(f"- Removed: {', '.join(self.features_removed)}")
            if self.features_modified:
                lines.append(f"- Modified: {_modified_summary(self.features_modified)}")
        if self.signature_changes:
            lines.append("Signature:")
            lines += [f"- {c}" for c in self.signature_changes]
        lines.append(f"Recommendation: {self.recommendation}")
        return "\n".join(lines)


def _modified_summary(items: list[str]) -> str:
    rescaled = [i for i in items if i.endswith("rescaled")]
    if len(rescaled) == len(items):
        return f"{len(items)} feature{'s' if len(items) != 1 else ''} rescaled"
    return "; ".join(items)


def _render(m: MetricDelta) -> str:
    change = f" ({m.change_pct:+.1f}%)" if m.change_pct is not None else ""
    mark = {True: " ✅", False: " ❌", None: ""}[m.better]
    return f"- {m.label}: {m.before} → {m.after}{change}{mark}"


def _quantity(value: object) -> tuple[float, str] | None:
    """A number and its unit from ``0.87``, ``35``, ``"35ms"``, ``"12MB"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value), ""
    if isinstance(value, str):
        m = _QUANTITY.fullmatch(value)
        if m and m[2].lower() in _UNIT_SCALE:
            return float(m[1]) * _UNIT_SCALE[m[2].lower()], m[2]
    return None


def _label(key: str) -> str:
    return _LABELS.get(key) or key.replace("_", " ").capitalize()


def _delta(key: str, a: object, b: object) -> MetricDelta | None:
    qa, qb = _quantity(a), _quantity(b)
    if qa is None or qb is None:
        return None
    lower = bool(_LOWER_IS_BETTER.search(key))
    x, y = qa[0], qb[0]
    pct = (y - x) / abs(x) * 100 if x else None
    better = None if x == y else ((y < x) if lower else (y > x))
    return MetricDelta(key, _label(key), _show(a), _show(b), pct, lower, better)


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _size_mb(record: ModelVersion) -> str | None:
    size = record.artifact_size
    if size is None:
        return None
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g}{unit}"
    return f"{size}B"


def compare_versions(a: ModelVersion, b: ModelVersion) -> Comparison:
    """Compare ``a`` (the baseline) with ``b`` (the candidate)."""
    ma: Mapping[str, Any] = dict(a.metadata)
    mb: Mapping[str, Any] = dict(b.metadata)
    if "model_size" not in ma and "model_size" not in mb:
        sa_, sb_ = _size_mb(a), _size_mb(b)
        if sa_ and sb_:
            ma = {**ma, "model_size": sa_}
            mb = {**mb, "model_size": sb_}
    metrics: list[MetricDelta] = []
    performance: list[MetricDelta] = []
    for key in [k for k in ma if k in mb]:
        if _NOT_A_METRIC.search(key):
            continue
        delta = _delta(key, ma[key], mb[key])
        if delta is None:
            continue
        (performance if _PERFORMANCE.search(key) else metrics).append(delta)

    fa, fb = list(a.features or ()), list(b.features or ())
    added = [f for f in fb if f not in set(fa)]
    removed = [f for f in fa if f not in set(fb)]
    modified = _feature_modifications(ma, mb)
    report = required_bump(None, None, a.signature, b.signature)
    sig_changes = report.breaking + report.additive

    deltas = [d for d in metrics + performance if d.better is not None]
    wins = [d.label for d in deltas if d.better]
    losses = [d.label for d in deltas if not d.better]
    vb, va = str(b.version), str(a.version)
    if not deltas:
        rec, better = "no comparable metrics recorded in metadata", None
    elif not losses:
        rec, better = f"✅ {vb} is better (improvement in all metrics)", True
    elif not wins:
        rec, better = f"❌ {va} is better ({vb} is worse in all metrics)", False
    else:
        rec = (
            f"⚠️ trade-off: {vb} improves {', '.join(wins)} but is worse in "
            f"{', '.join(losses)}; review before promoting"
        )
        better = None
    if report.breaking:
        rec += f" (breaking signature change: {len(report.breaking)})"
    return Comparison(
        a=a.ref,
        b=b.ref,
        version_a=va,
        version_b=vb,
        metrics=metrics,
        performance=performance,
        features_added=added,
        features_removed=removed,
        features_modified=modified,
        signature_changes=sig_changes,
        recommendation=rec,
        b_is_better=better,
    )


def _feature_modifications(ma: Mapping[str, Any], mb: Mapping[str, Any]) -> list[str]:
    """Features whose recorded scaling or type changed (``feature_scaling``/``feature_types``)."""
    out = []
    for key, word in (("feature_scaling", "rescaled"), ("feature_types", "retyped")):
        old, new = ma.get(key), mb.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += [f"{f} {word}" for f in new if f in old and old[f] != new[f]]
    return out
