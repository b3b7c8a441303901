"""The candidates ``policy simulate`` plays against a policy, and the traffic they see.

Values only, apart from the simulation that runs them (``controller.simulation``),
so that the CLI can name the scenarios in its help without importing the decision
rule and its statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.policy import MetricConfig

__all__ = ["SCENARIOS", "Scenario", "Workload"]


@dataclass(frozen=True, slots=True)
class Workload:
    """The simulated serving traffic: requests per second over both arms, the control's
    error rate, and its latency (lognormal: median in the metric's unit, sigma)."""

    rps: float = 100.0
    error_rate: float = 0.01
    latency_median: float = 100.0
    latency_sigma: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rps) and self.rps > 0):
            raise ValueError(f"rps must be a positive number, got {self.rps!r}")
        if not 0 < self.error_rate < 1:
            raise ValueError(f"the error rate must be in (0, 1), got {self.error_rate!r}")
        if not (math.isfinite(self.latency_median) and self.latency_median > 0):
            raise ValueError(f"the latency median must be positive, got {self.latency_median!r}")
        if not (math.isfinite(self.latency_sigma) and self.latency_sigma > 0):
            raise ValueError(f"the latency sigma must be positive, got {self.latency_sigma!r}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A candidate's true difference from the control: its error rate and its latency
    as multiples of the control's."""

    key: str
    label: str
    error_factor: float = 1.0
    latency_factor: float = 1.0

    @property
    def harmful(self) -> bool:
        return self.error_factor > 1 or self.latency_factor > 1

    @property
    def better(self) -> bool:
        return not self.harmful and (self.error_factor < 1 or self.latency_factor < 1)

    def touches(self, metric: MetricConfig) -> bool:
        """Whether this scenario changes ``metric`` at all."""
        if metric.kind == "proportion":
            return self.error_factor != 1
        return self.latency_factor != 1


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("identical", "identical versions (A/A)"),
    Scenario("errors_2x", "2x error rate", error_factor=2.0),
    Scenario("errors_+25%", "+25% error rate", error_factor=1.25),
    Scenario("errors_-20%", "-20% error rate (better)", error_factor=0.8),
    Scenario("latency_+15%", "+15% latency", latency_factor=1.15),
)
