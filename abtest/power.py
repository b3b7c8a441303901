"""Power and sample size for the fixed-horizon tests (two-sided unless stated).

Sample sizes are per arm with equal allocation and are rounded up to whole
units. The sequential test needs more units than these for the same power;
they are the planning input for its default ``tau`` (see ``abtest.sequential``).
"""

from __future__ import annotations

import math

from abtest import _validate as v
from abtest._lazy import LazyModule

optimize = LazyModule("scipy.optimize")
special = LazyModule("scipy.special")

__all__ = ["mde_two_proportions", "sample_size_two_means", "sample_size_two_proportions"]

_METHODS = ("pooled", "unpooled", "arcsine")


def _z(p: float) -> float:
    return float(special.ndtri(p))


def _n_two_proportions(p1: float, p2: float, alpha: float, power: float, method: str) -> float:
    za, zb = _z(1 - alpha / 2), _z(power)
    if method == "arcsine":
        h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
        return 2.0 * ((za + zb) / h) ** 2  # each arm's 2 asin(sqrt(p)) has variance 1/n
    d2 = (p2 - p1) ** 2
    alt_var = p1 * (1 - p1) + p2 * (1 - p2)
    if method == "unpooled":
        return (za + zb) ** 2 * alt_var / d2
    pbar = (p1 + p2) / 2
    return (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(alt_var)) ** 2 / d2


def sample_size_two_proportions(
    p1: float, p2: float, alpha: float = 0.05, power: float = 0.8, method: str = "pooled"
) -> int:
    """Units per arm for a two-sided two-proportion z test to detect ``p1`` vs ``p2``.

    ``pooled`` (Fleiss, without continuity correction) uses the pooled variance
    under the null and the unpooled one under the alternative; ``unpooled``
    uses the unpooled variance for both; ``arcsine`` uses Cohen's ``h``.
    """
    a = v.open_unit("p1", p1)
    b = v.open_unit("p2", p2)
    al = v.open_unit("alpha", alpha)
    pw = v.open_unit("power", power)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if a == b:
        raise ValueError("p2 must differ from p1")
    return math.ceil(_n_two_proportions(a, b, al, pw, method) - 1e-9)


def _power_two_means(n: float, d: float, alpha: float) -> float:
    """Power of the two-sided pooled t test with ``n`` per arm (both tails counted)."""
    df = 2 * n - 2
    nc = d * math.sqrt(n / 2)
    crit = float(special.stdtrit(df, 1 - alpha / 2))
    upper = 1 - float(special.nctdtr(df, nc, crit))
    lower = float(special.nctdtr(df, nc, -crit))
    return upper + lower


def sample_size_two_means(effect_size_d: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided two-sample t test to detect Cohen's ``d``.

    Solves the exact noncentral-t power equation (as statsmodels'
    ``TTestIndPower`` does), so ``d = 0.5`` gives Cohen's 64 per group.
    """
    d = abs(v.finite("effect_size_d", effect_size_d))
    if d == 0:
        raise ValueError("effect_size_d must be non-zero")
    al = v.open_unit("alpha", alpha)
    pw = v.open_unit("power", power)
    if _power_two_means(2.0, d, al) >= pw:
        return 2
    hi = 4.0
    while _power_two_means(hi, d, al) < pw:
        hi *= 2
    n = optimize.brentq(lambda x: _power_two_means(x, d, al) - pw, 2.0, hi, xtol=1e-10)
    return math.ceil(float(n) - 1e-9)


def mde_two_proportions(
    baseline: float,
    n_per_arm: float,
    alpha: float = 0.05,
    power: float = 0.8,
    method: str = "pooled",
) -> float:
    """Smallest absolute increase over ``baseline`` detectable with ``n_per_arm`` per arm.

    Inverts :func:`sample_size_two_proportions` with the same ``method`` (before
    rounding up), looking upward from the baseline, so that
    ``sample_size_two_proportions(p, p + mde(p, n, method=m), method=m)`` is ``n``.
    """
    p1 = v.open_unit("baseline", baseline)
    n = v.positive("n_per_arm", n_per_arm)
    al = v.open_unit("alpha", alpha)
    pw = v.open_unit("power", power)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    top = 1.0 - 1e-12
    if _n_two_proportions(p1, top, al, pw, method) > n:
        raise ValueError(f"n_per_arm={n_per_arm!r} is too small to detect any increase")
    delta = optimize.brentq(
        lambda p2: _n_two_proportions(p1, p2, al, pw, method) - n,
        p1 + 1e-12,
        top,
        xtol=1e-14,
        rtol=1e-12,
    )
    return float(delta) - p1
