"""Mixture sequential probability ratio test (mSPRT): always-valid inference.

For a difference estimate ``theta_hat`` with variance ``V`` at the current look
and a normal mixture ``N(0, tau^2)`` over the true difference (in the units of
the difference), the likelihood ratio against ``theta = 0`` is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 theta_hat^2 / (2 V (V + tau^2)))

It is a martingale under the null, so ``p = min(1, 1 / Lambda)`` is valid at any
data-dependent stopping time (Ville's inequality), and so is the running
minimum over looks. Inverting it gives the always-valid interval

    theta_hat +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) - 2 log alpha))

whose running intersection keeps its coverage (Johari, Pekelis & Walsh, 2017;
Howard et al., 2021). ``V`` is estimated from the data at each look.

Default tau: the interval's half-width at variance ``V`` is smallest when
``tau^2 = r V`` with ``r`` solving ``r = log(1 + r) - 2 log alpha`` (about 8.2 at
alpha = 0.05). :func:`default_tau` sets ``tau^2 = r * V_N`` where ``V_N`` is the
variance of the difference at the planned sample size, so the test is sharpest
exactly when the planned sample size is reached, and still valid before and
after.

One-sided tests use the half-normal mixture over effects on one side only,

    Lambda+ = 2 sqrt(V / (V + tau^2)) exp(tau^2 theta^2 / (2 V (V + tau^2))) Phi(w),
    w = tau theta / sqrt(V (V + tau^2)),

also a martingale under ``theta <= 0`` (a mixture of likelihood ratios of
alternatives above 0), about twice the two-sided ratio for a positive effect: a
one-sided test at ``alpha`` is about as sharp as the two-sided one at ``2 alpha``.
Its p-value ``min(1, 1 / Lambda+)`` and its one-sided bound (``theta_hat`` minus
the ``theta`` at which ``Lambda+ = 1 / alpha``) come from the same ``V``, so
``p <= alpha`` exactly when the bound excludes 0.

Every test here uses one variance per look: for proportions the Agresti-Caffo
smoothed unpooled variance (positive even with zero events), for means
``var_c / n_c + var_t / n_t``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from abtest import _validate as v
from abtest._lazy import LazyModule
from abtest.results import Counts, Summary

special = LazyModule("scipy.special")

__all__ = [
    "SequentialResult",
    "SequentialTest",
    "default_tau",
    "difference",
    "halfwidth_at",
    "mixture_ci_halfwidth",
    "mixture_p_value",
    "msprt",
    "one_sided_bound",
    "one_sided_p_value",
    "p_value_at",
    "proportion_arrays",
    "tau_ratio",
]


@functools.lru_cache(maxsize=64)
def tau_ratio(alpha: float) -> float:
    """The ``r = tau^2 / V`` that minimises the always-valid interval at variance ``V``.

    Solves ``r = log(1 + r) - 2 log alpha`` by fixed-point iteration, a
    contraction because the right side's slope ``1 / (1 + r)`` is below 1.
    """
    a = v.open_unit("alpha", alpha)
    c = -2.0 * math.log(a)
    r = c + 1.0
    for _ in range(100):
        nxt = math.log1p(r) + c
        if abs(nxt - r) < 1e-13:
            return nxt
        r = nxt
    return r


def default_tau(unit_variance: float, planned_n_per_arm: float, alpha: float = 0.05) -> float:
    """Mixture scale that makes the test sharpest at the planned sample size.

    ``unit_variance`` is the sum of one observation's variance in each arm
    (``2 p (1 - p)`` for a proportion ``p`` in both arms, ``var_c + var_t`` for
    means), so ``V_N = unit_variance / planned_n_per_arm`` and
    ``tau = sqrt(tau_ratio(alpha) * V_N)``.
    """
    uv = v.positive("unit_variance", unit_variance)
    n = v.positive("planned_n_per_arm", planned_n_per_arm)
    return math.sqrt(tau_ratio(alpha) * uv / n)


def mixture_p_value(
    theta_hat: npt.ArrayLike, variance: npt.ArrayLike, tau: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Vectorised ``min(1, 1 / Lambda)``; ``V = 0`` gives 1 when ``theta_hat == 0``, else 0.

    Inputs broadcast; no validation here because simulations call this on
    millions of looks. Use :func:`msprt` for checked single looks.
    """
    th = np.asarray(theta_hat, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lam = 0.5 * np.log(var / (var + t2)) + t2 * th * th / (2.0 * var * (var + t2))
        p = np.exp(-log_lam)
    p = np.where(var > 0, p, np.where(th == 0, 1.0, 0.0))
    out: npt.NDArray[np.float64] = np.minimum(p, 1.0)
    return out


def mixture_ci_halfwidth(
    variance: npt.ArrayLike, tau: npt.ArrayLike, alpha: float
) -> npt.NDArray[np.float64]:
    """Vectorised half-width of the always-valid ``1 - alpha`` interval (0 when ``V = 0``)."""
    var = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        w2 = var * (var + t2) / t2 * (np.log((var + t2) / var) - 2.0 * math.log(alpha))
    out: npt.NDArray[np.float64] = np.sqrt(np.where(var > 0, w2, 0.0))
    return out


def p_value_at(theta: float, var: float, tau: float) -> float:
    """Scalar :func:`mixture_p_value` (no numpy overhead; for the per-look hot path)."""
    if var <= 0:
        return 1.0 if theta == 0 else 0.0
    t2 = tau * tau
    log_lam = 0.5 * math.log(var / (var + t2)) + t2 * theta * theta / (2.0 * var * (var + t2))
    return 1.0 if log_lam <= 0 else math.exp(-log_lam)


def halfwidth_at(var: float, tau: float, alpha: float) -> float:
    """Scalar :func:`mixture_ci_halfwidth`."""
    if var <= 0:
        return 0.0
    t2 = tau * tau
    return math.sqrt(var * (var + t2) / t2 * (math.log((var + t2) / var) - 2.0 * math.log(alpha)))


def difference(
    control: Counts | Summary, treatment: Counts | Summary
) -> tuple[float, float, int, int]:
    """Return ``(theta_hat, V, n_c, n_t)`` for one look: the test and its interval share ``V``.

    Proportions use the Agresti-Caffo smoothed rates ``(x + 1) / (n + 2)`` in an
    unpooled variance, so zero events in a small sample never give ``V = 0``;
    means use ``var_c / n_c + var_t / n_t``.
    """
    if isinstance(control, Counts) and isinstance(treatment, Counts):
        xc, nc = v.trials("control.x", control.x, "control.n", control.n)
        xt, nt = v.trials("treatment.x", treatment.x, "treatment.n", treatment.n)
        ac, at = (xc + 1) / (nc + 2), (xt + 1) / (nt + 2)
        var = ac * (1.0 - ac) / (nc + 2) + at * (1.0 - at) / (nt + 2)
        return xt / nt - xc / nc, var, nc, nt
    if isinstance(control, Summary) and isinstance(treatment, Summary):
        mc = v.finite("control.mean", control.mean)
        mt = v.finite("treatment.mean", treatment.mean)
        vc = v.nonnegative("control.var", control.var)
        vt = v.nonnegative("treatment.var", treatment.var)
        nc = v.count("control.n", control.n)
        nt = v.count("treatment.n", treatment.n)
        if nc < 2 or nt < 2:
            raise ValueError("control.n and treatment.n must be at least 2 for means")
        return mt - mc, vc / nc + vt / nt, nc, nt
    raise ValueError("control and treatment must both be Counts or both be Summary")


def proportion_arrays(
    x_control: npt.ArrayLike,
    n_control: npt.ArrayLike,
    x_treatment: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Vectorised :func:`difference` for counts: ``(theta_hat, V)``.

    Unchecked, for simulations over many rollouts and looks.
    """
    xc = np.asarray(x_control, dtype=np.float64)
    nc = np.asarray(n_control, dtype=np.float64)
    xt = np.asarray(x_treatment, dtype=np.float64)
    nt = np.asarray(n_treatment, dtype=np.float64)
    ac, at = (xc + 1) / (nc + 2), (xt + 1) / (nt + 2)
    var = ac * (1.0 - ac) / (nc + 2) + at * (1.0 - at) / (nt + 2)
    return xt / nt - xc / nc, var


def _log_one_sided(w: float, r: float) -> float:
    """``log Lambda+`` from the standardised ``w`` and ``r = tau^2 / V``."""
    return math.log(2.0) - 0.5 * math.log1p(r) + 0.5 * w * w + float(special.log_ndtr(w))


def one_sided_p_value(theta: float, var: float, tau: float) -> float:
    """Always-valid p-value of ``theta <= 0`` against ``theta > 0``: ``min(1, 1 / Lambda+)``.

    ``V = 0`` gives 0 for a positive estimate and 1 otherwise.
    """
    if var <= 0:
        return 0.0 if theta > 0 else 1.0
    t2 = tau * tau
    w = tau * theta / math.sqrt(var * (var + t2))
    log_lam = _log_one_sided(w, t2 / var)
    return 1.0 if log_lam <= 0 else math.exp(-log_lam)


@functools.lru_cache(maxsize=4096)
def _one_sided_w(r: float, alpha: float) -> float:
    """The standardised ``w`` at which ``Lambda+ = 1 / alpha`` (Newton on an increasing
    function: ``d/dw (w^2 / 2 + log Phi(w)) = w + phi(w) / Phi(w) > 0``)."""
    target = -math.log(alpha)
    w = math.sqrt(max(2.0 * (target - math.log(2.0) + 0.5 * math.log1p(r)), 0.0)) + 0.5
    for _ in range(60):
        g = _log_one_sided(w, r) - target
        slope = w + _mills(w)
        step = g / slope
        w -= step
        if abs(step) < 1e-12:
            break
    return w


def _mills(w: float) -> float:
    """``phi(w) / Phi(w)``, stable for any ``w``."""
    return math.exp(-0.5 * w * w - 0.5 * math.log(2.0 * math.pi) - float(special.log_ndtr(w)))


def one_sided_bound(theta: float, var: float, tau: float, alpha: float) -> float:
    """The always-valid ``1 - alpha`` lower bound on the effect: ``theta_hat - x*`` where
    ``Lambda+(x*) = 1 / alpha``; it is above 0 exactly when :func:`one_sided_p_value`
    is at most ``alpha``."""
    if var <= 0:
        return theta
    t2 = tau * tau
    w = _one_sided_w(t2 / var, alpha)
    return theta - w * math.sqrt(var * (var + t2)) / tau


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """One look of the mSPRT: the always-valid p-value and interval for the effect."""

    method: str
    p_value: float
    ci: tuple[float, float]
    effect: float
    variance: float
    tau: float
    alpha: float
    n_control: int
    n_treatment: int


def msprt(
    control: Counts | Summary,
    treatment: Counts | Summary,
    *,
    tau: float | None = None,
    planned_n_per_arm: float | None = None,
    alpha: float = 0.05,
) -> SequentialResult:
    """Always-valid p-value and ``1 - alpha`` interval for treatment minus control.

    Pass ``tau`` fixed at the start of the experiment (best), or
    ``planned_n_per_arm`` to derive it with :func:`default_tau` from the current
    control arm's per-unit variance (a plug-in that drifts slightly as data
    accrue). Counts are cumulative since the start of the experiment.
    """
    a = v.open_unit("alpha", alpha)
    theta, var, nc, nt = difference(control, treatment)
    if tau is None:
        if planned_n_per_arm is None:
            raise ValueError("tau or planned_n_per_arm must be given")
        tau_ = default_tau(_unit_variance(control, treatment), planned_n_per_arm, a)
    else:
        tau_ = v.positive("tau", tau)
    h = halfwidth_at(var, tau_, a)
    return SequentialResult(
        method="mixture SPRT (normal mixture)",
        p_value=p_value_at(theta, var, tau_),
        ci=(theta - h, theta + h),
        effect=theta,
        variance=var,
        tau=tau_,
        alpha=a,
        n_control=nc,
        n_treatment=nt,
    )


def _unit_variance(control: Counts | Summary, treatment: Counts | Summary) -> float:
    """Per-unit variance of the difference under the null, from the control arm.

    Proportions use the Agresti-Caffo smoothed control rate so that zero events
    still give a positive scale; means use both arms' variances.
    """
    if isinstance(control, Counts):
        p = (control.x + 1) / (control.n + 2)
        return 2.0 * p * (1.0 - p)
    if isinstance(treatment, Summary):
        uv = control.var + treatment.var
        if uv > 0:
            return uv
    raise ValueError("cannot derive tau from zero variance; pass tau explicitly")


@dataclass(frozen=True, slots=True)
class SequentialTest:
    """State of an mSPRT across looks: running minimum p-value and interval intersection.

    Immutable: :meth:`update` returns a new state. ``ci`` can become empty
    (``low > high``) only when the effect changes over time, which breaks the
    test's assumption; :attr:`ci_empty` reports it. Serialise with
    :meth:`to_dict` / :meth:`from_dict` to persist between daemon runs.
    """

    tau: float
    alpha: float = 0.05
    looks: int = 0
    p_value: float = 1.0
    ci: tuple[float, float] = (-math.inf, math.inf)
    last: SequentialResult | None = None

    def __post_init__(self) -> None:
        v.positive("tau", self.tau)
        v.open_unit("alpha", self.alpha)

    @classmethod
    def planned(
        cls, unit_variance: float, planned_n_per_arm: float, alpha: float = 0.05
    ) -> SequentialTest:
        """Start a test whose tau comes from :func:`default_tau`."""
        return cls(tau=default_tau(unit_variance, planned_n_per_arm, alpha), alpha=alpha)

    def update(self, control: Counts | Summary, treatment: Counts | Summary) -> SequentialTest:
        """Fold in one look of cumulative data."""
        r = msprt(control, treatment, tau=self.tau, alpha=self.alpha)
        ci = (max(self.ci[0], r.ci[0]), min(self.ci[1], r.ci[1]))
        return replace(
            self, looks=self.looks + 1, p_value=min(self.p_value, r.p_value), ci=ci, last=r
        )

    @property
    def ci_empty(self) -> bool:
        """True when the intersected interval is empty (the effect is not stationary)."""
        return self.ci[0] > self.ci[1]

    def rejects(self) -> bool:
        """True once the running p-value is at most alpha."""
        return self.p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (the last look is not kept; it is recomputed next look)."""
        return {
            "tau": self.tau,
            "alpha": self.alpha,
            "looks": self.looks,
            "p_value": self.p_value,
            "ci": [self.ci[0], self.ci[1]],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequentialTest:
        """Inverse of :meth:`to_dict`."""
        lo, hi = data.get("ci", [-math.inf, math.inf])
        return cls(
            tau=float(data["tau"]),
            alpha=float(data.get("alpha", 0.05)),
            looks=int(data.get("looks", 0)),
            p_value=v.closed_unit("p_value", data.get("p_value", 1.0)),
            ci=(float(lo), float(hi)),
        )
