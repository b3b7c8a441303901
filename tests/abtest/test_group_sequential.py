"""Checks of the alpha-spending boundaries: published values, an independent oracle,
Monte Carlo type I error under continuous looking, and the stored state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from abtest.group_sequential import EfficacyBoundary, obrien_fleming, pocock

ALPHA = 0.025


def boundaries(
    info: list[float], progress: list[float], spending: str = "obrien_fleming"
) -> list[float]:
    state = EfficacyBoundary(alpha=ALPHA, spending=spending)
    out = []
    for i, t in zip(info, progress, strict=True):
        state = state.look(0.0, i, t)
        out.append(state.boundary)
    return out


class TestSpending:
    def test_obrien_fleming_spends_alpha_at_the_end(self) -> None:
        """f(0) = 0, f(1) = alpha, and almost nothing early (OBF-type)."""
        assert obrien_fleming(0.0, ALPHA) == 0.0
        assert obrien_fleming(1.0, ALPHA) == ALPHA
        assert obrien_fleming(0.1, ALPHA) < 1e-6
        assert obrien_fleming(0.5, ALPHA) == pytest.approx(0.001525, rel=1e-3)

    def test_pocock_spends_evenly(self) -> None:
        """Pocock-type spending: alpha log(1 + (e - 1) t)."""
        assert pocock(0.5, ALPHA) == pytest.approx(ALPHA * math.log1p((math.e - 1) / 2))


class TestPublishedValues:
    def test_obrien_fleming_five_equal_looks(self) -> None:
        """Lan-DeMets OBF, one-sided 0.025, 5 equally spaced looks (gsDesign sfLDOF)."""
        got = boundaries([1, 2, 3, 4, 5], [0.2, 0.4, 0.6, 0.8, 1.0])
        assert got == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=3e-4)

    @pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
    def test_crossing_probabilities_match_an_independent_oracle(self, spending: str) -> None:
        """For 4 unequal looks, scipy's multivariate normal CDF (Genz) gives the chance of
        crossing first at each look: it equals the alpha spent there."""
        info = [1.0, 2.5, 3.0, 5.0]
        progress = [0.2, 0.5, 0.6, 1.0]
        c = boundaries(info, progress, spending)
        spend = {"obrien_fleming": obrien_fleming, "pocock": pocock}[spending]
        cov = np.array([[math.sqrt(min(a, b) / max(a, b)) for b in info] for a in info])
        previous = 0.0
        for k in range(len(info)):
            # P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = P(first k-1 below) - P(all k below)
            below_before = stats.multivariate_normal(cov=cov[:k, :k]).cdf(c[:k]) if k else 1.0
            below_all = stats.multivariate_normal(cov=cov[: k + 1, : k + 1]).cdf(c[: k + 1])
            first_cross = float(below_before - below_all)
            released = spend(progress[k], ALPHA) - previous
            previous += released
            assert first_cross == pytest.approx(released, abs=2e-5), k


class TestContinuousLooking:
    @pytest.mark.parametrize(
        ("looks", "irregular"), [(50, False), (50, True), (360, False), (360, True)]
    )
    def test_type_one_error_is_alpha(self, looks: int, irregular: bool) -> None:
        """Brownian paths looked at `looks` times, with equal or random information
        increments and an uneven clock: the chance of ever crossing is alpha (within
        3 Monte Carlo standard errors of 60,000 paths)."""
        rng = np.random.default_rng(looks + irregular)
        inc = rng.uniform(0.2, 3.0, looks) if irregular else np.ones(looks)
        info = np.cumsum(inc)
        clock = np.cumsum(rng.uniform(0.5, 1.5, looks))
        progress = clock / clock[-1]
        c = np.array(boundaries(info.tolist(), progress.tolist()))
        runs = 60_000
        z = np.cumsum(rng.standard_normal((runs, looks)) * np.sqrt(inc), axis=1) / np.sqrt(info)
        rate = float((z >= c).any(axis=1).mean())
        se = math.sqrt(ALPHA * (1 - ALPHA) / runs)
        assert abs(rate - ALPHA) <= 3 * se, f"rate {rate:.5f}"

    def test_final_boundary_stays_near_the_fixed_horizon_value(self) -> None:
        """With 360 looks the last O'Brien-Fleming boundary is 2.21, not a Bonferroni 3.6+:
        nearly the power of one test at the end (1.96)."""
        c = boundaries([float(k) for k in range(1, 361)], [k / 360 for k in range(1, 361)])
        assert 2.15 < c[-1] < 2.25
        assert c[0] > 10


class TestLooks:
    def test_no_new_information_spends_nothing(self) -> None:
        """A look without more information than the last releases no alpha."""
        state = EfficacyBoundary(alpha=ALPHA).look(0.0, 10.0, 0.5)
        assert state.look(0.0, 10.0, 0.7) == state
        assert state.look(0.0, 9.0, 0.7) == state

    def test_a_clock_that_has_not_moved_spends_nothing(self) -> None:
        """A second look at the same progress tests nothing."""
        state = EfficacyBoundary(alpha=ALPHA).look(0.0, 10.0, 0.5)
        assert state.look(5.0, 12.0, 0.5) == state

    def test_past_the_horizon_nothing_is_left(self) -> None:
        """Once all alpha is spent, later looks cannot reject."""
        state = EfficacyBoundary(alpha=ALPHA).look(0.0, 10.0, 1.0)
        assert state.spent == ALPHA
        assert state.look(50.0, 20.0, 1.0) == state

    def test_crossed_stays_crossed(self) -> None:
        """A crossing is a rejection: later looks change nothing."""
        state = EfficacyBoundary(alpha=ALPHA).look(5.0, 10.0, 0.9)
        assert state.crossed
        assert state.look(-3.0, 20.0, 1.0) is state

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [({"alpha": 0.0}, "alpha"), ({"alpha": 0.05, "spending": "linear"}, "spending")],
    )
    def test_bad_state_rejected(self, kwargs: dict[str, object], name: str) -> None:
        """Invalid parameters are rejected by name."""
        with pytest.raises(ValueError, match=name):
            EfficacyBoundary(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("info", "progress", "name"),
        [(0.0, 0.5, "information"), (-1.0, 0.5, "information"), (1.0, math.nan, "progress")],
    )
    def test_bad_look_rejected(self, info: float, progress: float, name: str) -> None:
        """Non-positive information or a NaN clock is refused by name, never spent."""
        with pytest.raises(ValueError, match=name):
            EfficacyBoundary(alpha=ALPHA).look(0.0, info, progress)


class TestStorage:
    def test_round_trip_continues_identically(self) -> None:
        """A state stored as a dict and read back gives the same next boundary."""
        state = EfficacyBoundary(alpha=ALPHA)
        for k in range(1, 6):
            state = state.look(0.0, float(k), k / 20)
        back = EfficacyBoundary.from_dict(state.to_dict())
        assert back.look(0.0, 6.0, 0.3).boundary == pytest.approx(
            state.look(0.0, 6.0, 0.3).boundary, abs=1e-7
        )

    def test_grid_that_does_not_fit_is_refused(self) -> None:
        """A stored grid of the wrong length is an error, not a silent miscalculation."""
        data = EfficacyBoundary(alpha=ALPHA).look(0.0, 1.0, 0.1).look(0.0, 2.0, 0.2).to_dict()
        data["removed"] = data["removed"][:-3]
        with pytest.raises(ValueError, match="grid"):
            EfficacyBoundary.from_dict(data)
