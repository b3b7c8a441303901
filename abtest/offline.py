"""An A/B test judged after the fact, on recorded per-unit outcomes of two versions.

The seed's ``run_ab_test`` (``controller.offline_ab`` reads the data and calls this):
the same ``analysis.analyze`` the daemon uses, on one metric, with its SRM check
against the planned split. A binary outcome (0/1, true/false) is a proportion, any
other number a mean. When the data cover the planned duration the test is the
fixed-horizon one (one look, the most power); when they stop short it is the
sequential one, whose p-values and intervals stay valid at any stopping point, so a
test read early is not a test peeked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from abtest.analysis import AnalysisSpec, ArmData, Kind, MetricSpec, analyze
from abtest.results import Counts, Direction

__all__ = ["OfflineResult", "judge"]


@dataclass(frozen=True, slots=True)
class OfflineResult:
    """The verdict on one metric. ``treatment_is_better`` only on a promote verdict:
    significantly better, no sample ratio mismatch, enough samples. Item access
    (``result["treatment_is_better"]``) reads the same fields, as the seed does."""

    metric: str
    kind: str
    direction: str
    decision: str  # promote | rollback | inconclusive | continue
    treatment_is_better: bool
    reason: str
    effect: float  # treatment minus control
    ci: tuple[float, float] | None
    p_value: float
    alpha: float
    control_value: float
    treatment_value: float
    n_control: int
    n_treatment: int
    srm_p_value: float | None
    srm_mismatch: bool
    expected_split: float  # the treatment's planned share
    observed_split: float
    complete: bool  # the data cover the planned duration (fixed-horizon test)
    method: str

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
            "direction": self.direction,
            "decision": self.decision,
            "treatment_is_better": self.treatment_is_better,
            "reason": self.reason,
            "effect": _number(self.effect),
            "ci": [_number(x) for x in self.ci] if self.ci is not None else None,
            "p_value": _number(self.p_value),
            "alpha": self.alpha,
            "control_value": _number(self.control_value),
            "treatment_value": _number(self.treatment_value),
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "srm": {
                "p_value": _number(self.srm_p_value) if self.srm_p_value is not None else None,
                "mismatch": self.srm_mismatch,
                "expected_split": self.expected_split,
                "observed_split": self.observed_split,
            },
            "complete": self.complete,
            "method": self.method,
        }


def _number(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _binary(values: npt.NDArray[np.float64]) -> bool:
    return bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())


def judge(
    control: Sequence[float] | npt.ArrayLike,
    treatment: Sequence[float] | npt.ArrayLike,
    *,
    metric: str = "value",
    traffic_split: float = 0.5,
    direction: str = "higher",
    kind: str | None = None,
    complete: bool = True,
    alpha: float = 0.05,
    min_samples: int = 100,
) -> OfflineResult:
    """Judge ``treatment``'s outcomes against ``control``'s (one value per unit).

    ``traffic_split``: the treatment's planned share of units, for the SRM check.
    ``kind``: ``proportion`` or ``mean``; None infers it (all values 0 or 1: a
    proportion). ``complete``: the data span the planned duration (see the module
    docstring). Raises ``ValueError`` naming the argument on bad input.
    """
    if not 0 < traffic_split < 1:
        raise ValueError(f"traffic_split must be between 0 and 1 (exclusive), got {traffic_split}")
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    c = np.asarray(control, dtype=float).ravel()
    t = np.asarray(treatment, dtype=float).ravel()
    for side, values in (("control", c), ("treatment", t)):
        if not np.isfinite(values).all():
            raise ValueError(f"the {side} outcomes contain NaN or infinite values")
    if kind is None:
        kind = "proportion" if _binary(c) and _binary(t) else "mean"
    elif kind not in ("proportion", "mean"):
        raise ValueError(f"kind must be 'proportion' or 'mean', got {kind!r}")
    elif kind == "proportion" and not (_binary(c) and _binary(t)):
        raise ValueError("kind 'proportion' needs outcomes of 0 or 1 (false or true)")
    spec = AnalysisSpec(
        metrics=(
            MetricSpec(
                name=metric,
                kind=cast("Kind", kind),
                direction=cast("Direction", direction),
                alpha=alpha,
                min_samples=min_samples,
            ),
        ),
        mode="fixed" if complete else "sequential",
        weights=(100 * (1 - traffic_split), 100 * traffic_split),
        planned_n_per_arm=max(2, int(max(c.size, t.size))),
    )

    def arm(values: npt.NDArray[np.float64]) -> ArmData:
        data: Any = Counts(int(values.sum()), int(values.size)) if kind == "proportion" else values
        return ArmData(units=int(values.size), metrics={metric: data})

    verdict = analyze(spec, {"control": arm(c), "treatment": arm(t)})
    (outcome,) = verdict.metrics
    total = c.size + t.size
    return OfflineResult(
        metric=metric,
        kind=kind,
        direction=direction,
        decision=verdict.decision,
        treatment_is_better=verdict.decision == "promote",
        reason=verdict.reason,
        effect=outcome.effect,
        ci=outcome.ci,
        p_value=outcome.p_value,
        alpha=alpha,
        control_value=float(c.mean()) if c.size else math.nan,
        treatment_value=float(t.mean()) if t.size else math.nan,
        n_control=int(c.size),
        n_treatment=int(t.size),
        srm_p_value=verdict.srm.p_value if verdict.srm is not None else None,
        srm_mismatch=verdict.srm.mismatch if verdict.srm is not None else False,
        expected_split=traffic_split,
        observed_split=float(t.size / total) if total else math.nan,
        complete=complete,
        method=outcome.method,
    )
