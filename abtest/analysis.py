"""Verdicts: turn a declarative metric spec and per-arm data into a decision.

``analyze(spec, data)`` returns ``promote | continue | rollback | inconclusive``
with, per metric, the numbers behind it and a one-line reason. The rules, in
the order they are applied:

1. A missing arm, or a sample ratio mismatch between the arms' assigned units
   and the planned weights, freezes the verdict at ``inconclusive``: the data
   cannot be trusted, whatever the metrics say.
2. ``rollback`` when any guardrail is significantly worse than control by
   more than its ``margin`` (its interval lies entirely beyond that loss;
   with the default margin 0, significantly worse at all). A loss inside
   the declared margin is tolerated by definition.
3. Missing, NaN or otherwise invalid data for any metric gives
   ``inconclusive`` (never ``promote``); the caller's policy decides whether
   to hold or roll back.
4. Too few samples in any metric gives ``continue`` with the sample size
   still needed and how many more units per arm that is.
5. ``promote`` when every guardrail is shown non-inferior (its interval
   excludes a loss of ``margin``), at least one primary metric is
   significantly better after Holm's adjustment across primary metrics, and
   none is significantly worse.
6. Otherwise ``continue`` in sequential mode, ``inconclusive`` in fixed mode
   (the single final look has been spent).

Sequential mode (the default) uses the mSPRT's always-valid p-values and
intervals for proportion and mean metrics, so the verdict may be recomputed
at every interval on cumulative data. Passing each verdict back as
``previous`` keeps one confidence sequence per metric for the whole rollout:
tau fixed at the first judged look, running minimum p-values, intersected
intervals, and the sequential SRM p-value carried (also across looks where a
metric is missing or the verdict is frozen). Distribution and quantile metrics have
no always-valid test here; in sequential mode they are tested at
``alpha / max_looks`` (Bonferroni over the planned number of looks), which
keeps their error rate at most ``alpha`` over ``max_looks`` looks.
Fixed-horizon mode runs the ordinary tests at ``alpha`` for one final look.

The hot path on aggregate counts avoids pandas and scipy.stats objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy import special

from abtest import _validate as v
from abtest import power, sequential, stats
from abtest.results import Counts, Direction, SRMResult, Summary

__all__ = [
    "AnalysisSpec",
    "ArmData",
    "Histogram",
    "MetricOutcome",
    "MetricSpec",
    "Verdict",
    "analyze",
]

Kind = Literal["proportion", "mean", "distribution", "quantile"]
Role = Literal["primary", "guardrail"]
Mode = Literal["sequential", "fixed"]
Decision = Literal["promote", "continue", "rollback", "inconclusive"]
Status = Literal["better", "worse", "noninferior", "undecided", "insufficient", "missing"]

_KINDS = ("proportion", "mean", "distribution", "quantile")
_ROLES = ("primary", "guardrail")
_MODES = ("sequential", "fixed")


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric to judge.

    ``direction`` says which side is better. ``margin`` is the loss a guardrail
    may show and still count as non-inferior (absolute, or a fraction of the
    control's value when ``relative_margin``; for ``distribution`` metrics it
    is on the rank-biserial scale). ``min_samples`` per arm must be reached
    before the metric is judged. ``mde`` (absolute, proportions only) sizes the
    "more samples needed" estimate; ``tau`` overrides the mixture scale.
    """

    name: str
    kind: Kind
    role: Role = "primary"
    direction: Direction = "higher"
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
        v.direction(self.direction)
        v.nonnegative("margin", self.margin)
        v.open_unit("alpha", self.alpha)
        v.count("min_samples", self.min_samples)
        if self.mde is not None:
            v.positive("mde", self.mde)
        if self.tau is not None:
            v.positive("tau", self.tau)
        v.closed_unit("q", self.q)


_METRIC_KEYS = frozenset(MetricSpec.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """What to judge and how.

    ``weights`` are the planned (unnormalised) control and treatment shares for
    the window the data come from; the SRM check compares assigned units to
    them, so after a canary step changes the split, pass data from the new
    step only. ``planned_n_per_arm`` sets the default mixture scale (see
    ``abtest.sequential``) and the "more samples" estimate; ``max_looks`` is
    the Bonferroni divisor for distribution and quantile metrics in
    sequential mode.
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

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("metrics must not be empty")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metrics must have unique names")
        if not any(m.role == "primary" for m in self.metrics):
            raise ValueError("metrics must include at least one primary metric")
        _choice("mode", self.mode, _MODES)
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

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (e.g. for YAML)."""
        return {
            "metrics": [
                {k: getattr(m, k) for k in MetricSpec.__dataclass_fields__} for m in self.metrics
            ],
            "mode": self.mode,
            "weights": list(self.weights),
            "srm_threshold": self.srm_threshold,
            "planned_n_per_arm": self.planned_n_per_arm,
            "max_looks": self.max_looks,
            "power": self.power,
            "resamples": self.resamples,
            "seed": self.seed,
        }

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
    quantile metrics raw values. Everything is cumulative over the window.
    """

    units: int
    metrics: Mapping[str, MetricData | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricOutcome:
    """The numbers behind one metric's part of the verdict.

    ``p_value`` is the raw (always-valid in sequential mode) p-value of no
    difference; ``p_adjusted`` is Holm-adjusted across primary metrics (equal
    to ``p_value`` for guardrails); ``alpha`` is the level it was judged at.
    ``ci`` is the interval used for non-inferiority. ``samples_needed`` is the
    per-arm size still required before judging, when too small.
    ``fixed_noninferior`` is the one-sided non-inferiority test's answer in
    fixed mode (``None`` in sequential mode, where the interval decides).
    For mSPRT metrics, ``tau`` is the mixture scale (kept fixed from the first
    judged look when ``previous`` verdicts are passed back), and ``p_value`` /
    ``ci`` are the running minimum and running intersection over looks, while
    ``p_look`` / ``ci_look`` are this look's alone.
    """

    name: str
    kind: Kind
    role: Role
    direction: Direction
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
    fixed_noninferior: bool | None = None
    tau: float = math.nan
    p_look: float = math.nan
    ci_look: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, why, and per-metric evidence.

    ``additional_samples`` estimates how many more units per arm are needed:
    to reach ``min_samples`` when too few, else to reach the planned size.
    """

    decision: Decision
    reason: str
    mode: Mode
    metrics: tuple[MetricOutcome, ...]
    srm: SRMResult | None
    additional_samples: int | None = None


@dataclass(slots=True)
class _Evidence:
    """Per-look numbers for one metric (mutable and private: combined with the past in place)."""

    method: str
    effect: float
    ci: tuple[float, float] | None
    p: float
    alpha: float
    base: float
    nc: int
    nt: int
    ni: bool | None = None  # fixed-mode non-inferiority decided by its own test
    tau: float = math.nan
    p_look: float = math.nan
    ci_look: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.p_look, self.ci_look = self.p, self.ci

    def carry(self, past: MetricOutcome) -> None:
        """Fold in the previous look: running minimum p-value, intersected interval."""
        if math.isfinite(past.p_value):
            self.p = min(self.p, past.p_value)
        if past.ci is not None and self.ci is not None:
            self.ci = (max(self.ci[0], past.ci[0]), min(self.ci[1], past.ci[1]))


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


def _sequential_ci(theta: float, var: float, tau: float, alpha: float) -> tuple[float, float]:
    h = sequential.halfwidth_at(var, tau, alpha)
    return (theta - h, theta + h)


def _tau(m: MetricSpec, spec: AnalysisSpec, unit_variance: float, fixed: float | None) -> float:
    """The spec's tau, else the one fixed at an earlier look, else the planned default."""
    if m.tau is not None:
        return m.tau
    if fixed is not None:
        return fixed
    return sequential.default_tau(unit_variance, spec.planned_n_per_arm, m.alpha)


def _evidence(
    m: MetricSpec, spec: AnalysisSpec, c: MetricData, t: MetricData, tau_fixed: float | None
) -> _Evidence:
    seq = spec.mode == "sequential"
    a = m.alpha
    if m.kind == "proportion":
        if not (isinstance(c, Counts) and isinstance(t, Counts)):
            raise ValueError(f"{m.name}: a proportion metric needs Counts in both arms")
        if seq:
            theta, v_test, v_ci, nc, nt = sequential.difference(c, t)
            pc = (c.x + 1) / (c.n + 2)
            tau = _tau(m, spec, 2.0 * pc * (1.0 - pc), tau_fixed)
            p = sequential.p_value_at(theta, v_test, tau)
            return _Evidence(
                "mSPRT, difference of proportions",
                theta,
                _sequential_ci(theta, v_ci, tau, a),
                p,
                a,
                c.x / c.n,
                nc,
                nt,
                tau=tau,
            )
        r = stats.two_proportions(c.x, c.n, t.x, t.n, confidence=1 - a)
        ni = stats.noninferiority(
            c, t, margin=m.margin, relative=m.relative_margin, direction=m.direction, alpha=a
        )
        return _Evidence(
            r.method,
            r.effect,
            r.ci,
            r.p_value,
            a,
            c.x / c.n,
            r.n_control,
            r.n_treatment,
            ni.noninferior,
        )
    if m.kind == "mean":
        sc, st = _summary("control", c), _summary("treatment", t)
        if seq:
            theta, var, _, nc, nt = sequential.difference(sc, st)
            uv = sc.var + st.var
            tau = _tau(m, spec, uv, tau_fixed) if m.tau or tau_fixed or uv > 0 else 1.0
            p = sequential.p_value_at(theta, var, tau)
            return _Evidence(
                "mSPRT, difference of means",
                theta,
                _sequential_ci(theta, var, tau, a),
                p,
                a,
                sc.mean,
                nc,
                nt,
                tau=tau,
            )
        r = stats.welch_from_summary(sc.mean, sc.var, sc.n, st.mean, st.var, st.n, confidence=1 - a)
        ni = stats.noninferiority(
            sc, st, margin=m.margin, relative=m.relative_margin, direction=m.direction, alpha=a
        )
        return _Evidence(
            r.method,
            r.effect,
            r.ci,
            r.p_value,
            a,
            sc.mean,
            r.n_control,
            r.n_treatment,
            ni.noninferior,
        )
    level = a / spec.max_looks if seq else a
    suffix = f" at alpha/{spec.max_looks} (Bonferroni over looks)" if seq else ""
    if m.kind == "distribution":
        if isinstance(c, Histogram) and isinstance(t, Histogram):
            if c.buckets != t.buckets:
                raise ValueError(f"{m.name}: control and treatment buckets differ")
            h = stats.histogram_compare(c.buckets, c.counts, t.counts)
            eff, se, p, nc, nt, method = (
                h.effect,
                h.se,
                h.p_value,
                h.n_control,
                h.n_treatment,
                h.method,
            )
        elif isinstance(c, Counts | Summary | Histogram) or isinstance(
            t, Counts | Summary | Histogram
        ):
            raise ValueError(f"{m.name}: a distribution metric needs Histograms or raw values")
        else:
            r = stats.mann_whitney(c, t)
            eff, se, p, nc, nt, method = (
                r.effect,
                r.se,
                r.p_value,
                r.n_control,
                r.n_treatment,
                r.method,
            )
        z = float(special.ndtri(1 - level / 2))
        return _Evidence(method + suffix, eff, (eff - z * se, eff + z * se), p, level, 0.0, nc, nt)
    if isinstance(c, Counts | Summary | Histogram) or isinstance(t, Counts | Summary | Histogram):
        raise ValueError(f"{m.name}: a quantile metric needs raw values in both arms")
    cc = v.sample("control", c)
    r = stats.quantile_difference(
        cc, t, m.q, resamples=spec.resamples, seed=spec.seed, confidence=1 - level
    )
    return _Evidence(
        r.method + suffix,
        r.effect,
        r.ci,
        r.p_value,
        level,
        float(np.quantile(cc, m.q)) if m.relative_margin else 0.0,
        r.n_control,
        r.n_treatment,
    )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _judge(
    m: MetricSpec,
    spec: AnalysisSpec,
    c: MetricData | None,
    t: MetricData | None,
    past: MetricOutcome | None,
) -> MetricOutcome | _Evidence:
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
        tau_fixed = past.tau if past is not None and math.isfinite(past.tau) else None
        e = _evidence(m, spec, c, t, tau_fixed)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        return _unjudged(m, "missing", f"{m.name}: invalid data ({exc})")
    if not (math.isfinite(e.effect) and math.isfinite(e.p)):
        return _unjudged(m, "missing", f"{m.name}: non-finite result")
    if past is not None and math.isfinite(e.tau) and past.tau == e.tau:
        e.carry(past)
    return e


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


def _classify(m: MetricSpec, e: _Evidence, p_adjusted: float) -> MetricOutcome:
    """Status and reason from the evidence.

    Primary metrics: significantly better or worse by their (Holm-adjusted)
    p-value and the effect's sign. Guardrails: worse when the interval lies
    entirely beyond a loss of ``margin``; non-inferior when it excludes that
    loss on the other side (or, in fixed mode, by the one-sided test).
    """
    margin = m.margin * abs(e.base) if m.relative_margin else m.margin
    good = e.effect if m.direction == "higher" else -e.effect
    p_txt = f"p={_fmt(p_adjusted)}" + (" (Holm)" if p_adjusted != e.p else "")
    ci_txt = "" if e.ci is None else f", CI [{_fmt(e.ci[0])}, {_fmt(e.ci[1])}]"
    nums = f"effect {_fmt(e.effect)} ({m.direction} is better){ci_txt}, {p_txt}"
    status: Status
    if m.role == "primary":
        sig = p_adjusted <= e.alpha
        if sig and good < 0:
            status, reason = "worse", f"{m.name} significantly worse: {nums}"
        elif sig and good > 0:
            status, reason = "better", f"{m.name} significantly better: {nums}"
        else:
            status, reason = "undecided", f"{m.name} no significant difference yet: {nums}"
    elif _beyond_margin(m.direction, e.ci, margin):
        status = "worse"
        reason = f"{m.name} significantly worse, beyond margin {_fmt(margin)}: {nums}"
    elif _noninferior(m.direction, e.ci, margin, e.ni):
        status = "noninferior"
        reason = f"{m.name} non-inferior within margin {_fmt(margin)}: {nums}"
    else:
        status = "undecided"
        reason = f"{m.name} not shown non-inferior (margin {_fmt(margin)}) yet: {nums}"
    return MetricOutcome(
        name=m.name,
        kind=m.kind,
        role=m.role,
        direction=m.direction,
        status=status,
        reason=reason,
        method=e.method,
        effect=e.effect,
        ci=e.ci,
        p_value=e.p,
        p_adjusted=p_adjusted,
        alpha=e.alpha,
        margin=margin,
        n_control=e.nc,
        n_treatment=e.nt,
        fixed_noninferior=e.ni,
        tau=e.tau,
        p_look=e.p_look,
        ci_look=e.ci_look,
    )


def _beyond_margin(direction: Direction, ci: tuple[float, float] | None, margin: float) -> bool:
    """The guardrail's interval lies entirely on the bad side of the allowed loss."""
    if ci is None:
        return False
    return ci[1] < -margin if direction == "higher" else ci[0] > margin


def _noninferior(
    direction: Direction, ci: tuple[float, float] | None, margin: float, fixed: bool | None
) -> bool:
    if fixed is not None:
        return fixed
    if ci is None:
        return False
    return ci[0] > -margin if direction == "higher" else ci[1] < margin


def _outcomes(
    spec: AnalysisSpec, control: ArmData, treatment: ArmData, previous: Verdict | None
) -> tuple[MetricOutcome, ...]:
    """Judge every metric, Holm-adjusting the primary metrics' p-values together."""
    past: dict[str, MetricOutcome] = {}
    if previous is not None and previous.mode == "sequential" == spec.mode:
        past = {o.name: o for o in previous.metrics}
    judged = [
        _judge(
            m, spec, control.metrics.get(m.name), treatment.metrics.get(m.name), past.get(m.name)
        )
        for m in spec.metrics
    ]
    primary = [
        i
        for i, (m, j) in enumerate(zip(spec.metrics, judged, strict=True))
        if m.role == "primary" and isinstance(j, _Evidence)
    ]
    adjusted: dict[int, float] = {}
    if len(primary) > 1:
        ps = [cast(_Evidence, judged[i]).p for i in primary]
        adjusted = dict(zip(primary, stats.holm(ps).tolist(), strict=True))
    return tuple(
        _classify(m, j, adjusted.get(i, j.p))
        if isinstance(j, _Evidence)
        else _keep_state(j, past.get(m.name))
        for i, (m, j) in enumerate(zip(spec.metrics, judged, strict=True))
    )


def _keep_state(outcome: MetricOutcome, past: MetricOutcome | None) -> MetricOutcome:
    """An unjudged metric keeps its last running p-value, interval and tau for the next look.

    Restarting the mixture after a gap would spend alpha again; carrying the
    state keeps one confidence sequence per metric for the whole rollout.
    """
    if past is None or not math.isfinite(past.tau):
        return outcome
    return replace(outcome, tau=past.tau, p_value=past.p_value, ci=past.ci)


def _stale(previous: Verdict | None, why: str) -> tuple[MetricOutcome, ...]:
    """Outcomes for a look whose metrics were not judged: missing, with state carried."""
    if previous is None or previous.mode != "sequential":
        return ()
    return tuple(
        _keep_state(
            MetricOutcome(
                name=o.name,
                kind=o.kind,
                role=o.role,
                direction=o.direction,
                status="missing",
                reason=f"{o.name}: not judged at this look ({why})",
            ),
            o,
        )
        for o in previous.metrics
    )


def _srm(
    spec: AnalysisSpec, control: ArmData, treatment: ArmData, previous: Verdict | None
) -> SRMResult:
    units = [control.units, treatment.units]
    if spec.mode == "sequential":
        prev = 1.0
        if previous is not None and previous.srm is not None and previous.mode == "sequential":
            prev = previous.srm.p_value
        return stats.srm_sequential(
            units, spec.weights, threshold=spec.srm_threshold, previous_p_value=prev
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


def analyze(
    spec: AnalysisSpec, data: Mapping[str, ArmData], *, previous: Verdict | None = None
) -> Verdict:
    """Judge treatment against control on cumulative data; see the module docstring.

    In sequential mode, pass the previous look's verdict as ``previous`` to
    carry the running minimum p-values, the running intersection of
    intervals, the mixture scale fixed at the first judged look, and the
    sequential SRM p-value; all remain valid across looks. Without it each
    look stands alone (still always-valid, just not cumulative).
    """
    control, treatment = data.get("control"), data.get("treatment")
    if control is None or treatment is None:
        missing = "control" if control is None else "treatment"
        reason = f"no data for the {missing} arm"
        return Verdict("inconclusive", reason, spec.mode, _stale(previous, reason), None)
    try:
        srm = _srm(spec, control, treatment, previous)
    except ValueError as exc:
        reason = f"invalid unit counts ({exc})"
        return Verdict("inconclusive", reason, spec.mode, _stale(previous, reason), None)
    if srm.mismatch:
        reason = (
            f"sample ratio mismatch: units {srm.observed[0]}/{srm.observed[1]} vs expected "
            f"{srm.expected[0]:.0f}/{srm.expected[1]:.0f} (p={_fmt(srm.p_value)}); verdict frozen"
        )
        return Verdict("inconclusive", reason, spec.mode, _stale(previous, "SRM"), srm)
    outcomes = _outcomes(spec, control, treatment, previous)
    by = {s: [o for o in outcomes if o.status == s] for s in ("worse", "missing", "insufficient")}
    bad_guards = [o for o in by["worse"] if o.role == "guardrail"]
    if bad_guards:
        return Verdict(
            "rollback", "; ".join(o.reason for o in bad_guards), spec.mode, outcomes, srm
        )
    if by["missing"]:
        reason = "; ".join(o.reason for o in by["missing"]) + "; never promote on missing data"
        return Verdict("inconclusive", reason, spec.mode, outcomes, srm)
    if by["insufficient"]:
        have = min(min(o.n_control, o.n_treatment) for o in by["insufficient"])
        need = max(o.samples_needed or 0 for o in by["insufficient"])
        reason = "; ".join(o.reason for o in by["insufficient"])
        return Verdict("continue", reason, spec.mode, outcomes, srm, max(0, need - have))
    primaries = [o for o in outcomes if o.role == "primary"]
    guards = [o for o in outcomes if o.role == "guardrail"]
    worse_primary = [o for o in primaries if o.status == "worse"]
    if worse_primary:
        reason = "; ".join(o.reason for o in worse_primary) + "; cannot promote"
        return Verdict("inconclusive", reason, spec.mode, outcomes, srm)
    better = [o for o in primaries if o.status == "better"]
    open_guards = [o for o in guards if o.status != "noninferior"]
    if better and not open_guards:
        reason = "; ".join(o.reason for o in better) + (
            "; all guardrails non-inferior" if guards else ""
        )
        return Verdict("promote", reason, spec.mode, outcomes, srm)
    pending = [o for o in primaries if o.status != "better"] if not better else open_guards
    reason = "; ".join(o.reason for o in pending) or "nothing decided"
    if spec.mode == "fixed":
        return Verdict("inconclusive", reason + " at the final look", spec.mode, outcomes, srm)
    have = min(min(o.n_control, o.n_treatment) for o in outcomes)
    more = max(0, _planned_n(spec, control) - have)
    return Verdict("continue", reason, spec.mode, outcomes, srm, more)
