"""Checks of the mixture SPRT: formula, duality, default tau, state and validity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from abtest import sequential as seq
from abtest.results import Counts, Summary

REL = 1e-6


def _lambda(theta: float, var: float, tau: float) -> float:
    """The mixture likelihood ratio exactly as written in the issue."""
    t2 = tau * tau
    return math.sqrt(var / (var + t2)) * math.exp(t2 * theta**2 / (2 * var * (var + t2)))


class TestFormula:
    @pytest.mark.parametrize(
        ("theta", "var", "tau"), [(0.01, 1e-5, 0.005), (0.3, 0.02, 0.1), (0.0, 1.0, 2.0)]
    )
    def test_p_value_is_inverse_likelihood_ratio(
        self, theta: float, var: float, tau: float
    ) -> None:
        """p = min(1, 1 / Lambda) for the normal mixture."""
        expected = min(1.0, 1.0 / _lambda(theta, var, tau))
        assert float(seq.mixture_p_value(theta, var, tau)) == pytest.approx(expected, rel=REL)

    def test_vectorised_equals_scalar(self) -> None:
        """The array form agrees with msprt on single looks."""
        c, t = Summary(10.0, 4.0, 400), Summary(10.4, 5.0, 380)
        r = seq.msprt(c, t, tau=0.3)
        assert float(seq.mixture_p_value(r.effect, r.variance, 0.3)) == pytest.approx(
            r.p_value, rel=REL
        )
        h = float(seq.mixture_ci_halfwidth(r.variance, 0.3, 0.05))
        assert r.ci == pytest.approx((r.effect - h, r.effect + h), rel=REL)

    def test_interval_inverts_p_value(self) -> None:
        """For means, 0 sits on the interval's edge exactly when p equals alpha."""
        var, tau, alpha = 0.01, 0.2, 0.05
        h = float(seq.mixture_ci_halfwidth(var, tau, alpha))
        assert float(seq.mixture_p_value(h, var, tau)) == pytest.approx(alpha, rel=REL)

    def test_zero_variance(self) -> None:
        """No variability gives p = 1 for no difference and 0 for a difference."""
        assert seq.mixture_p_value([0.0, 0.1], [0.0, 0.0], 1.0).tolist() == [1.0, 0.0]


class TestDefaultTau:
    def test_ratio_solves_fixed_point(self) -> None:
        """tau_ratio solves r = log(1 + r) - 2 log(alpha), about 8.2 at alpha = 0.05."""
        r = seq.tau_ratio(0.05)
        assert r == pytest.approx(math.log1p(r) - 2 * math.log(0.05), rel=1e-12)
        assert 8.1 < r < 8.3

    def test_ratio_minimises_interval(self) -> None:
        """At tau^2 = r V the always-valid interval's half-width is minimal."""
        var, alpha = 0.003, 0.05
        res = optimize.minimize_scalar(
            lambda lt: float(seq.mixture_ci_halfwidth(var, math.exp(lt), alpha)),
            bounds=(-10, 5),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert math.exp(res.x) ** 2 / var == pytest.approx(seq.tau_ratio(alpha), rel=1e-4)

    def test_default_tau_formula(self) -> None:
        """tau^2 = r * unit_variance / planned_n_per_arm."""
        tau = seq.default_tau(2 * 0.1 * 0.9, 10_000, 0.05)
        assert tau**2 == pytest.approx(seq.tau_ratio(0.05) * 0.18 / 10_000, rel=REL)

    def test_missing_tau_and_plan_rejected(self) -> None:
        """Without tau or a planned sample size msprt cannot choose a mixture."""
        with pytest.raises(ValueError, match="tau"):
            seq.msprt(Counts(1, 10), Counts(2, 10))

    def test_planned_default_used(self) -> None:
        """planned_n_per_arm derives tau from the control arm's smoothed rate."""
        r = seq.msprt(Counts(98, 1000), Counts(120, 1000), planned_n_per_arm=5000)
        p = 99 / 1002
        assert r.tau == pytest.approx(seq.default_tau(2 * p * (1 - p), 5000), rel=REL)


class TestSequentialTest:
    def test_running_min_and_intersection(self) -> None:
        """The state keeps the smallest p-value and the intersection of intervals."""
        st = seq.SequentialTest(tau=0.02)
        looks = [(Counts(50, 1000), Counts(70, 1000)), (Counts(100, 2000), Counts(120, 2000))]
        results = []
        for c, t in looks:
            st = st.update(c, t)
            assert st.last is not None
            results.append(st.last)
        assert st.looks == 2
        assert st.p_value == min(r.p_value for r in results)
        assert st.ci == (max(r.ci[0] for r in results), min(r.ci[1] for r in results))

    def test_round_trip_dict(self) -> None:
        """to_dict / from_dict preserve the state (apart from the last look)."""
        st = seq.SequentialTest.planned(0.18, 10_000).update(Counts(5, 100), Counts(9, 100))
        back = seq.SequentialTest.from_dict(st.to_dict())
        assert (back.tau, back.alpha, back.looks, back.p_value, back.ci) == (
            st.tau,
            st.alpha,
            st.looks,
            st.p_value,
            st.ci,
        )

    def test_bad_tau_rejected(self) -> None:
        """A non-positive tau is rejected by name."""
        with pytest.raises(ValueError, match="tau"):
            seq.SequentialTest(tau=0.0)

    def test_bad_alpha_rejected(self) -> None:
        """alpha outside (0, 1) is rejected by name."""
        with pytest.raises(ValueError, match="alpha"):
            seq.msprt(Counts(1, 10), Counts(2, 10), tau=0.1, alpha=1.5)


class TestValidity:
    def test_interval_coverage_under_continuous_monitoring(self) -> None:
        """The intersected interval covers a true mean difference in >= 95% of 2,000 runs."""
        rng = np.random.default_rng(20)
        runs, looks, m, theta = 2000, 50, 20, 0.3
        c = rng.normal(0.0, 1.0, size=(runs, looks, m))
        t = rng.normal(theta, 1.5, size=(runs, looks, m))
        n = m * np.arange(1, looks + 1)
        sc, st = c.sum(axis=2).cumsum(axis=1), t.sum(axis=2).cumsum(axis=1)
        qc, qt = (c**2).sum(axis=2).cumsum(axis=1), (t**2).sum(axis=2).cumsum(axis=1)
        var_c = (qc - sc**2 / n) / (n - 1)
        var_t = (qt - st**2 / n) / (n - 1)
        est = st / n - sc / n
        var = var_c / n + var_t / n
        tau = seq.default_tau(1.0 + 2.25, 500)
        h = seq.mixture_ci_halfwidth(var, tau, 0.05)
        lo = np.maximum.accumulate(est - h, axis=1)[:, -1]
        hi = np.minimum.accumulate(est + h, axis=1)[:, -1]
        coverage = float(((lo <= theta) & (theta <= hi)).mean())
        assert coverage >= 0.95, f"always-valid coverage {coverage:.4f}"

    def test_type_one_error_for_means_under_continuous_monitoring(self) -> None:
        """A/A on skewed means (exponential), 2,000 runs x 50 looks: p <= 0.05 at any look <= 5%."""
        rng = np.random.default_rng(21)
        runs, looks, m = 2000, 50, 40
        c = rng.exponential(100.0, size=(runs, looks, m))
        t = rng.exponential(100.0, size=(runs, looks, m))
        n = m * np.arange(1, looks + 1)
        sc, st = c.sum(axis=2).cumsum(axis=1), t.sum(axis=2).cumsum(axis=1)
        qc, qt = (c**2).sum(axis=2).cumsum(axis=1), (t**2).sum(axis=2).cumsum(axis=1)
        var = (qc - sc**2 / n) / (n - 1) / n + (qt - st**2 / n) / (n - 1) / n
        tau = seq.default_tau(2 * 100.0**2, 1000)
        p = seq.mixture_p_value(st / n - sc / n, var, tau)
        rate = float((p <= 0.05).any(axis=1).mean())
        assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), f"rate {rate:.4f}"


class TestOneSided:
    def test_p_value_is_the_half_normal_mixture(self) -> None:
        """p = 1 / Lambda+, Lambda+ integrated numerically over a half-normal mixture."""
        from scipy import integrate

        theta, var, tau = 0.004, 4e-6, 0.006
        s, info = theta / var, 1 / var

        def ratio(d: float) -> float:
            return (
                math.exp(d * s - d * d * info / 2)
                * 2
                * math.exp(-(d**2) / (2 * tau**2))
                / (tau * math.sqrt(2 * math.pi))
            )

        lam = integrate.quad(ratio, 0, 1, limit=200)[0]
        assert seq.one_sided_p_value(theta, var, tau) == pytest.approx(1 / lam, rel=1e-6)

    @pytest.mark.parametrize("alpha", [0.05, 0.0125, 0.001])
    def test_bound_inverts_the_p_value(self, alpha: float) -> None:
        """The bound is above 0 exactly when p <= alpha: at theta - bound, p equals alpha."""
        theta, var, tau = 0.01, 1e-5, 0.01
        bound = seq.one_sided_bound(theta, var, tau, alpha)
        assert seq.one_sided_p_value(theta - bound, var, tau) == pytest.approx(alpha, rel=1e-6)

    def test_sharper_than_two_sided_at_the_same_alpha(self) -> None:
        """For a positive effect the one-sided mixture is about twice the two-sided ratio."""
        two = float(seq.mixture_p_value(0.01, 1e-5, 0.01))
        one = seq.one_sided_p_value(0.01, 1e-5, 0.01)
        assert one == pytest.approx(two / 2, rel=0.01)

    def test_type_one_error_under_continuous_monitoring(self) -> None:
        """A/A random walks, 5,000 runs x 200 looks: the running p <= 0.025 in <= 2.5%."""
        rng = np.random.default_rng(3)
        runs, looks = 5000, 200
        s = np.cumsum(rng.standard_normal((runs, looks)), axis=1)
        n = np.arange(1, looks + 1)
        tau = math.sqrt(8.0 / 20)
        p = np.vectorize(seq.one_sided_p_value)(s / n, 1 / n, tau)
        rate = float((p <= 0.025).any(axis=1).mean())
        assert rate <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / runs), f"rate {rate:.4f}"


class TestOneVariance:
    def test_p_value_and_interval_never_disagree(self) -> None:
        """For proportions, 'p <= alpha' and 'the interval excludes 0' agree on 2,000 random
        looks, small counts and zero events included: both come from one variance."""
        rng = np.random.default_rng(9)
        disagree = 0
        for _ in range(2000):
            nc, nt = (int(x) for x in rng.integers(20, 3000, 2))
            pc, pt = rng.uniform(0, 0.2, 2)
            c = Counts(int(rng.binomial(nc, pc)), nc)
            t = Counts(int(rng.binomial(nt, pt)), nt)
            r = seq.msprt(c, t, tau=0.02)
            excludes = r.ci[0] > 0 or r.ci[1] < 0
            disagree += (r.p_value <= 0.05) != excludes
        assert disagree == 0
