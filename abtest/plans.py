"""Traffic split plans: canary weight steps or a fixed A/B split for a duration.

Plans are data, not schedules: they hold no clock. Weights are percentages of
traffic sent to the treatment (``assign`` takes the fraction
``percent / 100``). Both kinds round-trip through plain dicts with a ``kind``
key; an unknown kind or key is an error rather than a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from abtest import _validate as v

__all__ = ["CanaryPlan", "FixedSplitPlan", "Plan", "plan_from_dict"]


def _percent(name: str, value: float) -> float:
    out = v.finite(name, value)
    if not 0.0 < out <= 100.0:
        raise ValueError(f"{name} must be in (0, 100], got {value!r}")
    return out


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """Raise the treatment's share step by step.

    The analysis runs every ``interval_seconds``; the plan may leave a step
    only after ``min_dwell_seconds`` in it (and after the verdict allows).
    """

    kind: ClassVar[str] = "canary"
    steps: tuple[float, ...] = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)
    interval_seconds: float = 60.0
    min_dwell_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps must not be empty")
        for i, s in enumerate(self.steps):
            _percent(f"steps[{i}]", s)
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps must be strictly increasing")
        v.positive("interval_seconds", self.interval_seconds)
        v.nonnegative("min_dwell_seconds", self.min_dwell_seconds)

    def weight(self, step: int) -> float:
        """Treatment fraction in ``[0, 1]`` at step index ``step``."""
        if not 0 <= step < len(self.steps):
            raise ValueError(f"step must be in [0, {len(self.steps)}), got {step!r}")
        return self.steps[step] / 100.0

    def can_advance(self, step: int, seconds_in_step: float) -> bool:
        """True when the dwell time is met and a later step exists."""
        self.weight(step)
        return step + 1 < len(self.steps) and (
            v.nonnegative("seconds_in_step", seconds_in_step) >= self.min_dwell_seconds
        )

    @property
    def min_duration_seconds(self) -> float:
        """Shortest time from the first step to the last one."""
        return self.min_dwell_seconds * (len(self.steps) - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, e.g. for YAML or JSON."""
        return {
            "kind": self.kind,
            "steps": list(self.steps),
            "interval_seconds": self.interval_seconds,
            "min_dwell_seconds": self.min_dwell_seconds,
        }


@dataclass(frozen=True, slots=True)
class FixedSplitPlan:
    """A fixed share to treatment for ``duration_seconds``, analysed every interval."""

    kind: ClassVar[str] = "fixed"
    duration_seconds: float
    treatment_percent: float = 50.0
    interval_seconds: float = 60.0

    def __post_init__(self) -> None:
        v.positive("duration_seconds", self.duration_seconds)
        _percent("treatment_percent", self.treatment_percent)
        v.positive("interval_seconds", self.interval_seconds)

    @property
    def weight(self) -> float:
        """Treatment fraction in ``[0, 1]``."""
        return self.treatment_percent / 100.0

    @property
    def looks(self) -> int:
        """Number of analyses over the duration (at least one: the final look)."""
        return max(1, math.floor(self.duration_seconds / self.interval_seconds))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, e.g. for YAML or JSON."""
        return {
            "kind": self.kind,
            "duration_seconds": self.duration_seconds,
            "treatment_percent": self.treatment_percent,
            "interval_seconds": self.interval_seconds,
        }


Plan = CanaryPlan | FixedSplitPlan


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Build a plan from its dict form; errors name the unknown kind or key."""
    kind = data.get("kind")
    fields = {k: val for k, val in data.items() if k != "kind"}
    if kind == "canary":
        allowed = {"steps", "interval_seconds", "min_dwell_seconds"}
        _only(fields, allowed)
        if "steps" in fields:
            fields["steps"] = tuple(fields["steps"])
        return CanaryPlan(**fields)
    if kind == "fixed":
        allowed = {"duration_seconds", "treatment_percent", "interval_seconds"}
        _only(fields, allowed)
        if "duration_seconds" not in fields:
            raise ValueError("duration_seconds is required for a fixed plan")
        return FixedSplitPlan(**fields)
    raise ValueError(f"kind must be 'canary' or 'fixed', got {kind!r}")


def _only(fields: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(f"unknown plan key(s): {', '.join(unknown)}")
