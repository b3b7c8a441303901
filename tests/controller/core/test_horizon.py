"""controller.core.horizon: the planned clock the efficacy test spends its alpha on."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core import horizon

from .test_decide import policy


def canary(**overrides: Any) -> Any:
    base = {"strategy": {"kind": "canary", "steps": [10, 50, 100], "step_duration": 60},
            "interval": 10, "settle": 10, "max_duration": 600}  # fmt: skip
    return policy(**{**base, **overrides})


class TestHorizon:
    def test_canary_horizon_is_max_duration(self) -> None:
        """A canary's last step waits for evidence until max_duration."""
        assert horizon.horizon_seconds(canary()) == 600

    def test_fixed_split_horizon_is_its_duration(self) -> None:
        """A fixed split decides at the end of its duration (or max_duration if sooner)."""
        fixed = {"kind": "fixed", "weight": 50, "duration": 300}
        assert horizon.horizon_seconds(policy(strategy=fixed, max_duration=600)) == 300
        assert horizon.horizon_seconds(policy(strategy=fixed, max_duration=200)) == 200

    def test_looks_come_from_the_policy(self) -> None:
        """The number of looks is the horizon over the interval (360 for 3600 s at 10 s)."""
        assert horizon.planned_looks(canary(max_duration=3600)) == 360
        assert horizon.planned_looks(canary(interval=7)) == 86


class TestProgress:
    def test_information_weighted_by_split_and_settle(self) -> None:
        """Step 1 (10%, 50 s measured) gains 0.09 x 50; step 2 (50%) 0.25 a second to 600 s."""
        p = canary()
        total = 0.09 * 50 + 0.25 * 530
        assert horizon.progress(p, 0) == 0
        assert horizon.progress(p, 10) == 0  # settling: nothing measured yet
        assert horizon.progress(p, 60) == pytest.approx(0.09 * 50 / total)
        assert horizon.progress(p, 70) == pytest.approx(0.09 * 50 / total)  # settling again
        assert horizon.progress(p, 300) == pytest.approx((0.09 * 50 + 0.25 * 230) / total)
        assert horizon.progress(p, 600) == 1.0
        assert horizon.progress(p, 10_000) == 1.0

    def test_fixed_split_is_calendar_time_after_settle(self) -> None:
        """A fixed split's clock is the measured share of its duration."""
        p = policy(strategy={"kind": "fixed", "weight": 10, "duration": 110}, settle=10)
        assert horizon.progress(p, 60) == pytest.approx(0.5)


class TestHarmFraction:
    def test_first_step_end_when_it_comes_early(self) -> None:
        """The harm test is sharpest at the end of the first step, if that is early."""
        p = canary()
        assert horizon.harm_fraction(p) == pytest.approx(horizon.progress(p, 60))

    def test_at_most_a_tenth(self) -> None:
        """A long first step, or a single step, puts it at a tenth of the horizon."""
        assert horizon.harm_fraction(canary(max_duration=70)) == horizon.HARM_FRACTION
        fixed = policy(strategy={"kind": "fixed", "weight": 50, "duration": 300})
        assert horizon.harm_fraction(fixed) == horizon.HARM_FRACTION
