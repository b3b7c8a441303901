"""Benchmark abtest against the bare scipy/numpy call on the same data; prints JSON.

Each abtest function runs on 1,000,000 observations per arm (or the counts,
summaries or buckets derived from them) next to the closest bare scipy/numpy
call, in the same process on the same arrays. Times are the best of several
repeats, alternating the two calls; ``ratio`` is abtest / baseline (target
<= 1.5). Where the baseline does different work (a bootstrap with a naive
resampler, a chi-square in place of the z test) the entry says so in
``baseline``. Finally ``analyze`` is timed on aggregate counts for 1,000
simulated rollouts, and ``assign`` per call.

Run: ``.venv/bin/python bench/stats_bench.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import scipy.stats
from figures import figure, slug

from abtest import sequential, stats
from abtest.analysis import AnalysisSpec, ArmData, MetricSpec, analyze
from abtest.assign import assign
from abtest.results import Counts, Summary


def pair(
    name: str,
    ours: Callable[[], object],
    bare: Callable[[], object],
    baseline: str,
    repeats: int = 11,
) -> dict[str, Any]:
    """Time both calls alternately (so load from other processes hits both) and keep the best."""
    ours()
    bare()  # warm caches and lazy imports for both
    t_ours = t_bare = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        ours()
        t_ours = min(t_ours, time.perf_counter() - start)
        start = time.perf_counter()
        bare()
        t_bare = min(t_bare, time.perf_counter() - start)
    return {
        "test": name,
        "baseline": baseline,
        "abtest_s": t_ours,
        "baseline_s": t_bare,
        "ratio": t_ours / t_bare,
        "within_target": t_ours / t_bare <= 1.5,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="observations per arm")
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=50, help="bootstrap resamples")
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(42)
    c = rng.lognormal(4.6, 0.5, n)
    t = rng.lognormal(4.62, 0.5, n)
    c_int = np.round(c).astype(np.float64)  # ties, as real latencies in ms have
    t_int = np.round(t).astype(np.float64)
    xc, xt = int(rng.binomial(n, 0.10)), int(rng.binomial(n, 0.102))
    sc = Summary(float(c.mean()), float(c.var(ddof=1)), n)
    st = Summary(float(t.mean()), float(t.var(ddof=1)), n)
    edges = np.array([25, 50, 75, 100, 150, 200, 300, 500, 1000, np.inf])
    hc = np.searchsorted(edges, c, side="left")
    ht = np.searchsorted(edges, t, side="left")
    cum_c = np.cumsum(np.bincount(hc, minlength=edges.size))
    cum_t = np.cumsum(np.bincount(ht, minlength=edges.size))
    table_2x2 = np.array([[xt, n - xt], [xc, n - xc]])
    per_bucket = np.stack((np.diff(cum_c, prepend=0), np.diff(cum_t, prepend=0)))
    p_values = rng.uniform(size=n)
    boot_b = args.resamples

    def scipy_quantile_bootstrap() -> object:
        def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.quantile(b, 0.95, axis=axis) - np.quantile(a, 0.95, axis=axis)

        return scipy.stats.bootstrap(
            (c, t),
            stat,
            n_resamples=boot_b,
            method="percentile",
            batch=5,
            rng=np.random.default_rng(1),
        )

    def msprt_bare() -> float:
        # The same computation written inline: mean/var of each arm, then the formula.
        mc, mt = c.mean(), t.mean()
        v = c.var(ddof=1) / n + t.var(ddof=1) / n
        tau2 = 0.1
        lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * (mt - mc) ** 2 / (2 * v * (v + tau2)))
        return min(1.0, 1.0 / lam)

    def msprt_ours() -> object:
        s_c = Summary(float(c.mean()), float(c.var(ddof=1)), n)
        s_t = Summary(float(t.mean()), float(t.var(ddof=1)), n)
        return sequential.msprt(s_c, s_t, tau=math.sqrt(0.1))

    results = [
        pair(
            "two_proportions",
            lambda: stats.two_proportions(xc, n, xt, n),
            lambda: scipy.stats.chi2_contingency(table_2x2, correction=False),
            "scipy.stats.chi2_contingency (same test: chi2 = z^2)",
            repeats=200,
        ),
        pair(
            "fisher_exact",
            lambda: stats.fisher_exact(xc, n, xt, n),
            lambda: scipy.stats.fisher_exact(table_2x2),
            "scipy.stats.fisher_exact",
            repeats=3,
        ),
        pair(
            "welch",
            lambda: stats.welch(c, t),
            lambda: scipy.stats.ttest_ind(t, c, equal_var=False),
            "scipy.stats.ttest_ind(equal_var=False)",
        ),
        pair(
            "welch_from_summary",
            lambda: stats.welch_from_summary(sc.mean, sc.var, n, st.mean, st.var, n),
            lambda: scipy.stats.ttest_ind_from_stats(
                st.mean, math.sqrt(st.var), n, sc.mean, math.sqrt(sc.var), n, equal_var=False
            ),
            "scipy.stats.ttest_ind_from_stats",
            repeats=200,
        ),
        pair(
            "mann_whitney (ties)",
            lambda: stats.mann_whitney(c_int, t_int),
            lambda: scipy.stats.mannwhitneyu(t_int, c_int, method="asymptotic"),
            "scipy.stats.mannwhitneyu(method='asymptotic')",
            repeats=3,
        ),
        pair(
            "mann_whitney (continuous)",
            lambda: stats.mann_whitney(c, t),
            lambda: scipy.stats.mannwhitneyu(t, c, method="asymptotic"),
            "scipy.stats.mannwhitneyu(method='asymptotic')",
            repeats=3,
        ),
        pair(
            f"quantile_difference ({boot_b} resamples)",
            lambda: stats.quantile_difference(c, t, 0.95, resamples=boot_b, seed=1),
            scipy_quantile_bootstrap,
            f"scipy.stats.bootstrap percentile, {boot_b} resamples (naive resampling)",
            repeats=1,
        ),
        pair(
            "quantile_difference (4000 resamples)",
            lambda: stats.quantile_difference(c, t, 0.95, resamples=4000, seed=1),
            lambda: (np.quantile(t, 0.95), np.quantile(c, 0.95)),
            "np.quantile of both arms (point estimate only, no bootstrap)",
            repeats=3,
        ),
        pair(
            "histogram_compare",
            lambda: stats.histogram_compare(edges, cum_c, cum_t),
            lambda: scipy.stats.chi2_contingency(per_bucket, correction=False),
            "scipy.stats.chi2_contingency on the bucket table (abtest adds Mann-Whitney)",
            repeats=200,
        ),
        pair(
            "srm",
            lambda: stats.srm([n, n + 900], [1, 1]),
            lambda: scipy.stats.chisquare([n, n + 900], [n + 450, n + 450]),
            "scipy.stats.chisquare",
            repeats=200,
        ),
        pair(
            "noninferiority (means)",
            lambda: stats.noninferiority(sc, st, margin=1.0, direction="lower"),
            lambda: scipy.stats.ttest_ind_from_stats(
                st.mean - 1.0,
                math.sqrt(st.var),
                n,
                sc.mean,
                math.sqrt(sc.var),
                n,
                equal_var=False,
                alternative="less",
            ),
            "scipy.stats.ttest_ind_from_stats shifted by the margin",
            repeats=200,
        ),
        pair(
            "benjamini_hochberg (1e6 p-values)",
            lambda: stats.benjamini_hochberg(p_values),
            lambda: scipy.stats.false_discovery_control(p_values),
            "scipy.stats.false_discovery_control",
        ),
        pair(
            "msprt (means from raw data)",
            msprt_ours,
            msprt_bare,
            "the same numpy mean/var and formula inline",
        ),
    ]

    spec = AnalysisSpec(
        metrics=(
            MetricSpec("conversion", "proportion", "primary", "higher"),
            MetricSpec("errors", "proportion", "guardrail", "lower", margin=0.002),
            MetricSpec("latency", "mean", "guardrail", "lower", margin=5.0),
        )
    )
    rollouts = []
    for _ in range(args.rollouts):
        m = int(rng.integers(1000, 100_000))
        rollouts.append(
            {
                "control": ArmData(
                    m,
                    {
                        "conversion": Counts(int(rng.binomial(m, 0.1)), m),
                        "errors": Counts(int(rng.binomial(m, 0.01)), m),
                        "latency": Summary(100.0, 400.0, m),
                    },
                ),
                "treatment": ArmData(
                    m,
                    {
                        "conversion": Counts(int(rng.binomial(m, 0.1)), m),
                        "errors": Counts(int(rng.binomial(m, 0.01)), m),
                        "latency": Summary(100.5, 410.0, m),
                    },
                ),
            }
        )
    for d in rollouts[:10]:
        analyze(spec, d)
    start = time.perf_counter()
    decisions: dict[str, int] = {}
    for d in rollouts:
        verdict = analyze(spec, d).decision
        decisions[verdict] = decisions.get(verdict, 0) + 1
    total = time.perf_counter() - start
    previous = [analyze(spec, d) for d in rollouts]
    start = time.perf_counter()
    for d, prev in zip(rollouts, previous, strict=True):
        analyze(spec, d, previous=prev)
    total_carried = time.perf_counter() - start
    ids = [f"user-{i}" for i in range(100_000)]
    start = time.perf_counter()
    for uid in ids:
        assign(uid, 0.25, salt="bench")
    assign_us = (time.perf_counter() - start) / len(ids) * 1e6

    result = {
        "n_per_arm": n,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "tests": results,
        "analyze": {
            "rollouts": args.rollouts,
            "metrics_per_rollout": len(spec.metrics),
            "total_s": total,
            "per_call_us": total / args.rollouts * 1e6,
            "decisions": decisions,
            "per_call_us_with_previous": total_carried / args.rollouts * 1e6,
        },
        "assign": {"calls": len(ids), "per_call_us": assign_us},
    }
    result["figures"] = figures(result)
    print(json.dumps(result, indent=2))


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each test against its bare scipy/numpy call (target <= 1.5), then analyze."""
    n = result["n_per_arm"]
    out = [
        figure(f"stats_{slug(t['test'])}", f"{t['test']} ({n:,} per arm)",
               t["abtest_s"] * 1000, "ms", baseline=t["baseline_s"] * 1000,
               baseline_what=t["baseline"], target="<= 1.5")
        for t in result["tests"]
    ]  # fmt: skip
    a = result["analyze"]
    out.append(figure("stats_analyze", f"analyze(), {a['metrics_per_rollout']} metrics, per "
                      "rollout", a["per_call_us"], "µs"))  # fmt: skip
    out.append(figure("stats_assign", "assign(), per call", result["assign"]["per_call_us"],
                      "µs"))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
