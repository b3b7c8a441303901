"""What ``abtest.analysis`` carries from one look to the next, as plain values.

A verdict's ``AnalysisState`` holds, per metric, the strata seen so far (each an
``Estimate``), the running p-values and bounds of both one-sided tests, the mixture
scales fixed at the first judged look and the group-sequential spending state; and
the current stratum's sequential SRM p-value. ``to_dict`` / ``from_dict`` give its
JSON-safe form, to store with a rollout; malformed input raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from abtest import _validate as v
from abtest.group_sequential import EfficacyBoundary

__all__ = ["AnalysisState", "Estimate", "MetricState"]


def _f(x: float) -> float | None:
    """JSON-safe float: infinities and NaN become None."""
    return float(x) if math.isfinite(x) else None


def _g(x: Any, default: float) -> float:
    return default if x is None else float(x)


@dataclass(frozen=True, slots=True)
class Estimate:
    """One stratum's comparison: ``effect`` (treatment minus control), its variance
    ``var``, the control's value ``base`` (for relative margins) and its effective size
    ``n = n_c n_t / (n_c + n_t)``, the information it carries up to the unit variance."""

    effect: float
    var: float
    base: float
    n: float = 0.0

    def to_list(self) -> list[float]:
        return [self.effect, self.var, self.base, self.n]

    @classmethod
    def from_list(cls, data: Any) -> Estimate:
        effect, var, base, n = (v.finite("estimate", x) for x in data)
        return cls(effect, v.nonnegative("estimate variance", var), base, v.nonnegative("n", n))


@dataclass(frozen=True, slots=True)
class MetricState:
    """What one metric carries between looks.

    ``strata``: the closed strata's estimates; ``current``: the open stratum's
    latest. ``tau_worse`` / ``tau_better``: the mixture scales fixed at the first
    judged look. ``p_worse`` / ``p_better``: running minimum p-values.
    ``upper`` / ``lower``: running bounds on the good-oriented effect (``upper``
    from the harm test, ``lower`` from the efficacy test). ``efficacy``: the
    group-sequential state. ``looks``: judged looks.
    """

    strata: tuple[Estimate, ...] = ()
    current: Estimate | None = None
    tau_worse: float = math.nan
    tau_better: float = math.nan
    p_worse: float = 1.0
    p_better: float = 1.0
    upper: float = math.inf
    lower: float = -math.inf
    efficacy: EfficacyBoundary | None = None
    looks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "strata": [s.to_list() for s in self.strata],
            "current": None if self.current is None else self.current.to_list(),
            "tau_worse": _f(self.tau_worse),
            "tau_better": _f(self.tau_better),
            "p_worse": self.p_worse,
            "p_better": self.p_better,
            "upper": _f(self.upper),
            "lower": _f(self.lower),
            "efficacy": None if self.efficacy is None else self.efficacy.to_dict(),
            "looks": self.looks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricState:
        eff = data.get("efficacy")
        cur = data.get("current")
        return cls(
            strata=tuple(Estimate.from_list(s) for s in data.get("strata", ())),
            current=None if cur is None else Estimate.from_list(cur),
            tau_worse=_g(data.get("tau_worse"), math.nan),
            tau_better=_g(data.get("tau_better"), math.nan),
            p_worse=v.closed_unit("p_worse", data.get("p_worse", 1.0)),
            p_better=v.closed_unit("p_better", data.get("p_better", 1.0)),
            upper=_g(data.get("upper"), math.inf),
            lower=_g(data.get("lower"), -math.inf),
            efficacy=None if eff is None else EfficacyBoundary.from_dict(eff),
            looks=v.count("looks", data.get("looks", 0)),
        )


@dataclass(frozen=True, slots=True)
class AnalysisState:
    """Everything a verdict carries to the next look: the stratum it judged, the
    stratum's sequential SRM p-value and each metric's :class:`MetricState`."""

    stratum: int = 0
    srm_p: float = 1.0
    metrics: Mapping[str, MetricState] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-safe) form, to store with a rollout."""
        return {
            "stratum": self.stratum,
            "srm_p": self.srm_p,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisState:
        """Inverse of :meth:`to_dict`; malformed state raises ``ValueError``."""
        try:
            return cls(
                stratum=int(data.get("stratum", 0)),
                srm_p=v.closed_unit("srm_p", data.get("srm_p", 1.0)),
                metrics={
                    str(k): MetricState.from_dict(m) for k, m in data.get("metrics", {}).items()
                },
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed analysis state: {exc!r}") from None
