"""Split plans round-trip through dicts; assignment is deterministic, uniform and monotone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from abtest import assign as asg
from abtest import plans


class TestAssign:
    def test_uniform_over_100k_ids(self) -> None:
        """Bucket positions of 100,000 ids pass a chi-square test over 50 equal bins."""
        u = np.array([asg.bucket(f"user-{i}", salt="exp-1") for i in range(100_000)])
        counts = np.bincount((u * 50).astype(int), minlength=50)
        assert scipy.stats.chisquare(counts).pvalue > 0.001
        assert scipy.stats.kstest(u, "uniform").pvalue > 0.001

    def test_monotone_in_weight(self) -> None:
        """Every unit in treatment at a weight stays in treatment at any larger weight."""
        weights = [0.0, 0.01, 0.05, 0.10, 0.25, 0.5, 1.0]
        for i in range(5_000):
            arms = [asg.assign(i, w, salt="s") for w in weights]
            first = arms.index("treatment") if "treatment" in arms else len(arms)
            assert all(a == "treatment" for a in arms[first:])
            assert all(a == "control" for a in arms[:first])

    def test_share_matches_weight(self) -> None:
        """About 10% of 20,000 ids land in treatment at weight 0.1."""
        n = sum(asg.assign(f"u{i}", 0.1, salt="x") == "treatment" for i in range(20_000))
        assert scipy.stats.binomtest(n, 20_000, 0.1).pvalue > 0.001

    def test_deterministic_and_salted(self) -> None:
        """The same id and salt always agree; another salt reshuffles."""
        a = [asg.bucket(i, salt="a") for i in range(1000)]
        assert a == [asg.bucket(i, salt="a") for i in range(1000)]
        b = [asg.bucket(i, salt="b") for i in range(1000)]
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.1

    def test_extremes(self) -> None:
        """Weight 0 is always control and weight 1 always treatment."""
        assert asg.assign("x", 0.0, salt="s") == "control"
        assert asg.assign("x", 1.0, salt="s") == "treatment"

    @pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan])
    def test_bad_weight_rejected(self, weight: float) -> None:
        """A weight outside [0, 1] is rejected by name."""
        with pytest.raises(ValueError, match="treatment_weight"):
            asg.assign("x", weight, salt="s")

    def test_bad_unit_id_rejected(self) -> None:
        """A unit id that is not str, int or bytes is rejected by name."""
        with pytest.raises(ValueError, match="unit_id"):
            asg.bucket(1.5, salt="s")  # type: ignore[arg-type]


class TestPlans:
    def test_canary_round_trip(self) -> None:
        """A canary plan survives to_dict / plan_from_dict."""
        p = plans.CanaryPlan(steps=(1, 5, 10, 25, 50, 100), interval_seconds=60)
        assert plans.plan_from_dict(p.to_dict()) == p

    def test_fixed_round_trip(self) -> None:
        """A fixed split survives to_dict / plan_from_dict."""
        p = plans.FixedSplitPlan(duration_seconds=3600, treatment_percent=20)
        assert plans.plan_from_dict(p.to_dict()) == p
        assert p.weight == 0.2
        assert p.looks == 60

    def test_canary_dwell(self) -> None:
        """A step can be left only after its minimum dwell, and never past the last."""
        p = plans.CanaryPlan(min_dwell_seconds=300)
        assert not p.can_advance(0, 299)
        assert p.can_advance(0, 300)
        assert not p.can_advance(5, 10_000)
        assert p.weight(3) == 0.25
        assert p.min_duration_seconds == 1500

    @pytest.mark.parametrize(
        ("data", "name"),
        [
            ({"kind": "blue-green"}, "kind"),
            ({"kind": "canary", "steps": [5, 1]}, "steps"),
            ({"kind": "canary", "steps": [0, 10]}, "steps"),
            ({"kind": "canary", "steps": [10, 150]}, "steps"),
            ({"kind": "canary", "interval_seconds": 0}, "interval_seconds"),
            ({"kind": "canary", "min_dwell_seconds": -1}, "min_dwell_seconds"),
            ({"kind": "canary", "colour": "red"}, "colour"),
            ({"kind": "fixed"}, "duration_seconds"),
            (
                {"kind": "fixed", "duration_seconds": 60, "treatment_percent": 0},
                "treatment_percent",
            ),
        ],
    )
    def test_bad_dicts_rejected(self, data: dict[str, object], name: str) -> None:
        """Invalid plan dicts raise ValueError naming the key."""
        with pytest.raises(ValueError, match=name):
            plans.plan_from_dict(data)
