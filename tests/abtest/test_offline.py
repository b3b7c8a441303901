"""abtest.offline: two versions judged on recorded outcomes, with numbers checked
against scipy's own tests and the SRM check against the planned split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from abtest.offline import judge


def test_a_better_proportion_matches_the_pooled_z_test() -> None:
    rng = np.random.default_rng(7)
    control = rng.random(9000) < 0.80
    treatment = rng.random(1000) < 0.85
    result = judge(control, treatment, traffic_split=0.1, metric="converted")
    assert (result.kind, result.decision, result.treatment_is_better) == (
        "proportion", "promote", True,
    )  # fmt: skip
    x1, n1, x2, n2 = int(control.sum()), control.size, int(treatment.sum()), treatment.size
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x2 / n2 - x1 / n1) / se
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)
    assert result.effect == pytest.approx(x2 / n2 - x1 / n1)
    assert result.ci is not None
    assert result.ci[0] < result.effect < result.ci[1]
    assert result["treatment_is_better"] is True  # the seed's item access
    assert not result.srm_mismatch


def test_a_worse_mean_rolls_back_and_matches_welch() -> None:
    rng = np.random.default_rng(3)
    control = rng.normal(100, 15, 2000)
    treatment = rng.normal(96, 15, 2000)
    result = judge(control, treatment, direction="higher", metric="revenue")
    assert (result.kind, result.decision, result.treatment_is_better) == ("mean", "rollback", False)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.p_value == pytest.approx(welch.pvalue, rel=1e-3)


def test_no_difference_is_not_better() -> None:
    rng = np.random.default_rng(11)
    same = judge(rng.random(5000) < 0.5, rng.random(5000) < 0.5)
    assert same.treatment_is_better is False
    assert same.decision in ("inconclusive", "continue")


def test_a_split_far_from_the_plan_is_a_sample_ratio_mismatch() -> None:
    rng = np.random.default_rng(5)
    result = judge(rng.random(500) < 0.8, rng.random(4500) < 0.9, traffic_split=0.1)
    assert result.srm_mismatch
    assert result.decision == "inconclusive"
    assert result.treatment_is_better is False
    assert "sample ratio mismatch" in result.reason


def test_data_short_of_the_duration_use_the_sequential_test() -> None:
    rng = np.random.default_rng(2)
    control, treatment = rng.random(3000) < 0.80, rng.random(3000) < 0.83
    fixed = judge(control, treatment, complete=True)
    early = judge(control, treatment, complete=False)
    assert fixed.method.startswith("two-proportion z test")
    assert "efficacy by one-sided mixture SPRT" in early.method
    assert early.ci is not None
    assert fixed.ci is not None
    # an always-valid interval is wider than the one-look interval
    assert early.ci[1] - early.ci[0] > fixed.ci[1] - fixed.ci[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"traffic_split": 1.0}, "traffic_split must be between 0 and 1"),
        ({"direction": "up"}, "direction must be 'higher' or 'lower'"),
        ({"kind": "median"}, "kind must be 'proportion' or 'mean'"),
        ({"kind": "proportion", "control": [0.5, 1.0]}, "kind 'proportion' needs outcomes of 0"),
        ({"control": [1.0, math.nan]}, "control outcomes contain NaN"),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, object], message: str) -> None:
    args = {"control": [0.0, 1.0], "treatment": [1.0, 1.0], **kwargs}
    with pytest.raises(ValueError, match=message):
        judge(args.pop("control"), args.pop("treatment"), **args)  # type: ignore[arg-type]
