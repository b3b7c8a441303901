"""One model's rollout policy, as validated from the daemon's config file.

Plain frozen pydantic models (``PolicyConfig`` and its parts): what ``decide`` and the
horizon read. They live in the pure core because deciding needs them; reading the
file, resolving paths and checking names against the other sections stay in
``controller.config``, which re-exports these names.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from abtest.analysis import AnalysisSpec
from abtest.analysis import MetricSpec as AbMetricSpec
from monitors.measurement import MetricSpec as MonMetricSpec
from monitors.triggers import TriggerSpec

__all__ = [
    "MAX_SECONDS",
    "AnalysisConfig",
    "ApprovalConfig",
    "CanaryStrategy",
    "FixedStrategy",
    "MetricConfig",
    "PolicyConfig",
    "Strategy",
    "Strict",
    "TriggerConfig",
    "UnitsConfig",
]


# The longest duration a config may set: a year. Timers and datetime arithmetic hold
# it; 1e300 seconds, which a float allows, overflowed every tick that added it.
MAX_SECONDS = 366 * 86_400.0


class Strict(BaseModel):
    """Config sections: unknown keys are errors, values are frozen, and numbers are finite
    (YAML's ``.inf`` is no duration: a timer cannot be set to it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CanaryStrategy(Strict):
    """Raise the treatment's share through ``steps`` (whole percent), ``step_duration`` s each.

    A step of 100 is never analysed (there is no control left): reaching it is the
    promotion. Leave it out or put it last.
    """

    kind: Literal["canary"]
    steps: list[int] = Field(min_length=1)
    step_duration: float = Field(gt=0, le=MAX_SECONDS)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in value):
            raise ValueError("every step must be a percentage in (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("steps must be strictly increasing")
        return value


class FixedStrategy(Strict):
    """A fixed ``weight`` percent to the treatment for ``duration`` seconds."""

    kind: Literal["fixed"]
    weight: int = Field(default=50, gt=0, lt=100)
    duration: float = Field(gt=0, le=MAX_SECONDS)


Strategy = Annotated[CanaryStrategy | FixedStrategy, Field(discriminator="kind")]


def _percent(value: Any) -> Any:
    """``"10%"`` -> ``0.1``; other values pass through for pydantic to check."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(
                f"margin: expected a number or a percentage such as 10%, got {value!r}"
            ) from None
    return value


def _margin_schema(schema: dict[str, Any]) -> None:
    """In the published schema a margin is a number or a percentage string (``10%``)."""
    number = {k: schema.pop(k) for k in ("type", "minimum") if k in schema}
    schema["anyOf"] = [number, {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$"}]


class MetricConfig(Strict):
    """One metric: where it comes from (``source``, ``query``) and how abtest judges it.

    ``direction`` (``higher`` or ``lower`` is better) is what lets the metric roll a
    candidate back or promote it; without one it is only reported. ``margin``: the
    loss a guardrail may not rule out and still pass, absolute (``0.002``) or
    relative to the control's value (``10%``, or ``relative_margin: true``).
    """

    name: str = Field(min_length=1)
    source: str
    query: str = Field(min_length=1)
    type: Literal["gauge", "counter", "histogram", "range"] = "gauge"
    aggregate: Literal["sum", "avg", "min", "max"] | None = None
    scale: float = Field(default=1.0, gt=0)
    sample_query: str = ""
    kind: Literal["proportion", "mean", "distribution", "quantile"]
    role: Literal["primary", "guardrail"] = "primary"
    direction: Literal["higher", "lower"] | None = None
    margin: float = Field(default=0.0, ge=0, allow_inf_nan=False, json_schema_extra=_margin_schema)
    relative_margin: bool = False
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_samples: int = Field(default=100, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _relative_margin(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("margin"), str):
            return data
        text = data["margin"]
        if not text.strip().endswith("%"):
            return data  # pydantic names the key and the expected number
        if data.get("relative_margin") is False:
            raise ValueError(f"margin {text!r} is relative, but relative_margin is false")
        return {**data, "margin": _percent(text), "relative_margin": True}

    @model_validator(mode="after")
    def _margin_has_a_base(self) -> MetricConfig:
        if self.relative_margin and self.kind == "distribution":
            raise ValueError(
                "margin: a distribution metric's margin is on the rank-biserial scale, with "
                "no control value to be relative to: give it as a number"
            )
        return self

    def monitor_spec(self) -> MonMetricSpec:
        return MonMetricSpec(
            name=self.name,
            query=self.query,
            type=self.type,
            aggregate=self.aggregate,
            scale=self.scale,
            sample_query=self.sample_query,
        )

    def analysis_spec(self) -> AbMetricSpec:
        return AbMetricSpec(
            name=self.name,
            kind=self.kind,
            role=self.role,
            direction=self.direction,
            margin=self.margin,
            relative_margin=self.relative_margin,
            alpha=self.alpha,
            min_samples=self.min_samples,
        )


class UnitsConfig(Strict):
    """How to count units per arm for the sample-ratio check (default: the first
    metric's source, query ``count``)."""

    source: str | None = None
    query: str = "count"
    type: Literal["gauge", "counter", "histogram", "range"] = "gauge"


class AnalysisConfig(Strict):
    """How the arms are compared (``abtest.analysis``). ``mode: sequential``: harm is
    checked at every look and efficacy spends its alpha over the policy's horizon
    (``spending``: ``obrien_fleming`` or ``pocock``); ``fixed``: efficacy is one test
    at the end (harm is still checked at every look). ``planned_n_per_arm`` sizes the
    "more samples needed" estimate. The number of looks comes from the policy
    (its horizon over its ``interval``), never from here.
    """

    mode: Literal["sequential", "fixed"] = "sequential"
    spending: Literal["obrien_fleming", "pocock"] = "obrien_fleming"
    srm_threshold: float = Field(default=0.001, gt=0, lt=1)
    planned_n_per_arm: int = Field(default=10_000, ge=2)
    metrics: list[MetricConfig] = Field(min_length=1)
    units: UnitsConfig = Field(default_factory=UnitsConfig)

    def spec(
        self,
        weights: tuple[float, float] = (50.0, 50.0),
        *,
        max_looks: int = 1,
        harm_fraction: float = 0.1,
    ) -> AnalysisSpec:
        """The abtest spec for one look; the policy supplies the looks and harm point
        (``controller.core.horizon``)."""
        return AnalysisSpec(
            metrics=tuple(m.analysis_spec() for m in self.metrics),
            mode=self.mode,
            weights=weights,
            srm_threshold=self.srm_threshold,
            planned_n_per_arm=self.planned_n_per_arm,
            max_looks=max_looks,
            efficacy="group_sequential",
            spending=self.spending,
            harm_fraction=harm_fraction,
        )


class TriggerConfig(Strict):
    """A rollback trigger on one of the policy's metrics, judged on the treatment
    (``compare: drop``/``relative_drop`` against the control of the same window)."""

    name: str = Field(min_length=1)
    metric: str
    threshold: float
    direction: Literal["above", "below"] = "above"
    compare: Literal["value", "drop", "relative_drop"] = "value"
    min_samples: int = Field(default=0, ge=0)
    consecutive: int = Field(default=1, ge=1)

    def spec(self) -> TriggerSpec:
        return TriggerSpec(
            name=self.name,
            metric=self.metric,
            threshold=self.threshold,
            direction=self.direction,
            compare=self.compare,
            min_samples=self.min_samples,
            consecutive=self.consecutive,
        )


class ApprovalConfig(Strict):
    """While a rollout waits for approval: ``while_waiting: hold`` keeps its current
    split, ``control`` sends all traffic back to the control until it is approved.
    ``max_wait`` (seconds): a longer wait is reported once (log, metric,
    notification); it does not roll back (a rejection or an abort does).
    """

    while_waiting: Literal["hold", "control"] = "hold"
    max_wait: float | None = Field(default=None, gt=0, le=MAX_SECONDS)


class PolicyConfig(Strict):
    """How one model's candidates are rolled out and judged.

    ``interval``: seconds between evaluations. ``settle``: seconds of data ignored
    after each weight change, while serving picks the new split up (default: one
    interval). ``min_samples``: units per arm before anything is judged.
    ``max_duration``: a rollout still undecided after this long is rolled back.
    ``on_missing_data``: what ``failure_limit`` consecutive evaluations with missing
    data or source errors lead to; below the limit such evaluations hold.
    ``require_approval`` (or an approval policy on the registry's production stage)
    makes a winning candidate wait in ``awaiting_approval``; ``approval`` says how.
    """

    router: str
    strategy: Strategy
    interval: float = Field(default=30.0, gt=0, le=MAX_SECONDS)
    settle: float | None = Field(default=None, ge=0, le=MAX_SECONDS)
    min_samples: int = Field(default=100, ge=0)
    max_duration: float = Field(default=3600.0, gt=0, le=MAX_SECONDS)
    analysis: AnalysisConfig
    triggers: list[TriggerConfig] = Field(default_factory=list)
    on_missing_data: Literal["hold", "rollback"] = "hold"
    failure_limit: int = Field(default=3, ge=1)
    require_approval: bool = False
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)

    @property
    def settle_seconds(self) -> float:
        return self.interval if self.settle is None else self.settle
