"""Auto-rollback triggers as plain data: validated here, stored per model or registry-wide.

The registry only keeps *what* guards a production version (metric, comparison,
threshold, window, minimum samples, consecutive breaches, cooldown); the
controller turns each ``RollbackTrigger`` into a ``monitors.TriggerSpec`` and
judges it (the registry must not import ``monitors``).

Levels: a model's own setting wins, else the registry-wide one (``model_id``
NULL), as with approval policies. Every change is a new row (newest wins) plus an
audit event in the same transaction; clearing a model's triggers writes a row
with ``triggers`` NULL, so the model falls back to the registry-wide triggers.

Metric names are the ingest statistics the controller measures: ``error_rate``
(a fraction), ``latency_p95`` (milliseconds), ``accuracy`` (a fraction). The
seed's ``latency`` means p95 latency. ``compare: drop`` judges the version's
registered accuracy (``metadata['accuracy']`` or ``metadata['metrics']['accuracy']``)
minus the accuracy measured in the window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from registry import names, queries
from registry.errors import InvalidInput
from registry.records import Direction, RollbackTrigger
from registry.schema import auto_rollback_t, models_t
from registry.store import Store, Tx

__all__ = [
    "BUILTIN_METRICS",
    "RollbackTrigger",
    "monitor_trigger",
    "parse_duration",
    "seed_triggers",
]

# What each metric name a caller may pass means: (stored metric, direction, bounds).
BUILTIN_METRICS: Mapping[str, tuple[str, Direction, str]] = {
    "accuracy": ("accuracy", "below", "fraction"),
    "error_rate": ("error_rate", "above", "fraction"),
    "latency": ("latency_p95", "above", "milliseconds"),
    "latency_p95": ("latency_p95", "above", "milliseconds"),
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CUSTOM_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def parse_duration(value: object, what: str, *, allow_zero: bool = False) -> float:
    """Seconds from a number of seconds or a string like ``90s``, ``30m``, ``1h``, ``1d``."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if parts and "".join(f"{n}{u}" for n, u in parts) == text.replace(" ", ""):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds is None or not math.isfinite(seconds):
        raise InvalidInput(
            f"{what} must be a duration such as '30m', '1h', '24h' or a number of "
            f"seconds, got {value!r}"
        )
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidInput(f"{what} must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return seconds


def _count(value: object, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInput(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _threshold(value: object, what: str, kind: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}")
    number = float(value)
    if kind == "fraction" and not 0 < number < 1:
        raise InvalidInput(
            f"{what} must be a fraction between 0 and 1 (0.05 means 5%), got {value!r}"
        )
    if kind == "milliseconds" and number <= 0:
        raise InvalidInput(f"{what} must be a positive number of milliseconds, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class _Common:
    window_s: float
    min_samples: int
    consecutive: int
    cooldown_s: float


def _common(window: object, min_samples: object, consecutive: object, cooldown: object) -> _Common:
    return _Common(
        window_s=parse_duration(window, "window"),
        min_samples=_count(min_samples, "min_samples", 0),
        consecutive=_count(consecutive, "consecutive", 1),
        cooldown_s=parse_duration(cooldown, "cooldown", allow_zero=True),
    )


def seed_triggers(
    *,
    error_rate_threshold: object,
    latency_threshold: object,
    accuracy_drop_threshold: object,
    window: object,
    min_samples: object,
    consecutive: object,
    cooldown: object,
) -> tuple[RollbackTrigger, ...]:
    """The seed's three thresholds as triggers; at least one must be given."""
    common = _common(window, min_samples, consecutive, cooldown)
    shared = asdict(common)
    found = []
    if error_rate_threshold is not None:
        value = _threshold(error_rate_threshold, "error_rate_threshold", "fraction")
        found.append(RollbackTrigger("error_rate", "error_rate", value, **shared))
    if latency_threshold is not None:
        value = _threshold(latency_threshold, "latency_threshold", "milliseconds")
        found.append(RollbackTrigger("latency_p95", "latency_p95", value, **shared))
    if accuracy_drop_threshold is not None:
        value = _threshold(accuracy_drop_threshold, "accuracy_drop_threshold", "fraction")
        found.append(RollbackTrigger("accuracy_drop", "accuracy", value, compare="drop", **shared))
    if not found:
        raise InvalidInput(
            "set_auto_rollback_triggers needs at least one of error_rate_threshold, "
            "latency_threshold, accuracy_drop_threshold; to remove triggers use "
            "clear_auto_rollback_triggers"
        )
    return tuple(found)


def monitor_metric(metric: object) -> str:
    """A metric name ``ModelMonitor`` accepts: a built-in or a custom identifier."""
    if not isinstance(metric, str) or not metric:
        raise InvalidInput(f"metric must be a non-empty string, got {metric!r}")
    if metric in BUILTIN_METRICS:
        return BUILTIN_METRICS[metric][0]
    if not _CUSTOM_METRIC.fullmatch(metric):
        raise InvalidInput(
            f"invalid metric {metric!r}: use accuracy, latency, error_rate or a custom "
            "name of letters, digits and '_'"
        )
    return metric


def monitor_trigger(
    metric: object,
    threshold: object,
    *,
    window: object,
    direction: object,
    min_samples: object,
    consecutive: object,
    cooldown: object,
) -> RollbackTrigger:
    """``ModelMonitor.set_auto_rollback``: accuracy below, latency (p95) and error rate
    above the threshold; a custom metric needs an explicit ``direction``."""
    common = _common(window, min_samples, consecutive, cooldown)
    stored = monitor_metric(metric)
    builtin = BUILTIN_METRICS.get(str(metric))
    if builtin is not None:
        if direction is not None and direction != builtin[1]:
            raise InvalidInput(
                f"{metric} rolls back when {builtin[1]} the threshold; direction "
                f"{direction!r} makes no sense for it"
            )
        way: Direction = builtin[1]
        value = _threshold(threshold, f"{metric} threshold", builtin[2])
    else:
        if direction not in ("above", "below"):
            raise InvalidInput(
                f"custom metric {metric!r} needs direction='above' or 'below' "
                "(which side of the threshold is bad)"
            )
        way = "above" if direction == "above" else "below"
        value = _threshold(threshold, f"{metric} threshold", "any")
    return RollbackTrigger(f"{stored}_{way}", stored, value, way, "value", **asdict(common))


# -- storage -------------------------------------------------------------------------

_c = auto_rollback_t.c


@dataclass(frozen=True, slots=True)
class Setting:
    """The newest row of one level: its triggers (None: nothing set) and tracked metrics."""

    triggers: tuple[RollbackTrigger, ...] | None
    tracked: tuple[str, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "triggers": _stored(self.triggers),
            "tracked": list(self.tracked) if self.tracked is not None else None,
        }


def _setting(row: Any) -> Setting:
    triggers = (
        tuple(RollbackTrigger.from_dict(t) for t in row.triggers)
        if row.triggers is not None
        else None
    )
    return Setting(triggers, tuple(row.tracked) if row.tracked is not None else None)


def setting(conn: sa.Connection, model_id: int | None) -> Setting:
    """The newest setting of one level (a model, or registry-wide for None)."""
    cond = _c.model_id == model_id if model_id is not None else _c.model_id.is_(None)
    row = conn.execute(
        sa.select(_c.triggers, _c.tracked).where(cond).order_by(_c.id.desc()).limit(1)
    ).first()
    return _setting(row) if row is not None else Setting(None, None)


def effective(conn: sa.Connection, model_id: int) -> tuple[RollbackTrigger, ...]:
    """The triggers guarding a model: its own, else the registry-wide ones."""
    own = setting(conn, model_id).triggers
    if own is not None:
        return own
    return setting(conn, None).triggers or ()


def all_settings(conn: sa.Connection) -> dict[str | None, Setting]:
    """The newest setting of every level, by model name (None: registry-wide)."""
    newest = (
        sa.select(sa.func.max(_c.id)).group_by(_c.model_id).scalar_subquery()
    )  # one row per level
    rows = conn.execute(
        sa.select(models_t.c.name, _c.triggers, _c.tracked)
        .select_from(auto_rollback_t.outerjoin(models_t, models_t.c.id == _c.model_id))
        .where(_c.id.in_(newest))
    )
    return {row.name: _setting(row) for row in rows}


def update(
    store: Store,
    name: str | None,
    change: Callable[[Setting], Setting],
    *,
    actor: str,
    action: str,
) -> Setting:
    """In one transaction: read the level's setting, append ``change(old)`` as its new
    row, and audit both sides. ``name`` None is the registry-wide level."""
    if name is not None:
        names.model_name(name)

    def op(tx: Tx) -> Setting:
        model_id = queries.model_id(tx.conn, name) if name is not None else None
        before = setting(tx.conn, model_id)
        after = change(before)
        tx.conn.execute(
            auto_rollback_t.insert().values(
                model_id=model_id,
                triggers=_stored(after.triggers),
                tracked=list(after.tracked) if after.tracked is not None else None,
                actor=actor,
                at=tx.now,
            )
        )
        tx.audit(
            actor=actor,
            action=action,
            target=name or "*",
            before=before.to_dict(),
            after=after.to_dict(),
        )
        return after

    return store.write(op)


def _stored(triggers: Sequence[RollbackTrigger] | None) -> list[dict[str, Any]] | None:
    return [t.to_dict() for t in triggers] if triggers is not None else None
