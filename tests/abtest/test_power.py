"""Reference checks for abtest.power against statsmodels and published tables."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats import power as smpower
from statsmodels.stats.proportion import (
    proportion_effectsize,
    samplesize_proportions_2indep_onetail,
)

from abtest import power

REL = 1e-6


class TestTwoProportions:
    def test_fleiss_worked_example(self) -> None:
        """10% vs 15% at alpha 0.05 and 80% power needs 686 per arm (Fleiss, no correction)."""
        assert power.sample_size_two_proportions(0.10, 0.15, 0.05, 0.8) == 686

    @pytest.mark.parametrize(("p1", "p2"), [(0.10, 0.15), (0.02, 0.025), (0.5, 0.45)])
    def test_pooled_matches_statsmodels(self, p1: float, p2: float) -> None:
        """The pooled formula equals statsmodels' samplesize_proportions_2indep_onetail."""
        ref = samplesize_proportions_2indep_onetail(p2 - p1, p1, 0.9, alpha=0.05)
        exact = power._n_two_proportions(p1, p2, 0.05, 0.9, "pooled")
        assert exact == pytest.approx(ref, rel=REL)
        assert power.sample_size_two_proportions(p1, p2, 0.05, 0.9) == math.ceil(ref)

    def test_arcsine_matches_normal_ind_power(self) -> None:
        """The arcsine method equals NormalIndPower on Cohen's h (one tail at alpha/2)."""
        h = proportion_effectsize(0.15, 0.10)
        ref = smpower.NormalIndPower().solve_power(h, alpha=0.025, power=0.8, alternative="larger")
        exact = power._n_two_proportions(0.10, 0.15, 0.05, 0.8, "arcsine")
        assert exact == pytest.approx(ref, rel=REL)

    def test_unpooled_matches_normal_ind_power(self) -> None:
        """The unpooled method equals NormalIndPower with the unpooled standardised effect."""
        p1, p2 = 0.1, 0.15
        es = (p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
        ref = smpower.NormalIndPower().solve_power(es, alpha=0.025, power=0.8, alternative="larger")
        exact = power._n_two_proportions(p1, p2, 0.05, 0.8, "unpooled")
        assert exact == pytest.approx(ref, rel=REL)

    def test_unknown_method_rejected(self) -> None:
        """An unknown method is an error naming method."""
        with pytest.raises(ValueError, match="method"):
            power.sample_size_two_proportions(0.1, 0.2, method="magic")


class TestTwoMeans:
    @pytest.mark.parametrize(("d", "n"), [(0.5, 64), (0.8, 26)])
    def test_cohen_table(self, d: float, n: int) -> None:
        """Cohen's (1988) table: d = 0.5 needs 64 per group and d = 0.8 needs 26."""
        assert power.sample_size_two_means(d, 0.05, 0.8) == n

    @pytest.mark.parametrize("d", [0.1, 0.3, 0.5, 1.2])
    def test_matches_statsmodels(self, d: float) -> None:
        """Sample size is the ceiling of statsmodels' TTestIndPower solution."""
        ref = smpower.TTestIndPower().solve_power(d, alpha=0.05, power=0.9)
        assert power.sample_size_two_means(d, 0.05, 0.9) == math.ceil(ref - 1e-9)

    def test_power_function_matches_statsmodels(self) -> None:
        """The two-tailed noncentral-t power equals TTestIndPower.power."""
        ref = smpower.TTestIndPower().power(0.4, nobs1=50, alpha=0.05)
        assert power._power_two_means(50, 0.4, 0.05) == pytest.approx(ref, rel=REL)

    def test_zero_effect_rejected(self) -> None:
        """A zero effect size cannot be detected and is rejected by name."""
        with pytest.raises(ValueError, match="effect_size_d"):
            power.sample_size_two_means(0.0)


class TestMDE:
    def test_round_trip(self) -> None:
        """The MDE at n per arm needs exactly n per arm (before rounding)."""
        mde = power.mde_two_proportions(0.1, 5000, 0.05, 0.8)
        n = power._n_two_proportions(0.1, 0.1 + mde, 0.05, 0.8, "pooled")
        assert n == pytest.approx(5000, rel=REL)

    @pytest.mark.parametrize("method", ["pooled", "unpooled", "arcsine"])
    def test_round_trip_every_method(self, method: str) -> None:
        """Each method's MDE is the inverse of the same method's sample size."""
        mde = power.mde_two_proportions(0.02, 8000, 0.05, 0.9, method=method)
        assert power.sample_size_two_proportions(0.02, 0.02 + mde, 0.05, 0.9, method) == 8000

    def test_arcsine_matches_cohens_h(self) -> None:
        """The arcsine MDE solves Cohen's h = (z_a + z_b) sqrt(2 / n) in closed form."""
        from scipy import special

        n, p1 = 3000, 0.1
        h = (special.ndtri(0.975) + special.ndtri(0.8)) * math.sqrt(2 / n)
        expected = math.sin(math.asin(math.sqrt(p1)) + h / 2) ** 2 - p1
        assert power.mde_two_proportions(p1, n, method="arcsine") == pytest.approx(expected)

    def test_unknown_method_named(self) -> None:
        """An unknown method is rejected by name, as sample_size_two_proportions does."""
        with pytest.raises(ValueError, match="method"):
            power.mde_two_proportions(0.1, 1000, method="exact")

    def test_fleiss_example_inverse(self) -> None:
        """With 686 per arm from a 10% baseline the MDE is just under 5 points."""
        mde = power.mde_two_proportions(0.10, 686)
        assert 0.0499 < mde < 0.05

    def test_tiny_sample_rejected(self) -> None:
        """A sample too small to detect anything is rejected by name."""
        with pytest.raises(ValueError, match="n_per_arm"):
            power.mde_two_proportions(0.5, 1)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: power.sample_size_two_proportions(0.1, 0.2, alpha=0), "alpha"),
        (lambda: power.sample_size_two_proportions(0.1, 0.2, power=1.2), "power"),
        (lambda: power.sample_size_two_proportions(math.nan, 0.2), "p1"),
        (lambda: power.sample_size_two_means(0.5, alpha=1.0), "alpha"),
        (lambda: power.mde_two_proportions(0.1, -5), "n_per_arm"),
        (lambda: power.mde_two_proportions(1.0, 100), "baseline"),
    ],
)
def test_bad_input_names_argument(call: object, name: str) -> None:
    """Bad input raises ValueError naming the argument."""
    assert callable(call)
    with pytest.raises(ValueError, match=name):
        call()
