"""Reference checks for abtest.stats against scipy, statsmodels and textbook examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats import multitest, weightstats
from statsmodels.stats import proportion as smprop

from abtest import stats
from abtest.results import Counts, Summary

REL = 1e-6
ALTS = ["two-sided", "less", "greater"]
SM_ALT = {"two-sided": "two-sided", "less": "smaller", "greater": "larger"}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


class TestTwoProportions:
    @pytest.mark.parametrize("alternative", ALTS)
    def test_pooled_matches_statsmodels_ztest(self, alternative: str) -> None:
        """The pooled z statistic and p-value equal statsmodels' proportions_ztest."""
        r = stats.two_proportions(120, 1000, 150, 1000, alternative=alternative)
        z, p = smprop.proportions_ztest([150, 120], [1000, 1000], alternative=SM_ALT[alternative])
        assert r.statistic == pytest.approx(z, rel=REL)
        assert r.p_value == pytest.approx(p, rel=REL)
        assert r.effect == pytest.approx(0.03, rel=REL)

    @pytest.mark.parametrize("alternative", ALTS)
    def test_unpooled_matches_statsmodels_wald(self, alternative: str) -> None:
        """pooled=False equals statsmodels' Wald test of the difference."""
        r = stats.two_proportions(31, 400, 52, 450, alternative=alternative, pooled=False)
        ref = smprop.test_proportions_2indep(
            52, 450, 31, 400, method="wald", compare="diff", alternative=SM_ALT[alternative]
        )
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_wald_interval_matches_statsmodels(self) -> None:
        """The CI is statsmodels' Wald interval of treatment minus control."""
        r = stats.two_proportions(31, 400, 52, 450, confidence=0.9)
        lo, hi = smprop.confint_proportions_2indep(52, 450, 31, 400, method="wald", alpha=0.1)
        assert r.ci == pytest.approx((lo, hi), rel=REL)

    def test_one_sided_interval_is_half_open(self) -> None:
        """A 'greater' alternative gives a lower bound and +inf, like scipy."""
        r = stats.two_proportions(10, 100, 20, 100, alternative="greater")
        assert r.ci is not None
        assert r.ci[1] == math.inf
        assert r.ci[0] < r.effect

    def test_no_variability_gives_p_one(self) -> None:
        """Zero successes in both arms is no evidence of a difference."""
        r = stats.two_proportions(0, 50, 0, 60)
        assert (r.statistic, r.p_value) == (0.0, 1.0)

    def test_sizes_and_method_recorded(self) -> None:
        """The result carries the inputs' sizes and the method's name."""
        r = stats.two_proportions(1, 10, 2, 20)
        assert (r.n_control, r.n_treatment) == (10, 20)
        assert "pooled" in r.method


class TestFisher:
    def test_lady_tasting_tea(self) -> None:
        """Fisher's lady tasting tea: 3 of 4 right gives the one-sided p = 17/70."""
        r = stats.fisher_exact(1, 4, 3, 4, alternative="greater")
        assert r.p_value == pytest.approx(17 / 70, rel=REL)
        assert r.statistic == pytest.approx(9.0, rel=REL)

    @pytest.mark.parametrize("alternative", ALTS)
    def test_matches_scipy(self, alternative: str) -> None:
        """p-value and odds ratio equal scipy's on the treatment-first table."""
        r = stats.fisher_exact(2, 15, 7, 12, alternative=alternative)
        ref = scipy.stats.fisher_exact([[7, 5], [2, 13]], alternative=alternative)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.effect == pytest.approx(7 / 12 - 2 / 15, rel=REL)


# Welch's t test, example 1 of the Wikipedia article "Welch's t-test":
# t = -2.46, df = 24.99 (reported ~25.0), p = 0.021.
WIKI_A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
WIKI_A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


class TestWelch:
    def test_published_example(self) -> None:
        """The Wikipedia Welch example gives t = -2.46, df ~ 25, p = 0.021."""
        r = stats.welch(WIKI_A2, WIKI_A1)  # control A2, treatment A1: effect A1 - A2
        assert r.statistic == pytest.approx(-2.46, abs=0.005)
        assert r.df == pytest.approx(24.99, abs=0.01)
        assert r.p_value == pytest.approx(0.021, abs=0.0005)

    def test_worked_summary_example(self) -> None:
        """Worked example: (n=20, mean 100, s=15) vs (n=20, mean 95, s=20): t 0.895, df 35.2."""
        r = stats.welch_from_summary(100.0, 15.0**2, 20, 95.0, 20.0**2, 20)
        assert r.statistic == pytest.approx(-5 / math.sqrt(31.25), rel=REL)  # control is the 100
        assert abs(r.statistic) == pytest.approx(0.895, abs=0.001)  # source rounds SE to 5.59
        assert r.df == pytest.approx(35.2, abs=0.05)

    @pytest.mark.parametrize("alternative", ALTS)
    def test_matches_scipy(self, alternative: str) -> None:
        """Statistic, p-value, df and CI equal scipy's ttest_ind(equal_var=False)."""
        rng = _rng(1)
        c, t = rng.normal(0, 1, 50), rng.normal(0.3, 2, 40)
        r = stats.welch(c, t, alternative=alternative, confidence=0.9)
        ref = scipy.stats.ttest_ind(t, c, equal_var=False, alternative=alternative)
        ci = ref.confidence_interval(confidence_level=0.9)
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert r.df == pytest.approx(ref.df, rel=REL)
        assert r.ci == pytest.approx((ci.low, ci.high), rel=REL)

    def test_summary_equals_samples(self) -> None:
        """welch_from_summary on the samples' mean/var/n equals welch on the samples."""
        rng = _rng(2)
        c, t = rng.exponential(1, 80), rng.exponential(1.2, 70)
        a = stats.welch(c, t)
        b = stats.welch_from_summary(
            c.mean(), c.var(ddof=1), c.size, t.mean(), t.var(ddof=1), t.size
        )
        ref = scipy.stats.ttest_ind_from_stats(
            t.mean(), t.std(ddof=1), t.size, c.mean(), c.std(ddof=1), c.size, equal_var=False
        )
        assert b.statistic == pytest.approx(a.statistic, rel=REL)
        assert b.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_statsmodels_agrees(self) -> None:
        """statsmodels' CompareMeans gives the same unequal-variance interval."""
        rng = _rng(3)
        c, t = rng.normal(5, 1, 30), rng.normal(5.5, 3, 25)
        r = stats.welch(c, t)
        cm = weightstats.CompareMeans(weightstats.DescrStatsW(t), weightstats.DescrStatsW(c))
        lo, hi = cm.tconfint_diff(usevar="unequal")
        assert r.ci == pytest.approx((lo, hi), rel=REL)


class TestMannWhitney:
    def test_textbook_exact(self) -> None:
        """scipy's documented example (males vs females): U = 17, exact p = 1/9."""
        males, females = [19, 22, 16, 29, 24], [20, 11, 17, 12]
        r = stats.mann_whitney(females, males, method="exact")
        assert r.statistic == 17.0
        assert r.p_value == pytest.approx(1 / 9, rel=REL)

    @pytest.mark.parametrize("alternative", ALTS)
    @pytest.mark.parametrize("continuity", [True, False])
    def test_asymptotic_with_ties_matches_scipy(self, alternative: str, continuity: bool) -> None:
        """Tie-corrected asymptotic U and p equal scipy's, with or without continuity."""
        rng = _rng(4)
        c = rng.integers(0, 5, 300).astype(float)
        t = rng.integers(0, 6, 250).astype(float)
        r = stats.mann_whitney(c, t, alternative=alternative, continuity=continuity)
        ref = scipy.stats.mannwhitneyu(
            t, c, alternative=alternative, use_continuity=continuity, method="asymptotic"
        )
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_no_ties_matches_scipy(self) -> None:
        """Without ties the fast path equals scipy's asymptotic result."""
        rng = _rng(5)
        c, t = rng.normal(size=400), rng.normal(0.1, size=300)
        r = stats.mann_whitney(c, t)
        ref = scipy.stats.mannwhitneyu(t, c, method="asymptotic")
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_effect_is_rank_biserial(self) -> None:
        """Complete separation gives rank-biserial +1 when treatment is larger."""
        r = stats.mann_whitney([1, 2, 3], [4, 5, 6])
        assert r.effect == 1.0
        assert r.statistic == 9.0

    def test_exact_one_sided_matches_scipy(self) -> None:
        """The exact method defers to scipy for one-sided alternatives too."""
        c, t = [1.1, 2.3, 0.4, 5.0], [3.3, 4.1, 6.2, 7.7, 2.9]
        r = stats.mann_whitney(c, t, alternative="greater", method="exact")
        ref = scipy.stats.mannwhitneyu(t, c, alternative="greater", method="exact")
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)


class TestQuantileDifference:
    def test_point_estimate_is_numpy_quantile(self) -> None:
        """The effect is numpy's default quantile of treatment minus control."""
        rng = _rng(6)
        c, t = rng.lognormal(size=501), rng.lognormal(0.2, size=733)
        r = stats.quantile_difference(c, t, 0.95, resamples=100, seed=1)
        expected = np.quantile(t, 0.95) - np.quantile(c, 0.95)
        assert r.effect == pytest.approx(expected, rel=REL)

    @pytest.mark.parametrize(("n", "q"), [(50, 0.9), (37, 0.5), (200, 0.95), (10, 1.0)])
    def test_order_statistic_sampler_equals_naive_bootstrap(self, n: int, q: float) -> None:
        """The O(n) sampler has the same distribution as resampling with replacement."""
        rng = _rng(7)
        x = rng.normal(size=n)
        fast, point = stats._bootstrap_quantile(x, q, 20_000, np.random.default_rng(1))
        assert point == pytest.approx(np.quantile(x, q), rel=REL)
        idx = np.random.default_rng(2).integers(0, n, size=(20_000, n))
        naive = np.quantile(x[idx], q, axis=1)
        assert scipy.stats.ks_2samp(fast, naive).pvalue > 0.001
        assert fast.mean() == pytest.approx(naive.mean(), abs=0.03)

    def test_interval_agrees_with_scipy_bootstrap(self) -> None:
        """The percentile CI agrees with scipy.stats.bootstrap within Monte-Carlo error."""
        rng = _rng(8)
        c, t = rng.exponential(1.0, 300), rng.exponential(1.3, 300)
        r = stats.quantile_difference(c, t, 0.9, resamples=4000, seed=3)

        def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.quantile(b, 0.9, axis=axis) - np.quantile(a, 0.9, axis=axis)

        ref = scipy.stats.bootstrap(
            (c, t), stat, n_resamples=4000, method="percentile", rng=np.random.default_rng(4)
        )
        assert r.ci is not None
        assert r.ci[0] == pytest.approx(ref.confidence_interval.low, abs=0.15)
        assert r.ci[1] == pytest.approx(ref.confidence_interval.high, abs=0.15)

    def test_seed_makes_it_deterministic(self) -> None:
        """The same seed gives the same interval."""
        c, t = np.arange(100.0), np.arange(100.0) + 3
        a = stats.quantile_difference(c, t, resamples=500, seed=11)
        b = stats.quantile_difference(c, t, resamples=500, seed=11)
        assert a == b

    def test_clear_shift_is_significant(self) -> None:
        """A large p95 regression yields a small p-value and an interval above zero."""
        rng = _rng(9)
        c, t = rng.exponential(1.0, 2000), rng.exponential(2.0, 2000)
        r = stats.quantile_difference(c, t, resamples=2000, seed=1)
        assert r.ci is not None
        assert r.ci[0] > 0
        assert r.p_value < 0.01


BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, math.inf]


class TestHistogram:
    def test_rank_test_equals_mann_whitney_on_expanded_data(self) -> None:
        """Bucketed Mann-Whitney equals scipy's on data expanded to bucket indices."""
        cc = np.array([10, 40, 90, 120, 140, 150])
        tc = np.array([5, 20, 60, 100, 130, 150])
        r = stats.histogram_compare(BUCKETS, cc, tc)
        c = np.repeat(np.arange(6), np.diff(cc, prepend=0))
        t = np.repeat(np.arange(6), np.diff(tc, prepend=0))
        ref = scipy.stats.mannwhitneyu(t, c, method="asymptotic")
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert r.effect > 0  # treatment is slower

    def test_chi2_matches_scipy_contingency(self) -> None:
        """The homogeneity chi-square equals scipy's chi2_contingency without correction."""
        cc = np.array([10, 40, 90, 120, 140, 150])
        tc = np.array([5, 20, 60, 100, 130, 150])
        r = stats.histogram_compare(BUCKETS, cc, tc)
        table = np.stack((np.diff(cc, prepend=0), np.diff(tc, prepend=0)))
        ref = scipy.stats.chi2_contingency(table, correction=False)
        assert r.chi2 == pytest.approx(ref.statistic, rel=REL)
        assert r.chi2_p_value == pytest.approx(ref.pvalue, rel=REL)
        assert r.chi2_df == ref.dof

    def test_prometheus_quantile_interpolation(self) -> None:
        """histogram_quantile interpolates linearly inside the bucket, like Prometheus."""
        # 100 observations: rank 95 falls in (0.5, 1.0] holding 20 with 80 below.
        q = stats.histogram_quantile([0.1, 0.5, 1.0, math.inf], [50, 80, 100, 100], 0.95)
        assert q == pytest.approx(0.5 + 0.5 * (95 - 80) / 20, rel=REL)

    def test_quantile_in_inf_bucket_is_largest_finite_bound(self) -> None:
        """A rank in the +Inf bucket returns the largest finite bound."""
        assert stats.histogram_quantile([0.1, math.inf], [1, 10], 0.95) == 0.1

    def test_non_cumulative_counts_rejected(self) -> None:
        """Counts that decrease are not cumulative and are rejected by name."""
        with pytest.raises(ValueError, match="treatment_counts"):
            stats.histogram_compare([1, 2, math.inf], [1, 2, 3], [3, 2, 3])

    def test_unsorted_buckets_rejected(self) -> None:
        """Bucket bounds must increase."""
        with pytest.raises(ValueError, match="buckets"):
            stats.histogram_compare([2, 1, math.inf], [1, 2, 3], [1, 2, 3])


class TestSRM:
    def test_mendel_peas(self) -> None:
        """Mendel's 315/108/101/32 against 9:3:3:1 gives chi2 = 0.470, p = 0.925."""
        r = stats.srm([315, 108, 101, 32], [9, 3, 3, 1])
        assert r.statistic == pytest.approx(0.470, abs=0.0005)
        assert r.p_value == pytest.approx(0.925, abs=0.0005)
        assert r.df == 3
        assert not r.mismatch

    def test_matches_scipy_chisquare(self) -> None:
        """Chi-square and p-value equal scipy.stats.chisquare with the expected counts."""
        obs, w = [5000, 5321, 1020], [45, 45, 10]
        r = stats.srm(obs, w)
        exp = np.array(w) / 100 * sum(obs)
        ref = scipy.stats.chisquare(obs, exp)
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_mismatch_detected(self) -> None:
        """A 50/50 plan receiving 52/48 over 20,000 units is a mismatch."""
        assert stats.srm([10_400, 9_600], [1, 1]).mismatch

    def test_zero_weight_arm_receiving_units_is_mismatch(self) -> None:
        """Units in an arm planned to get none is an immediate mismatch."""
        r = stats.srm([100, 3], [1, 0])
        assert r.mismatch
        assert r.p_value == 0.0

    def test_sequential_bayes_factor_matches_closed_form(self) -> None:
        """The two-arm Dirichlet mixture equals the beta-binomial Bayes factor."""
        x, n, a = 520, 1000, 50.0
        r = stats.srm_sequential([x, n - x], [1, 1], prior_strength=2 * a)
        log_bf = (
            scipy.special.betaln(a + x, a + n - x) - scipy.special.betaln(a, a) - n * math.log(0.5)
        )
        assert r.statistic == pytest.approx(log_bf, rel=REL)

    def test_sequential_valid_under_repeated_looks(self) -> None:
        """Checking a true 50/50 split at 50 looks flags at most 5% of 2,000 runs at 0.05."""
        rng = _rng(10)
        x = rng.binomial(200, 0.5, size=(2000, 50)).cumsum(axis=1).astype(float)
        n = 200.0 * np.arange(1, 51)
        a = 50.0  # prior_strength 100 split over two equal arms
        log_bf = (
            scipy.special.betaln(a + x, a + n - x) - scipy.special.betaln(a, a) - n * math.log(0.5)
        )
        p_run = np.minimum.accumulate(np.minimum(1.0, np.exp(-log_bf)), axis=1)
        for run in range(20):  # the library function agrees with the vectorised formula
            p = 1.0
            for look in range(50):
                xi, ni = int(x[run, look]), int(n[look])
                p = stats.srm_sequential([xi, ni - xi], [1, 1], previous_p_value=p).p_value
                assert p == pytest.approx(p_run[run, look], rel=REL)
        rate = float((p_run[:, -1] < 0.05).mean())
        assert rate <= 0.05, f"sequential SRM false alarm rate {rate:.4f}"

    def test_sequential_detects_real_mismatch(self) -> None:
        """A 52/48 split is flagged by the sequential check within 20,000 units."""
        r = stats.srm_sequential([10_400, 9_600], [1, 1], threshold=0.001)
        assert r.mismatch


class TestNoninferiority:
    @pytest.mark.parametrize("direction", ["higher", "lower"])
    def test_proportions_match_statsmodels(self, direction: str) -> None:
        """The z test against the margin equals statsmodels' Wald test with value=-+margin."""
        c, t = Counts(480, 1000), Counts(470, 1000)
        r = stats.noninferiority(c, t, margin=0.05, direction=direction)
        value, alt = (-0.05, "larger") if direction == "higher" else (0.05, "smaller")
        ref = smprop.test_proportions_2indep(
            470, 1000, 480, 1000, value=value, method="wald", compare="diff", alternative=alt
        )
        assert r.statistic == pytest.approx(ref.statistic, rel=REL)
        assert r.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_means_match_statsmodels(self) -> None:
        """The Welch version equals statsmodels' ttest_ind(usevar='unequal', value=-margin)."""
        rng = _rng(11)
        c, t = rng.normal(10, 2, 200), rng.normal(9.9, 2.5, 180)
        sc = Summary(c.mean(), c.var(ddof=1), c.size)
        st = Summary(t.mean(), t.var(ddof=1), t.size)
        r = stats.noninferiority(sc, st, margin=0.5, direction="higher")
        tstat, p, df = weightstats.ttest_ind(
            t, c, alternative="larger", usevar="unequal", value=-0.5
        )
        assert r.statistic == pytest.approx(tstat, rel=REL)
        assert r.p_value == pytest.approx(p, rel=REL)
        assert r.df == pytest.approx(df, rel=REL)

    def test_relative_margin_scales_by_control(self) -> None:
        """A 10% relative margin on a 0.2 control rate is an absolute 0.02."""
        r = stats.noninferiority(Counts(200, 1000), Counts(195, 1000), margin=0.1, relative=True)
        assert r.margin == pytest.approx(0.02, rel=REL)

    def test_lower_is_better_latency_regression_not_noninferior(self) -> None:
        """A clear latency increase beyond the margin is not non-inferior."""
        r = stats.noninferiority(
            Summary(100, 400, 5000), Summary(110, 400, 5000), margin=2, direction="lower"
        )
        assert not r.noninferior
        assert r.bound > 2

    def test_mixed_kinds_rejected(self) -> None:
        """A proportion arm against a mean arm is a ValueError."""
        with pytest.raises(ValueError, match="control and treatment"):
            stats.noninferiority(Counts(1, 2), Summary(1, 1, 3), margin=0.1)


class TestMultiplicity:
    P = (0.01, 0.04, 0.03, 0.005, 0.2, 0.04)

    def test_holm_matches_statsmodels(self) -> None:
        """Holm-adjusted p-values equal statsmodels' multipletests, in input order."""
        ref = multitest.multipletests(self.P, method="holm")[1]
        np.testing.assert_allclose(stats.holm(self.P), ref, rtol=REL)

    def test_bh_matches_statsmodels(self) -> None:
        """BH-adjusted p-values equal statsmodels' fdr_bh, in input order."""
        ref = multitest.multipletests(self.P, method="fdr_bh")[1]
        np.testing.assert_allclose(stats.benjamini_hochberg(self.P), ref, rtol=REL)

    def test_holm_hand_example(self) -> None:
        """Holm on [0.01, 0.04, 0.03, 0.005] is [0.03, 0.06, 0.06, 0.02]."""
        np.testing.assert_allclose(
            stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=REL
        )

    def test_p_values_out_of_range_rejected(self) -> None:
        """A p-value above 1 is rejected by name."""
        with pytest.raises(ValueError, match="p_values"):
            stats.holm([0.5, 1.5])


class TestBadInput:
    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda: stats.two_proportions(-1, 10, 1, 10), "x_control"),
            (lambda: stats.two_proportions(1, 10, 11, 10), "x_treatment"),
            (lambda: stats.two_proportions(1, 0, 1, 10), "n_control"),
            (lambda: stats.two_proportions(1, 10, 1, 10, confidence=1.0), "confidence"),
            (lambda: stats.two_proportions(1, 10, 1, 10, alternative="bigger"), "alternative"),
            (lambda: stats.fisher_exact(1, 10, math.nan, 10), "x_treatment"),
            (lambda: stats.welch([], [1.0, 2.0]), "control"),
            (lambda: stats.welch([1.0, math.nan], [1.0, 2.0]), "control"),
            (lambda: stats.welch([1.0, 2.0], [1.0, math.inf]), "treatment"),
            (lambda: stats.welch_from_summary(0, -1, 10, 0, 1, 10), "var_c"),
            (lambda: stats.welch_from_summary(0, 1, 10, math.nan, 1, 10), "mean_t"),
            (lambda: stats.mann_whitney([1.0], []), "treatment"),
            (lambda: stats.mann_whitney([1.0], [2.0], method="magic"), "method"),
            (lambda: stats.quantile_difference([1.0], [2.0], q=1.5), "q"),
            (lambda: stats.srm([10, -1], [1, 1]), "observed_counts"),
            (lambda: stats.srm([10, 10], [0, 0]), "weights"),
            (lambda: stats.srm([10, 10], [1, -1]), "weights"),
            (lambda: stats.srm([10, 10], [1, math.nan]), "weights"),
            (lambda: stats.srm([10, 10], [1, 1], threshold=0), "threshold"),
            (lambda: stats.noninferiority(Counts(1, 2), Counts(1, 2), margin=-1), "margin"),
            (lambda: stats.noninferiority(Counts(1, 2), Counts(1, 2), margin=1, alpha=1), "alpha"),
            (lambda: stats.noninferiority(Counts(3, 2), Counts(1, 2), margin=1), "control.x"),
            (
                lambda: stats.noninferiority(Counts(1, 2), Counts(1, 2), margin=1, direction="up"),
                "direction",
            ),
        ],
    )
    def test_raises_value_error_naming_argument(self, call: object, name: str) -> None:
        """Bad input raises ValueError whose message names the argument."""
        assert callable(call)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            call()


class TestSummary:
    def test_from_sums_matches_numpy(self) -> None:
        """Summary.from_sums gives numpy's mean and ddof=1 variance."""
        x = _rng(12).gamma(2.0, 50.0, 1000)
        s = Summary.from_sums(x.size, float(x.sum()), float((x**2).sum()))
        assert s.mean == pytest.approx(x.mean(), rel=REL)
        assert s.var == pytest.approx(x.var(ddof=1), rel=REL)

    def test_from_sums_rejects_tiny_n(self) -> None:
        """A variance needs at least two observations."""
        with pytest.raises(ValueError, match="n"):
            Summary.from_sums(1, 1.0, 1.0)
