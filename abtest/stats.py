"""Fixed-horizon two-sample tests, SRM checks, non-inferiority and p-value adjustment.

Conventions: the effect is *treatment minus control*; ``alternative`` uses
scipy's words and refers to that effect (``greater``: treatment larger).
Normal and t tail areas use ``scipy.special`` directly because the
``scipy.stats`` distribution objects cost tens of microseconds per call and
``analysis.analyze`` must stay well under a millisecond.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from abtest import _validate as v
from abtest._lazy import LazyModule
from abtest.results import (
    Alternative,
    Counts,
    HistogramResult,
    NoninferiorityResult,
    SRMResult,
    StatResult,
    Summary,
)

scipy_stats = LazyModule("scipy.stats")
special = LazyModule("scipy.special")

__all__ = [
    "Counts",
    "Summary",
    "benjamini_hochberg",
    "fisher_exact",
    "histogram_compare",
    "histogram_quantile",
    "holm",
    "mann_whitney",
    "noninferiority",
    "quantile_difference",
    "srm",
    "srm_sequential",
    "two_proportions",
    "welch",
    "welch_from_summary",
]

_INF = math.inf


# -- shared tail areas and intervals -------------------------------------------------


def _ratio(effect: float, se: float) -> float:
    """``effect / se``, defined as 0 or +-inf when there is no variability at all."""
    if se > 0:
        return effect / se
    if effect == 0:
        return 0.0
    return math.copysign(_INF, effect)


def normal_p(z: float, alternative: Alternative) -> float:
    """Tail area of a standard normal statistic for scipy's ``alternative``."""
    if alternative == "two-sided":
        return min(1.0, 2.0 * float(special.ndtr(-abs(z))))
    if alternative == "greater":
        return float(special.ndtr(-z))
    return float(special.ndtr(z))


def _normal_ci(
    est: float, se: float, confidence: float, alternative: Alternative
) -> tuple[float, float]:
    if alternative == "two-sided":
        h = float(special.ndtri(0.5 + confidence / 2.0)) * se
        return (est - h, est + h)
    h = float(special.ndtri(confidence)) * se
    return (est - h, _INF) if alternative == "greater" else (-_INF, est + h)


def _t_p(t: float, df: float, alternative: Alternative) -> float:
    if alternative == "two-sided":
        return min(1.0, 2.0 * float(special.stdtr(df, -abs(t))))
    if alternative == "greater":
        return float(special.stdtr(df, -t))
    return float(special.stdtr(df, t))


def _t_ci(
    est: float, se: float, df: float, confidence: float, alternative: Alternative
) -> tuple[float, float]:
    if alternative == "two-sided":
        h = float(special.stdtrit(df, 0.5 + confidence / 2.0)) * se
        return (est - h, est + h)
    h = float(special.stdtrit(df, confidence)) * se
    return (est - h, _INF) if alternative == "greater" else (-_INF, est + h)


# -- proportions ---------------------------------------------------------------------


def two_proportions(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    alternative: Alternative = "two-sided",
    pooled: bool = True,
    confidence: float = 0.95,
) -> StatResult:
    """z test for a difference of two proportions.

    The statistic uses the pooled variance (the null's best estimate) when
    ``pooled``, else the unpooled Wald variance; ``se`` is the one used for the
    statistic. The interval is always the Wald interval of the difference.
    """
    xc, nc = v.trials("x_control", x_control, "n_control", n_control)
    xt, nt = v.trials("x_treatment", x_treatment, "n_treatment", n_treatment)
    alt = v.alternative(alternative)
    conf = v.open_unit("confidence", confidence)
    pc, pt = xc / nc, xt / nt
    effect = pt - pc
    se_wald = math.sqrt(pc * (1.0 - pc) / nc + pt * (1.0 - pt) / nt)
    if pooled:
        p = (xc + xt) / (nc + nt)
        se = math.sqrt(p * (1.0 - p) * (1.0 / nc + 1.0 / nt))
        method = "two-proportion z test (pooled)"
    else:
        se = se_wald
        method = "two-proportion z test (unpooled Wald)"
    z = _ratio(effect, se)
    return StatResult(
        method=method,
        statistic=z,
        p_value=normal_p(z, alt),
        effect=effect,
        se=se,
        ci=_normal_ci(effect, se_wald, conf, alt),
        n_control=nc,
        n_treatment=nt,
        alternative=alt,
        confidence=conf,
    )


def fisher_exact(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    alternative: Alternative = "two-sided",
) -> StatResult:
    """Fisher's exact test for small counts; the statistic is the sample odds ratio.

    The table is ``[[x_t, n_t - x_t], [x_c, n_c - x_c]]`` so ``greater`` means the
    treatment's odds of success are larger. The effect is the difference of
    proportions; no interval is given for it (``ci`` is ``None``).
    """
    xc, nc = v.trials("x_control", x_control, "n_control", n_control)
    xt, nt = v.trials("x_treatment", x_treatment, "n_treatment", n_treatment)
    alt = v.alternative(alternative)
    res = scipy_stats.fisher_exact([[xt, nt - xt], [xc, nc - xc]], alternative=alt)
    return StatResult(
        method="Fisher exact test",
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        effect=xt / nt - xc / nc,
        se=math.nan,
        ci=None,
        n_control=nc,
        n_treatment=nt,
        alternative=alt,
        confidence=math.nan,
    )


# -- means ---------------------------------------------------------------------------


def welch_from_summary(
    mean_c: float,
    var_c: float,
    n_c: int,
    mean_t: float,
    var_t: float,
    n_t: int,
    *,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
) -> StatResult:
    """Welch's unequal-variance t test from per-arm mean, variance (ddof=1) and size.

    This is what a Prometheus summary (sum, count, and a sum of squares) gives.
    With zero variance in both arms the statistic is 0 or +-inf and the degrees
    of freedom are ``n_c + n_t - 2``.
    """
    mc = v.finite("mean_c", mean_c)
    mt = v.finite("mean_t", mean_t)
    vc = v.nonnegative("var_c", var_c)
    vt = v.nonnegative("var_t", var_t)
    nc = v.count("n_c", n_c)
    nt = v.count("n_t", n_t)
    if nc < 2:
        raise ValueError(f"n_c must be at least 2, got {n_c!r}")
    if nt < 2:
        raise ValueError(f"n_t must be at least 2, got {n_t!r}")
    alt = v.alternative(alternative)
    conf = v.open_unit("confidence", confidence)
    return _welch(Summary(mc, vc, nc), Summary(mt, vt, nt), alt, conf)


def _welch(c: Summary, t: Summary, alt: Alternative, conf: float) -> StatResult:
    mc, vc, nc = c.mean, c.var, c.n
    mt, vt, nt = t.mean, t.var, t.n
    ac, at = vc / nc, vt / nt
    var = ac + at
    df = var * var / (ac * ac / (nc - 1) + at * at / (nt - 1)) if var > 0 else float(nc + nt - 2)
    se = math.sqrt(var)
    effect = mt - mc
    stat = _ratio(effect, se)
    return StatResult(
        method="Welch t test",
        statistic=stat,
        p_value=_t_p(stat, df, alt),
        effect=effect,
        se=se,
        ci=_t_ci(effect, se, df, conf, alt),
        n_control=nc,
        n_treatment=nt,
        alternative=alt,
        confidence=conf,
        df=df,
    )


def welch(
    control: npt.ArrayLike,
    treatment: npt.ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
) -> StatResult:
    """Welch's t test on raw samples (at least two finite values per arm)."""
    c = v.sample("control", control, min_size=2)
    t = v.sample("treatment", treatment, min_size=2)
    alt = v.alternative(alternative)
    conf = v.open_unit("confidence", confidence)
    mc, mt = float(c.mean()), float(t.mean())
    vc = float(np.dot(c - mc, c - mc)) / (c.size - 1)
    vt = float(np.dot(t - mt, t - mt)) / (t.size - 1)
    return _welch(Summary(mc, vc, c.size), Summary(mt, vt, t.size), alt, conf)


# -- ranks ---------------------------------------------------------------------------


def _mwu(
    u_t: float,
    nt: int,
    nc: int,
    *,
    tie_sum: float,
    continuity: bool,
    alt: Alternative,
    method: str,
) -> StatResult:
    """Normal approximation for the treatment's U with the tie-corrected variance."""
    n = nt + nc
    mu = nt * nc / 2.0
    var = nt * nc / 12.0 * ((n + 1) - tie_sum / (n * (n - 1))) if n > 1 else 0.0
    s = math.sqrt(max(var, 0.0))
    u_c = nt * nc - u_t
    if alt == "greater":
        u, factor = u_t, 1.0
    elif alt == "less":
        u, factor = u_c, 1.0
    else:
        u, factor = max(u_t, u_c), 2.0
    if s > 0:
        z = (u - mu - (0.5 if continuity else 0.0)) / s
        p = min(1.0, factor * float(special.ndtr(-z)))
    else:
        p = 1.0
    return StatResult(
        method=method,
        statistic=u_t,
        p_value=p,
        effect=2.0 * u_t / (nt * nc) - 1.0,
        se=2.0 * s / (nt * nc),
        ci=None,
        n_control=nc,
        n_treatment=nt,
        alternative=alt,
        confidence=math.nan,
    )


def mann_whitney(
    control: npt.ArrayLike,
    treatment: npt.ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    continuity: bool = True,
    method: str = "asymptotic",
) -> StatResult:
    """Mann-Whitney U test; the statistic is the treatment's U.

    ``asymptotic`` uses the normal approximation with the tie correction and
    optional continuity correction (as scipy does); ``exact`` defers to scipy's
    exact null distribution, which assumes no ties. The effect is the
    rank-biserial correlation ``P(T > C) - P(T < C)``; ``se`` is its standard
    error under the null. One sort of the pooled sample does all the work.
    """
    c = v.sample("control", control)
    t = v.sample("treatment", treatment)
    alt = v.alternative(alternative)
    if method not in ("asymptotic", "exact"):
        raise ValueError(f"method must be 'asymptotic' or 'exact', got {method!r}")
    nt, nc = t.size, c.size
    n = nt + nc
    combined = np.concatenate((t, c))
    order = np.argsort(combined)
    s = combined[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    is_t = order < nt
    if starts.size == n:  # no ties: ranks are positions
        r_t = float(np.flatnonzero(is_t).sum()) + nt
        tie_sum = 0.0
    else:
        ends = np.append(starts[1:], n)
        lengths = (ends - starts).astype(np.float64)
        midrank = (starts + ends + 1) / 2.0
        t_per_run = np.add.reduceat(is_t.astype(np.int64), starts)
        r_t = float(np.dot(midrank, t_per_run))
        tie_sum = float(np.dot(lengths * lengths, lengths) - lengths.sum())
    u_t = r_t - nt * (nt + 1) / 2.0
    if method == "exact":
        res = scipy_stats.mannwhitneyu(t, c, alternative=alt, method="exact")
        base = _mwu(
            u_t,
            nt,
            nc,
            tie_sum=tie_sum,
            continuity=continuity,
            alt=alt,
            method="Mann-Whitney U (exact)",
        )
        return StatResult(
            method=base.method,
            statistic=float(res.statistic),
            p_value=float(res.pvalue),
            effect=base.effect,
            se=base.se,
            ci=None,
            n_control=nc,
            n_treatment=nt,
            alternative=alt,
            confidence=math.nan,
        )
    return _mwu(
        u_t,
        nt,
        nc,
        tie_sum=tie_sum,
        continuity=continuity,
        alt=alt,
        method="Mann-Whitney U (asymptotic)",
    )


# -- quantiles -----------------------------------------------------------------------


def _bootstrap_quantile(
    x: npt.NDArray[np.float64], q: float, resamples: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], float]:
    """Draw ``resamples`` bootstrap replicates of ``np.quantile(x, q)`` exactly.

    A resample is ``sorted(x)[floor(n * U_i)]`` for iid uniforms ``U_i``, so its
    j-th order statistic is ``sorted(x)[floor(n * U_(j))]`` with
    ``U_(j) ~ Beta(j, n - j + 1)``, and the next one is
    ``U_(j) + (1 - U_(j)) * Beta(1, n - j)``. Sampling those two order statistics
    reproduces the naive bootstrap's distribution at O(n) cost (one partition)
    instead of O(n * resamples). Also returns the sample's own quantile, read
    from the same partition.
    """
    n = x.size
    h = (n - 1) * q
    k = math.floor(h)
    frac = h - k
    k2 = min(k + 1, n - 1)
    u1 = rng.beta(k + 1, n - k, size=resamples)
    i1 = np.minimum((u1 * n).astype(np.int64), n - 1)
    if frac > 0 and k + 1 < n:
        u2 = u1 + (1.0 - u1) * rng.beta(1, n - k - 1, size=resamples)
        i2 = np.minimum((u2 * n).astype(np.int64), n - 1)
    else:
        i2 = i1
    lo, hi = min(int(i1.min()), k), max(int(i2.max()), k2)
    part = np.partition(x, (lo, hi)) if hi > lo else np.partition(x, lo)
    window = np.sort(part[lo : hi + 1])
    v1 = window[i1 - lo]
    v2 = window[i2 - lo]
    out: npt.NDArray[np.float64] = v1 + frac * (v2 - v1)
    a, b = float(window[k - lo]), float(window[k2 - lo])
    return out, a + frac * (b - a)


def quantile_difference(
    control: npt.ArrayLike,
    treatment: npt.ArrayLike,
    q: float = 0.95,
    *,
    resamples: int = 4000,
    seed: int | np.random.Generator | None = None,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
) -> StatResult:
    """Percentile bootstrap interval for ``quantile(treatment, q) - quantile(control, q)``.

    Quantiles use numpy's default (linear) definition. The p-value inverts the
    percentile interval: the bootstrap share of differences on the far side of
    zero (doubled when two-sided), with the usual +1 so it is never 0.
    ``se`` is the bootstrap standard deviation; ``statistic`` is the effect.
    """
    c = v.sample("control", control)
    t = v.sample("treatment", treatment)
    qq = v.closed_unit("q", q)
    conf = v.open_unit("confidence", confidence)
    alt = v.alternative(alternative)
    b = v.count("resamples", resamples)
    if b < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples!r}")
    rng = np.random.default_rng(seed)
    boot_t, q_t = _bootstrap_quantile(t, qq, b, rng)
    boot_c, q_c = _bootstrap_quantile(c, qq, b, rng)
    effect = q_t - q_c
    diff = boot_t - boot_c
    below = (int(np.count_nonzero(diff <= 0)) + 1) / (b + 1)
    above = (int(np.count_nonzero(diff >= 0)) + 1) / (b + 1)
    ci: tuple[float, float]
    if alt == "two-sided":
        lo, hi = np.quantile(diff, [(1 - conf) / 2, (1 + conf) / 2])
        ci = (float(lo), float(hi))
        p = min(1.0, 2.0 * min(below, above))
    elif alt == "greater":
        ci = (float(np.quantile(diff, 1 - conf)), _INF)
        p = below
    else:
        ci = (-_INF, float(np.quantile(diff, conf)))
        p = above
    return StatResult(
        method=f"percentile bootstrap of the q={qq:g} quantile difference",
        statistic=effect,
        p_value=p,
        effect=effect,
        se=float(diff.std(ddof=1)),
        ci=ci,
        n_control=c.size,
        n_treatment=t.size,
        alternative=alt,
        confidence=conf,
    )


# -- Prometheus histograms -----------------------------------------------------------


def _histogram(
    buckets: npt.ArrayLike, name: str, counts: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Validate cumulative ``le`` buckets and return (bounds, per-bucket counts)."""
    try:
        b = np.asarray(buckets, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("buckets must be numeric upper bounds") from None
    if b.ndim != 1 or b.size == 0:
        raise ValueError("buckets must be a non-empty 1-d sequence of upper bounds")
    if np.isnan(b).any() or np.isinf(b[:-1]).any() or b[-1] == -_INF:
        raise ValueError("buckets must be finite except a last +Inf bucket")
    if (np.diff(b) <= 0).any():
        raise ValueError("buckets must be strictly increasing")
    cum = v.counts_vector(name, counts)
    if cum.size != b.size:
        raise ValueError(f"{name} must have one count per bucket ({b.size}), got {cum.size}")
    if (np.diff(cum) < 0).any():
        raise ValueError(f"{name} must be cumulative (non-decreasing)")
    return b, np.diff(cum, prepend=0)


def histogram_quantile(buckets: npt.ArrayLike, cumulative_counts: npt.ArrayLike, q: float) -> float:
    """Estimate the ``q`` quantile like Prometheus' ``histogram_quantile``.

    Linear interpolation inside the bucket holding rank ``q * total``; the lower
    bound of the first bucket is 0 when its upper bound is positive; a rank in
    the +Inf bucket returns the largest finite bound. NaN when there are no
    observations.
    """
    b, per = _histogram(buckets, "cumulative_counts", cumulative_counts)
    return _prom_quantile(b, per, v.closed_unit("q", q))


def _prom_quantile(b: npt.NDArray[np.float64], per: npt.NDArray[np.int64], q: float) -> float:
    cum = np.cumsum(per)
    total = int(cum[-1])
    if total == 0:
        return math.nan
    rank = q * total
    i = int(np.searchsorted(cum, rank, side="left"))
    i = min(i, b.size - 1)
    if math.isinf(b[i]):
        return float(b[i - 1]) if i > 0 else math.nan
    upper = float(b[i])
    if i == 0:
        lower = 0.0 if upper > 0 else upper
        below = 0
    else:
        lower = float(b[i - 1])
        below = int(cum[i - 1])
    in_bucket = int(per[i])
    if in_bucket == 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def histogram_compare(
    buckets: npt.ArrayLike,
    control_counts: npt.ArrayLike,
    treatment_counts: npt.ArrayLike,
    *,
    q: float = 0.95,
    alternative: Alternative = "two-sided",
    continuity: bool = True,
) -> HistogramResult:
    """Compare two latency distributions given cumulative Prometheus ``le`` buckets.

    The main test is Mann-Whitney on the bucketed values (each bucket is one
    tied value), which is sensitive to a shift; the chi-square test of
    homogeneity over non-empty buckets catches any change of shape. Both arms
    must share the bucket bounds, as the same histogram metric guarantees.
    """
    b, pc = _histogram(buckets, "control_counts", control_counts)
    _, pt = _histogram(b, "treatment_counts", treatment_counts)
    alt = v.alternative(alternative)
    qq = v.closed_unit("q", q)
    nc, nt = int(pc.sum()), int(pt.sum())
    if nc == 0:
        raise ValueError("control_counts must contain at least one observation")
    if nt == 0:
        raise ValueError("treatment_counts must contain at least one observation")
    tot = (pc + pt).astype(np.float64)
    before = np.cumsum(tot) - tot
    midrank = before + (tot + 1.0) / 2.0
    r_t = float(np.dot(midrank, pt))
    tie_sum = float(np.dot(tot * tot, tot) - tot.sum())
    rank = _mwu(
        r_t - nt * (nt + 1) / 2.0,
        nt,
        nc,
        tie_sum=tie_sum,
        continuity=continuity,
        alt=alt,
        method="Mann-Whitney U on histogram buckets",
    )
    keep = tot > 0
    n = nc + nt
    obs = np.stack((pc[keep], pt[keep])).astype(np.float64)
    exp = np.outer(np.array([nc, nt], dtype=np.float64) / n, tot[keep])
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    df = int(keep.sum()) - 1
    chi2_p = float(special.chdtrc(df, chi2)) if df > 0 else 1.0
    return HistogramResult(
        method=rank.method,
        statistic=rank.statistic,
        p_value=rank.p_value,
        effect=rank.effect,
        se=rank.se,
        chi2=chi2,
        chi2_df=df,
        chi2_p_value=chi2_p,
        q=qq,
        quantile_control=_prom_quantile(b, pc, qq),
        quantile_treatment=_prom_quantile(b, pt, qq),
        n_control=nc,
        n_treatment=nt,
        alternative=alt,
    )


# -- sample ratio mismatch -----------------------------------------------------------


def _srm_inputs(
    observed_counts: npt.ArrayLike, weights: npt.ArrayLike
) -> tuple[list[int], list[float]]:
    """Validated counts and normalised weights as plain lists.

    Arms are few, so plain Python beats numpy's per-call overhead here; this
    runs inside every ``analyze`` call.
    """
    try:
        raw_obs = np.asarray(observed_counts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("observed_counts must be numeric") from None
    try:
        raw_w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("weights must be numeric") from None
    if raw_obs.ndim != 1 or raw_obs.size < 2:
        raise ValueError(f"observed_counts must list at least 2 arms, got shape {raw_obs.shape}")
    if raw_w.shape != raw_obs.shape:
        raise ValueError(f"weights must have one entry per arm ({raw_obs.size})")
    obs = [v.count("observed_counts", x) for x in raw_obs.tolist()]
    w = [v.nonnegative("weights", x) for x in raw_w.tolist()]
    total = sum(w)
    if not total > 0:
        raise ValueError("weights must sum to a positive number")
    return obs, [x / total for x in w]


def srm(
    observed_counts: npt.ArrayLike, weights: npt.ArrayLike, *, threshold: float = 0.001
) -> SRMResult:
    """Chi-square goodness of fit of assigned units to the planned (unnormalised) weights.

    Checked once, at a fixed horizon. A zero-weight arm that received units is
    an immediate mismatch; one that received none is left out of the test.
    """
    obs, p = _srm_inputs(observed_counts, weights)
    thr = v.open_unit("threshold", threshold)
    n = sum(obs)
    expected = [n * pi for pi in p]
    kept = [(o, e) for o, e, pi in zip(obs, expected, p, strict=True) if pi > 0]
    df = len(kept) - 1
    if n == 0:
        stat, pval = 0.0, 1.0
    elif any(pi == 0 and o > 0 for o, pi in zip(obs, p, strict=True)):
        stat, pval = _INF, 0.0
    else:
        stat = sum((o - e) ** 2 / e for o, e in kept)
        pval = float(special.chdtrc(df, stat)) if df > 0 else 1.0
    return SRMResult(
        method="chi-square sample ratio mismatch",
        statistic=stat,
        p_value=pval,
        df=df,
        observed=tuple(obs),
        expected=tuple(expected),
        threshold=thr,
        mismatch=pval < thr,
    )


def srm_sequential(
    observed_counts: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    threshold: float = 0.001,
    prior_strength: float = 100.0,
    previous_p_value: float = 1.0,
) -> SRMResult:
    """Sample ratio mismatch check that stays valid when repeated at every look.

    A Dirichlet-multinomial mixture (Lindon & Malek, 2020): with prior
    ``Dirichlet(prior_strength * p)`` around the planned proportions ``p``, the
    Bayes factor ``BF_n`` against the null is a non-negative martingale with
    mean 1 under the null, so by Ville's inequality ``min(1, 1 / max BF)`` over
    all looks is an always-valid p-value. Pass the last look's ``p_value`` as
    ``previous_p_value`` to carry the running minimum; counts are cumulative.
    The statistic is ``log BF_n``.
    """
    obs, p = _srm_inputs(observed_counts, weights)
    thr = v.open_unit("threshold", threshold)
    strength = v.positive("prior_strength", prior_strength)
    prev = v.closed_unit("previous_p_value", previous_p_value)
    n = sum(obs)
    if any(pi == 0 and o > 0 for o, pi in zip(obs, p, strict=True)):
        log_bf = _INF
    else:
        log_bf = math.lgamma(strength) - math.lgamma(strength + n)
        for o, pi in zip(obs, p, strict=True):
            if pi > 0:
                a = strength * pi
                log_bf += math.lgamma(a + o) - math.lgamma(a) - o * math.log(pi)
    pval = min(prev, 1.0, math.exp(-log_bf) if log_bf < 700 else 0.0)
    return SRMResult(
        method="sequential sample ratio mismatch (Dirichlet-multinomial mixture)",
        statistic=log_bf,
        p_value=pval,
        df=len(obs) - 1,
        observed=tuple(obs),
        expected=tuple(n * pi for pi in p),
        threshold=thr,
        mismatch=pval < thr,
    )


# -- non-inferiority -----------------------------------------------------------------


def noninferiority(
    control: Counts | Summary,
    treatment: Counts | Summary,
    *,
    margin: float,
    relative: bool = False,
    direction: str = "higher",
    alpha: float = 0.05,
) -> NoninferiorityResult:
    """One-sided test that the treatment is not worse than control by ``margin`` or more.

    ``Counts`` arms use the unpooled Wald z statistic; ``Summary`` arms use
    Welch's t. ``direction`` says which side is better: with ``higher`` the null
    is ``effect <= -margin``, with ``lower`` it is ``effect >= margin``. A
    ``relative`` margin is a fraction of the control's value and is treated as
    known (the usual approximation).
    """
    m = v.nonnegative("margin", margin)
    d = v.direction(direction)
    a = v.open_unit("alpha", alpha)
    if isinstance(control, Counts) and isinstance(treatment, Counts):
        xc, nc = v.trials("control.x", control.x, "control.n", control.n)
        xt, nt = v.trials("treatment.x", treatment.x, "treatment.n", treatment.n)
        base, effect = xc / nc, xt / nt - xc / nc
        pc, pt = xc / nc, xt / nt
        se = math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
        df = math.nan
        method = "non-inferiority z test for proportions (Wald)"
    elif isinstance(control, Summary) and isinstance(treatment, Summary):
        w = welch_from_summary(
            control.mean, control.var, control.n, treatment.mean, treatment.var, treatment.n
        )
        nc, nt = w.n_control, w.n_treatment
        base, effect, se, df = control.mean, w.effect, w.se, w.df
        method = "non-inferiority Welch t test for means"
    else:
        raise ValueError("control and treatment must both be Counts or both be Summary")
    delta = m * abs(base) if relative else m
    if d == "higher":
        stat = _ratio(effect + delta, se)
        tail: Alternative = "greater"
    else:
        stat = _ratio(effect - delta, se)
        tail = "less"
    if math.isnan(df):
        p = normal_p(stat, tail)
        crit = float(special.ndtri(1 - a))
    else:
        p = _t_p(stat, df, tail)
        crit = float(special.stdtrit(df, 1 - a))
    bound = effect - crit * se if d == "higher" else effect + crit * se
    return NoninferiorityResult(
        method=method,
        statistic=stat,
        p_value=p,
        effect=effect,
        se=se,
        bound=bound,
        margin=delta,
        direction=d,
        alpha=a,
        noninferior=p < a,
        n_control=nc,
        n_treatment=nt,
        df=df,
    )


# -- multiplicity --------------------------------------------------------------------


def _p_values(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    p = v.sample("p_values", p_values)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_values must lie in [0, 1]")
    return p


def holm(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm's step-down adjusted p-values (family-wise error), in input order."""
    p = _p_values(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in input order."""
    p = _p_values(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = m / np.arange(1, m + 1) * p[order]
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out
