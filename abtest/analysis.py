"""Verdicts: turn a declarative metric spec and per-arm data into a decision.

``analyze(spec, data)`` returns ``promote | continue | rollback | inconclusive``
with, per metric, the numbers behind it and a one-line reason.

The decision rule (one rule; ``controller.core.decide`` and the README state it too):

1. A missing arm, or a sample ratio mismatch between the arms' assigned units
   and the planned weights, freezes the verdict at ``inconclusive``: the data
   cannot be trusted, whatever the metrics say.
2. **Harm is a rollback.** Any metric with a ``direction``, primary or
   guardrail, that is significantly worse than control on its anytime-valid
   harm test gives ``rollback`` at this look. A guardrail's ``margin`` does not
   excuse a loss that is shown (Spotify's deterioration test): the margin is
   how large a loss promotion may fail to rule out, not a loss to accept.
3. Missing, NaN or otherwise invalid data for any metric gives
   ``inconclusive`` (never ``promote``); the caller's policy decides whether
   to hold or roll back.
4. Too few samples in any metric gives ``continue`` with the sample size
   still needed and how many more units per arm that is.
5. ``promote`` when at least one primary metric is significantly better,
   every guardrail is shown non-inferior (its lower bound excludes a loss of
   ``margin``), no metric is worse (rule 2) and there is no SRM (rule 1).
6. Otherwise ``continue`` in sequential mode, ``inconclusive`` in fixed mode
   (the single final look has been spent).

**Two one-sided tests per metric.** A metric's ``alpha`` is split evenly: half
for the harm side, half for the efficacy side (so an identical candidate is
rolled back or promoted with probability at most ``alpha`` in all).

- Harm (``worse``): the half-normal mixture SPRT of ``abtest.sequential``,
  always valid, checked at every look in every mode, Bonferroni-divided over
  the metrics that have a direction so that an identical candidate is rolled
  back with probability at most ``alpha / 2`` however many metrics there are.
  Its mixture is sharpest early, at ``harm_fraction`` of the planned
  information: a large regression is caught within a few looks, a small one
  later.
- Efficacy (``better``, and non-inferiority for guardrails): with
  ``efficacy="group_sequential"`` a Lan-DeMets alpha-spending design
  (``abtest.group_sequential``, O'Brien-Fleming by default) over the caller's
  clock ``progress`` (the fraction of the planned horizon reached): it keeps
  almost all the power of one fixed-horizon test at the horizon. With
  ``efficacy="mixture"`` (no horizon) a one-sided mixture SPRT sharpest at
  ``planned_n_per_arm``. Primaries share the efficacy alpha (Bonferroni: a
  promotion needs only one of them); each guardrail's non-inferiority uses
  its full half (an intersection-union test needs no correction).
- ``mode="fixed"``: the efficacy side is one fixed-horizon test (Holm across
  primaries), to be looked at once; the harm side stays sequential.

Distribution and quantile metrics have no sequential test here: both sides
are tested at their level divided by ``max_looks`` (Bonferroni over the
looks), on the current stratum's data only.

**Cumulative verdicts.** Pass each verdict (or its ``state``) back as
``previous``: the harm test keeps its mixture scale from the first judged look
and its running minimum p-value and bound; the efficacy side keeps its
spending state and running bound; SRM keeps its sequential p-value within a
stratum. A look where a metric is missing keeps its state. ``AnalysisState``
(``abtest.state``) is a plain value with ``to_dict`` / ``from_dict`` for storage.

**Strata.** A caller whose split changes (canary steps) passes a new
``stratum`` number with data of the new step only; proportion and mean
metrics then combine the steps by inverse-variance weighting, each step a
comparison of concurrent arms (no confounding of the split with time), so
the tests run on all the evidence since the first step. The SRM check looks
at the current stratum against its weights.

Effects are *treatment minus control*. Bounds on a metric are reported as
``ci = (low, high)`` on that scale: one end from each one-sided test, so the
interval excludes 0 on the bad side exactly when ``p_worse <= alpha_worse``,
and, in sequential mode, on the good side exactly when the efficacy test has
rejected. (In fixed mode the good end is the look's ordinary ``1 - alpha``
interval, not adjusted for several primaries, whose decision uses Holm.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from abtest import _validate as v
from abtest import power, sequential, stats
from abtest._lazy import LazyModule
from abtest.group_sequential import SPENDING, EfficacyBoundary
from abtest.results import Counts, Direction, SRMResult, Summary
from abtest.state import AnalysisState, Estimate, MetricState

special = LazyModule("scipy.special")

__all__ = [
    "AnalysisSpec",
    "AnalysisState",
    "ArmData",
    "Estimate",
    "Histogram",
    "MetricOutcome",
    "MetricSpec",
    "MetricState",
    "Verdict",
    "analyze",
]

Kind = Literal["proportion", "mean", "distribution", "quantile"]
Role = Literal["primary", "guardrail"]
Mode = Literal["sequential", "fixed"]
Efficacy = Literal["group_sequential", "mixture"]
Decision = Literal["promote", "continue", "rollback", "inconclusive"]
Status = Literal["better", "worse", "noninferior", "undecided", "insufficient", "missing"]

_KINDS = ("proportion", "mean", "distribution", "quantile")
_ROLES = ("primary", "guardrail")
_MODES = ("sequential", "fixed")
_EFFICACY = ("group_sequential", "mixture")


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric to judge.

    ``direction`` says which side is better; ``None`` reports the metric
    without judging it (it can neither promote nor roll back). ``margin`` is
    the loss a guardrail may fail to rule out and still count as non-inferior
    (absolute, or a fraction of the control's value when ``relative_margin``;
    for ``distribution`` metrics it is on the rank-biserial scale).
    ``min_samples`` per arm must be reached before the metric is judged.
    ``mde`` (absolute, proportions only) sizes the "more samples needed"
    estimate; ``tau`` overrides both mixture scales.
    """

    name: str
    kind: Kind
    role: Role = "primary"
    direction: Direction | None = "higher"
    margin: float = 0.0
    relative_margin: bool = False
    alpha: float = 0.05
    min_samples: int = 100
    mde: float | None = None
    tau: float | None = None
    q: float = 0.95

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        _choice("kind", self.kind, _KINDS)
        _choice("role", self.role, _ROLES)
        if self.direction is not None:
            v.direction(self.direction)
        v.nonnegative("margin", self.margin)
        v.open_unit("alpha", self.alpha)
        v.count("min_samples", self.min_samples)
        if self.mde is not None:
            v.positive("mde", self.mde)
        if self.tau is not None:
            v.positive("tau", self.tau)
        v.closed_unit("q", self.q)
        if self.relative_margin and self.kind == "distribution":
            raise ValueError(
                "relative_margin: a distribution metric's margin is on the rank-biserial "
                "scale, which has no control value to be relative to; give it absolute"
            )


_METRIC_KEYS = frozenset(MetricSpec.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """What to judge and how.

    ``weights`` are the planned (unnormalised) control and treatment shares for
    the current stratum; the SRM check compares its assigned units to them.
    ``efficacy`` picks the efficacy design in sequential mode (see the module
    docstring); ``group_sequential`` needs ``progress`` at every look and
    spends with ``spending``. ``harm_fraction``: the fraction of the planned
    information at which the harm test is sharpest. ``planned_n_per_arm`` sets
    the mixture scales without a horizon and the "more samples" estimate;
    ``max_looks`` is the Bonferroni divisor for distribution and quantile
    metrics (the number of looks the caller plans).
    """

    metrics: tuple[MetricSpec, ...]
    mode: Mode = "sequential"
    weights: tuple[float, float] = (50.0, 50.0)
    srm_threshold: float = 0.001
    planned_n_per_arm: int = 10_000
    max_looks: int = 50
    power: float = 0.8
    resamples: int = 4000
    seed: int = 0
    efficacy: Efficacy = "mixture"
    spending: str = "obrien_fleming"
    harm_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("metrics must not be empty")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metrics must have unique names")
        if not any(m.role == "primary" for m in self.metrics):
            raise ValueError("metrics must include at least one primary metric")
        _choice("mode", self.mode, _MODES)
        _choice("efficacy", self.efficacy, _EFFICACY)
        _choice("spending", self.spending, tuple(SPENDING))
        if len(self.weights) != 2:
            raise ValueError("weights must be (control, treatment)")
        w = [v.nonnegative("weights", x) for x in self.weights]
        if not min(w) > 0:
            raise ValueError("weights must both be positive")
        v.open_unit("srm_threshold", self.srm_threshold)
        if v.count("planned_n_per_arm", self.planned_n_per_arm) < 2:
            raise ValueError("planned_n_per_arm must be at least 2")
        if v.count("max_looks", self.max_looks) < 1:
            raise ValueError("max_looks must be at least 1")
        v.open_unit("power", self.power)
        v.count("resamples", self.resamples)
        if not 0 < v.finite("harm_fraction", self.harm_fraction) <= 1:
            raise ValueError(f"harm_fraction must be in (0, 1], got {self.harm_fraction!r}")

    @property
    def judged(self) -> tuple[MetricSpec, ...]:
        """The metrics with a direction: the ones that can roll back or promote."""
        return tuple(m for m in self.metrics if m.direction is not None)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (e.g. for YAML)."""
        out: dict[str, Any] = {
            "metrics": [
                {k: getattr(m, k) for k in MetricSpec.__dataclass_fields__} for m in self.metrics
            ]
        }
        for key in AnalysisSpec.__dataclass_fields__:
            if key != "metrics":
                value = getattr(self, key)
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisSpec:
        """Inverse of :meth:`to_dict`; unknown keys are errors naming the key."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown spec key(s): {', '.join(unknown)}")
        metrics = []
        for i, m in enumerate(data.get("metrics", ())):
            bad = sorted(set(m) - _METRIC_KEYS)
            if bad:
                raise ValueError(f"unknown key(s) in metrics[{i}]: {', '.join(bad)}")
            metrics.append(MetricSpec(**m))
        rest = {k: val for k, val in data.items() if k != "metrics"}
        if "weights" in rest:
            rest["weights"] = tuple(rest["weights"])
        return cls(metrics=tuple(metrics), **rest)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative Prometheus histogram for one arm: ``le`` bounds and counts."""

    buckets: tuple[float, ...]
    counts: tuple[int, ...]


MetricData = Counts | Summary | Histogram | npt.ArrayLike


@dataclass(frozen=True, slots=True)
class ArmData:
    """One arm's data: units assigned (for SRM) and each metric's observations.

    Proportion metrics take :class:`Counts`; mean metrics a :class:`Summary` or
    raw values; distribution metrics a :class:`Histogram` or raw values;
    quantile metrics raw values. Everything is cumulative over the stratum.
    """

    units: int
    metrics: Mapping[str, MetricData | None] = field(default_factory=dict)


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricOutcome:
    """The numbers behind one metric's part of the verdict.

    ``p_worse`` is the always-valid p-value that the treatment is worse (running
    minimum), judged at ``alpha_worse``; ``p_better`` the efficacy side's
    p-value judged at ``alpha_better`` (group-sequential: this look's nominal
    p-value and the nominal level of this look's boundary; fixed mode: the
    two-sided p-value, Holm-adjusted across primaries). ``p_value`` / ``alpha``
    are the side the estimate leans to. ``ci`` is ``(low, high)`` on the
    treatment-minus-control scale, one end from each test (running bounds).
    ``z`` / ``boundary``: the group-sequential statistic at this look and the
    critical value it is compared with (once crossed, the boundary it crossed).
    ``tau`` is the harm test's mixture scale. ``samples_needed`` is the per-arm
    size still required before judging, when too small.
    """

    name: str
    kind: Kind
    role: Role
    direction: Direction | None
    status: Status
    reason: str
    method: str = ""
    effect: float = math.nan
    ci: tuple[float, float] | None = None
    p_value: float = math.nan
    p_adjusted: float = math.nan
    alpha: float = math.nan
    margin: float = math.nan
    n_control: int = 0
    n_treatment: int = 0
    samples_needed: int | None = None
    p_worse: float = math.nan
    alpha_worse: float = math.nan
    p_better: float = math.nan
    alpha_better: float = math.nan
    z: float = math.nan
    boundary: float = math.nan
    tau: float = math.nan
    p_look: float = math.nan
    ci_look: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, why, per-metric evidence, and the state for the next look.

    ``additional_samples`` estimates how many more units per arm are needed:
    to reach ``min_samples`` when too few, else to reach the planned size.
    """

    decision: Decision
    reason: str
    mode: Mode
    metrics: tuple[MetricOutcome, ...]
    srm: SRMResult | None
    additional_samples: int | None = None
    state: AnalysisState = field(default_factory=AnalysisState)


# -- one look of one metric ---------------------------------------------------------------


def _n(data: MetricData) -> int:
    """Observations per arm, checked so that an invalid size is missing data, not "too few"."""
    if isinstance(data, Counts | Summary):
        return v.count("n", data.n)
    if isinstance(data, Histogram):
        return v.count("histogram total", data.counts[-1]) if data.counts else 0
    return int(np.size(data))


def _summary(name: str, data: MetricData) -> Summary:
    if isinstance(data, Summary):
        return data
    if isinstance(data, Counts | Histogram):
        raise ValueError(f"{name}: a mean metric needs a Summary or raw values")
    x = v.sample(name, data, min_size=2)
    return Summary(float(x.mean()), float(x.var(ddof=1)), x.size)


def _estimate(m: MetricSpec, c: MetricData, t: MetricData) -> tuple[Estimate, int, int]:
    """This stratum's estimate for a proportion or mean metric."""
    if m.kind == "proportion":
        if not (isinstance(c, Counts) and isinstance(t, Counts)):
            raise ValueError(f"{m.name}: a proportion metric needs Counts in both arms")
        theta, var, nc, nt = sequential.difference(c, t)
        return Estimate(theta, var, c.x / c.n, nc * nt / (nc + nt)), nc, nt
    sc, st = _summary("control", c), _summary("treatment", t)
    theta, var, nc, nt = sequential.difference(sc, st)
    return Estimate(theta, var, sc.mean, nc * nt / (nc + nt)), nc, nt


def _var_floor(e: Estimate) -> float:
    """A variance of zero (every value alike in both arms) stands for a tiny one, relative
    to the values' size: a difference is then overwhelming evidence, no difference none,
    and no test divides by zero."""
    return (1e-9 * max(abs(e.effect), abs(e.base), 1e-9)) ** 2


def _combined(strata: tuple[Estimate, ...], current: Estimate) -> Estimate:
    """Inverse-variance-weighted combination of the strata (one stratum: itself)."""
    parts = (*strata, current)
    if len(parts) == 1:
        return current
    weights = [1.0 / max(p.var, _var_floor(p)) for p in parts]
    info = sum(weights)
    return Estimate(
        sum(p.effect * w for p, w in zip(parts, weights, strict=True)) / info,
        1.0 / info,
        sum(p.base * w for p, w in zip(parts, weights, strict=True)) / info,
        sum(p.n for p in parts),
    )


@dataclass(frozen=True, slots=True)
class _Levels:
    """The alpha each side of a metric is judged at this look."""

    worse: float
    better: float


def _levels(m: MetricSpec, spec: AnalysisSpec) -> _Levels:
    judged = max(1, len(spec.judged))
    primaries = max(1, sum(1 for x in spec.judged if x.role == "primary"))
    half = m.alpha / 2.0
    better = half / primaries if m.role == "primary" and spec.mode != "fixed" else half
    return _Levels(worse=half / judged, better=better)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _good(direction: Direction | None, x: float) -> float:
    return -x if direction == "lower" else x


def _ci(direction: Direction | None, lower: float, upper: float) -> tuple[float, float]:
    """Good-oriented bounds back on the treatment-minus-control scale."""
    return (-upper, -lower) if direction == "lower" else (lower, upper)


@dataclass(slots=True)
class _Look:
    """This look's evidence for one metric before classification."""

    method: str
    effect: float  # treatment minus control
    good: float  # effect oriented so that positive is better
    se: float
    base: float
    nc: int
    nt: int
    state: MetricState
    p_worse: float = math.nan
    p_better: float = math.nan
    alpha_worse: float = math.nan
    alpha_better: float = math.nan
    z: float = math.nan
    boundary: float = math.nan
    p_look: float = math.nan
    ci_look: tuple[float, float] | None = None
    fixed_ni: bool | None = None
    fixed_p: float = math.nan  # fixed mode: the two-sided p-value (for Holm)


def _sequential_look(
    m: MetricSpec,
    spec: AnalysisSpec,
    c: MetricData,
    t: MetricData,
    past: MetricState,
    new_stratum: bool,
    progress: float | None,
) -> _Look:
    """Harm and efficacy for a proportion or mean metric, on all strata so far."""
    here, nc, nt = _estimate(m, c, t)
    strata = past.strata
    if new_stratum and past.current is not None:
        strata = (*strata, past.current)
    est = _combined(strata, here)
    var = max(est.var, _var_floor(est))
    se = math.sqrt(var)
    good = _good(m.direction, est.effect)
    lv = _levels(m, spec)
    first = past.looks == 0 or not math.isfinite(past.tau_worse)
    tau_w = m.tau or (past.tau_worse if not first else _harm_tau(spec, var, nc, nt, progress, lv))
    p_w = sequential.one_sided_p_value(-good, var, tau_w)
    up_look = -sequential.one_sided_bound(-good, var, tau_w, lv.worse)
    p_worse, upper = min(past.p_worse, p_w), min(past.upper, up_look)
    state = replace(
        past, strata=strata, current=here, tau_worse=tau_w, p_worse=p_worse, upper=upper,
        looks=past.looks + 1,
    )  # fmt: skip
    kind = "proportions" if m.kind == "proportion" else "means"
    look = _Look(
        method=f"difference of {kind}: harm by one-sided mixture SPRT",
        effect=est.effect,
        good=good,
        se=se,
        base=est.base,
        nc=nc,
        nt=nt,
        state=state,
        p_worse=p_worse,
        alpha_worse=lv.worse,
        p_look=p_w,
    )
    if m.direction is None:
        return look
    if spec.mode == "fixed":
        return _fixed_efficacy(m, spec, c, t, look, lv)
    margin = _margin(m, est.base)
    z_test = (good + (margin if m.role == "guardrail" else 0.0)) / se
    if spec.efficacy == "group_sequential":
        if progress is None:
            raise ValueError("group_sequential efficacy needs progress at every look")
        before = past.efficacy or EfficacyBoundary(alpha=lv.better, spending=spec.spending)
        # The information the boundaries' correlations use is the effective sample size,
        # which only grows; 1 / var would shrink at looks where the variance estimate
        # rises, and such a look could spend nothing (the horizon's last alpha included).
        gst = before if before.crossed else before.look(z_test, est.n, progress)
        # A look that released no alpha (the clock did not move, or the information did
        # not grow) tests nothing: its bound stays open, whatever the last boundary was.
        tested = gst is not before and math.isfinite(gst.boundary)
        c_k = gst.boundary if tested else math.inf
        low_look = good - c_k * se if tested else -math.inf
        look.method += f"; efficacy by group-sequential {spec.spending.replace('_', '-')} spending"
        look.z = z_test  # the boundary shown: this look's, or the one crossed before
        look.boundary = gst.boundary if tested or gst.crossed else math.inf
        shown = look.boundary
        look.alpha_better = float(special.ndtr(-shown)) if math.isfinite(shown) else 0.0
        look.p_better = float(special.ndtr(-z_test))
        lower = max(past.lower, low_look)
        look.state = replace(look.state, efficacy=gst, lower=lower)
    else:
        first_b = first or not math.isfinite(past.tau_better)
        tau_b = m.tau or (
            past.tau_better
            if not first_b
            else sequential.default_tau(_unit_variance(var, nc, nt), spec.planned_n_per_arm,
                                        min(2 * lv.better, 0.5))
        )  # fmt: skip
        shift = margin if m.role == "guardrail" else 0.0
        p_b = sequential.one_sided_p_value(good + shift, var, tau_b)
        low_look = sequential.one_sided_bound(good, var, tau_b, lv.better)
        look.method += "; efficacy by one-sided mixture SPRT"
        look.p_better = min(past.p_better, p_b)
        look.alpha_better = lv.better
        lower = max(past.lower, low_look)
        look.state = replace(look.state, tau_better=tau_b, p_better=look.p_better, lower=lower)
    look.ci_look = _ci(m.direction, low_look, up_look)
    return look


def _unit_variance(var: float, nc: int, nt: int) -> float:
    """The per-unit variance of the difference with equal arms, from this look's ``V``."""
    return var / (1.0 / nc + 1.0 / nt) * 2.0


def _harm_tau(
    spec: AnalysisSpec, var: float, nc: int, nt: int, progress: float | None, lv: _Levels
) -> float:
    """Mixture scale of the harm test, fixed at the first judged look.

    Sharpest at ``harm_fraction`` of the planned information: with a horizon,
    the information reached there is extrapolated from this look's
    (``progress`` so far, ``1 / var`` of it); without one, from
    ``planned_n_per_arm``.
    """
    if spec.efficacy == "group_sequential" and progress is not None and progress > 0:
        v_h = var * progress / spec.harm_fraction
    else:
        v_h = _unit_variance(var, nc, nt) / (spec.planned_n_per_arm * spec.harm_fraction)
    return math.sqrt(sequential.tau_ratio(min(2 * lv.worse, 0.5)) * v_h)


def _fixed_efficacy(
    m: MetricSpec, spec: AnalysisSpec, c: MetricData, t: MetricData, look: _Look, lv: _Levels
) -> _Look:
    """Fixed mode: the ordinary two-sided test (``better`` when the effect is good and
    ``p <= alpha``) and the one-sided non-inferiority test, on this stratum's data."""
    a = m.alpha
    if isinstance(c, Counts) and isinstance(t, Counts):
        r = stats.two_proportions(c.x, c.n, t.x, t.n, confidence=1 - a)
        ci_c, ci_t = c, t
    else:
        sc, st = _summary("control", c), _summary("treatment", t)
        r = stats.welch_from_summary(sc.mean, sc.var, sc.n, st.mean, st.var, st.n, confidence=1 - a)
        ci_c, ci_t = sc, st  # type: ignore[assignment]
    ni = stats.noninferiority(
        ci_c,
        ci_t,
        margin=m.margin,
        relative=m.relative_margin,
        direction=m.direction or "higher",
        alpha=lv.better,
    )
    look.method = f"{r.method}; harm by one-sided mixture SPRT"
    look.fixed_p, look.fixed_ni = r.p_value, ni.noninferior
    look.alpha_better = lv.better
    if r.ci is not None:  # this look's interval: fixed mode does not carry the efficacy side
        low = min(_good(m.direction, r.ci[0]), _good(m.direction, r.ci[1]))
        look.ci_look = _ci(m.direction, low, look.state.upper)
        look.state = replace(look.state, lower=low)
    return look


def _margin(m: MetricSpec, base: float) -> float:
    return m.margin * abs(base) if m.relative_margin else m.margin


def _fixed_look(
    m: MetricSpec, spec: AnalysisSpec, c: MetricData, t: MetricData, past: MetricState
) -> _Look:
    """Distribution and quantile metrics: fixed tests at ``alpha / max_looks`` per side."""
    lv = _levels(m, spec)
    looks = spec.max_looks
    a_w, a_b = lv.worse / looks, lv.better / looks
    if m.kind == "distribution":
        if isinstance(c, Histogram) and isinstance(t, Histogram):
            if c.buckets != t.buckets:
                raise ValueError(f"{m.name}: control and treatment buckets differ")
            h = stats.histogram_compare(c.buckets, c.counts, t.counts)
            eff, se, nc, nt, method = h.effect, h.se, h.n_control, h.n_treatment, h.method
        elif isinstance(c, Counts | Summary | Histogram) or isinstance(
            t, Counts | Summary | Histogram
        ):
            raise ValueError(f"{m.name}: a distribution metric needs Histograms or raw values")
        else:
            r = stats.mann_whitney(c, t)
            eff, se, nc, nt, method = r.effect, r.se, r.n_control, r.n_treatment, r.method
        base = 0.0
        good = _good(m.direction, eff)
        up = good + float(special.ndtri(1 - a_w)) * se
        low = good - float(special.ndtri(1 - a_b)) * se
    else:
        if isinstance(c, Counts | Summary | Histogram) or isinstance(
            t, Counts | Summary | Histogram
        ):
            raise ValueError(f"{m.name}: a quantile metric needs raw values in both arms")
        cc = v.sample("control", c)
        a = min(a_w, a_b)
        q = stats.quantile_difference(
            cc, t, m.q, resamples=spec.resamples, seed=spec.seed, confidence=1 - 2 * a
        )
        eff, nc, nt, method = q.effect, q.n_control, q.n_treatment, q.method
        base = float(np.quantile(cc, m.q))
        if q.ci is None:
            raise ValueError(f"{m.name}: no interval for the quantile difference")
        lo, hi = _good(m.direction, q.ci[0]), _good(m.direction, q.ci[1])
        low, up = min(lo, hi), max(lo, hi)
        good = _good(m.direction, eff)
        se = math.nan
    if math.isfinite(se) and se > 0:  # one-sided p of "worse", Bonferroni over the looks
        p_w = min(1.0, float(special.ndtr(good / se)) * looks)
    else:
        p_w = 0.0 if up < 0 else 1.0
    state = replace(past, looks=past.looks + 1, p_worse=min(past.p_worse, p_w),
                    upper=min(past.upper, up), lower=max(past.lower, low))  # fmt: skip
    return _Look(
        method=f"{method} at alpha/{looks} per side (Bonferroni over looks)",
        effect=eff,
        good=good,
        se=se,
        base=base,
        nc=nc,
        nt=nt,
        state=state,
        p_worse=state.p_worse,
        alpha_worse=lv.worse,
        alpha_better=a_b,
        p_look=p_w,
        ci_look=_ci(m.direction, low, up),
    )


def _judge(
    m: MetricSpec,
    spec: AnalysisSpec,
    c: MetricData | None,
    t: MetricData | None,
    past: MetricState,
    new_stratum: bool,
    progress: float | None,
) -> MetricOutcome | _Look:
    """Evidence for one metric, or a final outcome when its data are missing or too few.

    Invalid data becomes a ``missing`` outcome, not an exception.
    """
    if c is None or t is None:
        arm = "control" if c is None else "treatment"
        return _unjudged(m, "missing", f"{m.name}: no data for {arm}")
    try:
        nc, nt = _n(c), _n(t)
        if min(nc, nt) < m.min_samples:
            reason = (
                f"{m.name}: {min(nc, nt)} samples in the smaller arm, "
                f"{m.min_samples} needed before judging"
            )
            return _unjudged(m, "insufficient", reason, nc, nt, m.min_samples)
        if m.kind in ("proportion", "mean"):
            look = _sequential_look(m, spec, c, t, past, new_stratum, progress)
        else:
            look = _fixed_look(m, spec, c, t, past)
    except (ValueError, TypeError, ZeroDivisionError, FloatingPointError) as exc:
        return _unjudged(m, "missing", f"{m.name}: invalid data ({exc})")
    if not (math.isfinite(look.effect) and math.isfinite(look.good)):
        return _unjudged(m, "missing", f"{m.name}: non-finite result")
    return look


def _unjudged(
    m: MetricSpec,
    status: Status,
    reason: str,
    nc: int = 0,
    nt: int = 0,
    needed: int | None = None,
) -> MetricOutcome:
    return MetricOutcome(
        name=m.name,
        kind=m.kind,
        role=m.role,
        direction=m.direction,
        status=status,
        reason=reason,
        n_control=nc,
        n_treatment=nt,
        samples_needed=needed,
    )


def _classify(m: MetricSpec, spec: AnalysisSpec, e: _Look, p_holm: float) -> MetricOutcome:
    """Status and reason from the evidence (see the module docstring's rule)."""
    s = e.state
    margin = _margin(m, e.base)
    ci = _ci(m.direction, s.lower, s.upper)
    shown = f"CI [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    dir_txt = f"{m.direction} is better" if m.direction else "no direction: reported only"
    nums = f"effect {_fmt(e.effect)} ({dir_txt}), {shown}"
    fixed = spec.mode == "fixed" and m.kind in ("proportion", "mean")
    better = False
    noninferior = False
    if m.direction is not None:
        if fixed:
            better = p_holm <= m.alpha and e.good > 0
            noninferior = bool(e.fixed_ni)
        else:  # the efficacy test has rejected at some look: that stays (its margin too)
            rejected = _shown(s, e)
            better = rejected and m.role == "primary"
            noninferior = rejected and m.role == "guardrail"
    worse = m.direction is not None and s.upper < 0
    if fixed:
        sig = f"p={_fmt(p_holm)}" + (" (Holm)" if p_holm != e.fixed_p else "")
    elif e.boundary == e.boundary:  # group-sequential: the z and its boundary
        sig = f"z={_fmt(e.z)} vs boundary {_fmt(e.boundary)}"
    else:
        sig = f"p={_fmt(e.p_better)}"
    harm = f"p_worse={_fmt(s.p_worse)} (alpha {_fmt(e.alpha_worse)})"
    status: Status
    if worse:
        status = "worse"
        reason = f"{m.name} significantly worse: {nums}, {harm}"
    elif m.direction is None:
        status, reason = "undecided", f"{m.name}: {nums}"
    elif m.role == "primary" and better:
        status, reason = "better", f"{m.name} significantly better: {nums}, {sig}"
    elif m.role == "primary":
        status = "undecided"
        reason = f"{m.name} no significant difference yet: {nums}, {sig}, {harm}"
    elif noninferior:
        status = "noninferior"
        reason = f"{m.name} non-inferior within margin {_fmt(margin)}: {nums}"
    else:
        status = "undecided"
        reason = f"{m.name} not shown non-inferior (margin {_fmt(margin)}) yet: {nums}, {harm}"
    p_better = p_holm if fixed else e.p_better
    leaning_bad = e.good < 0
    return MetricOutcome(
        name=m.name,
        kind=m.kind,
        role=m.role,
        direction=m.direction,
        status=status,
        reason=reason,
        method=e.method,
        effect=e.effect,
        ci=ci,
        p_value=s.p_worse if leaning_bad else p_better,
        p_adjusted=s.p_worse if leaning_bad else p_better,
        alpha=e.alpha_worse if leaning_bad else (m.alpha if fixed else e.alpha_better),
        margin=margin,
        n_control=e.nc,
        n_treatment=e.nt,
        p_worse=s.p_worse,
        alpha_worse=e.alpha_worse,
        p_better=p_better,
        alpha_better=m.alpha if fixed else e.alpha_better,
        z=e.z,
        boundary=e.boundary,
        tau=s.tau_worse,
        p_look=e.p_look,
        ci_look=e.ci_look,
    )


def _shown(s: MetricState, e: _Look) -> bool:
    """Whether the efficacy side (superiority, or non-inferiority for a guardrail) has
    rejected at some look. Group-sequential: its boundary was crossed. Mixture: the
    running p-value reached its level. (A relative margin moves with the control's
    value; the rejection is judged with the margin of the look it happened at.)"""
    if s.efficacy is not None:
        return s.efficacy.crossed
    return s.p_better <= e.alpha_better


def _outcomes(
    spec: AnalysisSpec,
    control: ArmData,
    treatment: ArmData,
    past: AnalysisState,
    stratum: int,
    progress: float | None,
) -> tuple[tuple[MetricOutcome, ...], dict[str, MetricState]]:
    """Judge every metric; fixed mode Holm-adjusts the primaries' p-values together."""
    new_stratum = stratum != past.stratum
    judged: list[MetricOutcome | _Look] = []
    states: dict[str, MetricState] = {}
    for m in spec.metrics:
        prev = past.metrics.get(m.name, MetricState())
        j = _judge(
            m,
            spec,
            control.metrics.get(m.name),
            treatment.metrics.get(m.name),
            prev,
            new_stratum,
            progress,
        )
        if isinstance(j, _Look):
            states[m.name] = j.state
        else:
            states[m.name] = _closed(prev) if new_stratum else prev
        judged.append(j)
    adjusted: dict[int, float] = {}
    if spec.mode == "fixed":
        primary = [
            i
            for i, (m, j) in enumerate(zip(spec.metrics, judged, strict=True))
            if m.role == "primary" and isinstance(j, _Look) and math.isfinite(j.fixed_p)
        ]
        ps = [cast(_Look, judged[i]).fixed_p for i in primary]
        holm = stats.holm(ps).tolist() if len(ps) > 1 else ps
        adjusted = dict(zip(primary, holm, strict=True))
    outcomes = tuple(
        _classify(m, spec, j, adjusted.get(i, j.fixed_p))
        if isinstance(j, _Look)
        else _keep_numbers(j, past.metrics.get(m.name))
        for i, (m, j) in enumerate(zip(spec.metrics, judged, strict=True))
    )
    return outcomes, states


def _closed(state: MetricState) -> MetricState:
    """A metric not judged at the first look of a new stratum closes the old one."""
    if state.current is None:
        return state
    return replace(state, strata=(*state.strata, state.current), current=None)


def _keep_numbers(outcome: MetricOutcome, past: MetricState | None) -> MetricOutcome:
    """An unjudged metric still shows its running p-value, bounds and tau."""
    if past is None or past.looks == 0:
        return outcome
    return replace(
        outcome,
        tau=past.tau_worse,
        p_worse=past.p_worse,
        p_better=past.p_better,
        p_value=min(past.p_worse, past.p_better),
        ci=_ci(outcome.direction, past.lower, past.upper),
    )


def _stale(spec: AnalysisSpec, previous: AnalysisState, why: str) -> tuple[MetricOutcome, ...]:
    """Outcomes for a look whose metrics were not judged: missing, with state shown."""
    return tuple(
        _keep_numbers(
            _unjudged(m, "missing", f"{m.name}: not judged at this look ({why})"),
            previous.metrics.get(m.name),
        )
        for m in spec.metrics
    )


def _srm(spec: AnalysisSpec, control: ArmData, treatment: ArmData, prev_p: float) -> SRMResult:
    units = [control.units, treatment.units]
    if spec.mode == "sequential":
        return stats.srm_sequential(
            units, spec.weights, threshold=spec.srm_threshold, previous_p_value=prev_p
        )
    return stats.srm(units, spec.weights, threshold=spec.srm_threshold)


def _planned_n(spec: AnalysisSpec, data: ArmData) -> int:
    """Per-arm size the experiment was planned for (from a primary's ``mde`` if given)."""
    need = spec.planned_n_per_arm
    for m in spec.metrics:
        c = data.metrics.get(m.name)
        if m.role == "primary" and m.kind == "proportion" and m.mde and isinstance(c, Counts):
            base = min(max((c.x + 1) / (c.n + 2), 1e-6), 1 - 1e-6)
            other = base + m.mde if base + m.mde < 1 else base - m.mde
            if 0 < other < 1:
                need = max(
                    need, power.sample_size_two_proportions(base, other, m.alpha, spec.power)
                )
    return need


def _as_state(previous: Verdict | AnalysisState | None) -> AnalysisState:
    if previous is None:
        return AnalysisState()
    if isinstance(previous, Verdict):
        return previous.state
    return previous


def analyze(
    spec: AnalysisSpec,
    data: Mapping[str, ArmData],
    *,
    previous: Verdict | AnalysisState | None = None,
    progress: float | None = None,
    stratum: int = 0,
) -> Verdict:
    """Judge treatment against control on cumulative data; see the module docstring.

    ``previous``: the last look's verdict (or its ``state``), to carry the
    sequential tests. ``progress``: the fraction of the planned horizon reached
    (needed with ``efficacy="group_sequential"``). ``stratum``: which split the
    data come from; a new number closes the previous stratum.
    """
    past = _as_state(previous)
    if progress is not None:
        progress = v.nonnegative("progress", progress)
    elif spec.efficacy == "group_sequential" and spec.mode == "sequential":
        raise ValueError("progress is needed with efficacy='group_sequential'")
    control, treatment = data.get("control"), data.get("treatment")
    carried = replace(
        past,
        stratum=stratum,
        srm_p=1.0 if stratum != past.stratum else past.srm_p,
        metrics={k: _closed(s) for k, s in past.metrics.items()}
        if stratum != past.stratum
        else past.metrics,
    )
    if control is None or treatment is None:
        missing = "control" if control is None else "treatment"
        reason = f"no data for the {missing} arm"
        stale = _stale(spec, past, reason)
        return Verdict("inconclusive", reason, spec.mode, stale, None, state=carried)
    try:
        srm = _srm(spec, control, treatment, carried.srm_p)
    except ValueError as exc:
        reason = f"invalid unit counts ({exc})"
        stale = _stale(spec, past, reason)
        return Verdict("inconclusive", reason, spec.mode, stale, None, state=carried)
    if srm.mismatch:
        reason = (
            f"sample ratio mismatch: units {srm.observed[0]}/{srm.observed[1]} vs expected "
            f"{srm.expected[0]:.0f}/{srm.expected[1]:.0f} (p={_fmt(srm.p_value)}); verdict frozen"
        )
        frozen = replace(carried, srm_p=srm.p_value)
        stale = _stale(spec, past, "SRM")
        return Verdict("inconclusive", reason, spec.mode, stale, srm, state=frozen)
    outcomes, states = _outcomes(spec, control, treatment, past, stratum, progress)
    state = AnalysisState(stratum=stratum, srm_p=srm.p_value, metrics=states)

    def verdict(decision: Decision, reason: str, more: int | None = None) -> Verdict:
        return Verdict(decision, reason, spec.mode, outcomes, srm, more, state)

    by = {s: [o for o in outcomes if o.status == s] for s in ("worse", "missing", "insufficient")}
    if by["worse"]:
        return verdict("rollback", "; ".join(o.reason for o in by["worse"]))
    if by["missing"]:
        reason = "; ".join(o.reason for o in by["missing"]) + "; never promote on missing data"
        return verdict("inconclusive", reason)
    if by["insufficient"]:
        have = min(min(o.n_control, o.n_treatment) for o in by["insufficient"])
        need = max(o.samples_needed or 0 for o in by["insufficient"])
        reason = "; ".join(o.reason for o in by["insufficient"])
        return verdict("continue", reason, max(0, need - have))
    primaries = [o for o in outcomes if o.role == "primary" and o.direction is not None]
    guards = [o for o in outcomes if o.role == "guardrail" and o.direction is not None]
    better = [o for o in primaries if o.status == "better"]
    open_guards = [o for o in guards if o.status != "noninferior"]
    if better and not open_guards:
        reason = "; ".join(o.reason for o in better) + (
            "; all guardrails non-inferior" if guards else ""
        )
        return verdict("promote", reason)
    pending = [o for o in primaries if o.status != "better"] if not better else open_guards
    reason = "; ".join(o.reason for o in pending) or "nothing decided"
    if spec.mode == "fixed":
        return verdict("inconclusive", reason + " at the final look")
    have = min(min(o.n_control, o.n_treatment) for o in outcomes)
    more = max(0, _planned_n(spec, control) - have)
    return verdict("continue", reason, more)
