"""Verdict rules of abtest.analysis.analyze, one table row per rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtest.analysis import AnalysisSpec, ArmData, Histogram, MetricSpec, analyze
from abtest.results import Counts, Summary

CONV = MetricSpec("conversion", "proportion", "primary", "higher")
ERRORS = MetricSpec("errors", "proportion", "guardrail", "lower", margin=0.005)
LATENCY = MetricSpec("latency", "mean", "guardrail", "lower", margin=5.0)


def _spec(*metrics: MetricSpec, mode: str = "sequential") -> AnalysisSpec:
    return AnalysisSpec(metrics=metrics or (CONV, ERRORS), mode=mode)  # type: ignore[arg-type]


def _data(
    conv: tuple[Counts, Counts],
    errors: tuple[Counts, Counts] | None = None,
    units: tuple[int, int] | None = None,
    **extra: tuple[object, object],
) -> dict[str, ArmData]:
    n = conv[0].n, conv[1].n
    units = units or n
    metrics = {"conversion": conv, **({"errors": errors} if errors else {}), **extra}
    return {
        arm: ArmData(units[i], {k: val[i] for k, val in metrics.items()})  # type: ignore[misc]
        for i, arm in enumerate(("control", "treatment"))
    }


GOOD = (Counts(2000, 20000), Counts(2400, 20000))
FLAT = (Counts(2000, 20000), Counts(2000, 20000))
SAFE = (Counts(200, 20000), Counts(195, 20000))
BROKEN = (Counts(200, 20000), Counts(400, 20000))


class TestRules:
    @pytest.mark.parametrize(
        ("name", "data", "decision", "in_reason"),
        [
            ("promote", _data(GOOD, SAFE), "promote", "significantly better"),
            ("rollback", _data(GOOD, BROKEN), "rollback", "errors significantly worse"),
            ("flat continues", _data(FLAT, SAFE), "continue", "no significant difference"),
            (
                "srm freezes even a rollback",
                _data(GOOD, BROKEN, units=(20000, 21500)),
                "inconclusive",
                "sample ratio mismatch",
            ),
            ("missing guardrail", _data(GOOD), "inconclusive", "no data"),
            (
                "nan guardrail",
                _data(GOOD, (Counts(200, 20000), Counts(math.nan, 20000))),  # type: ignore[arg-type]
                "inconclusive",
                "invalid data",
            ),
            (
                "too few samples",
                _data((Counts(5, 50), Counts(9, 50)), (Counts(0, 50), Counts(0, 50))),
                "continue",
                "100 needed",
            ),
            (
                "primary worse rolls back",
                _data((Counts(2400, 20000), Counts(2000, 20000)), SAFE),
                "rollback",
                "conversion significantly worse",
            ),
        ],
    )
    def test_decision(
        self, name: str, data: dict[str, ArmData], decision: str, in_reason: str
    ) -> None:
        """Each rule of the module docstring yields its decision and says why."""
        v = analyze(_spec(), data)
        assert v.decision == decision, (name, v.reason)
        assert in_reason in v.reason
        assert "\n" not in v.reason

    def test_missing_arm_is_inconclusive(self) -> None:
        """Without a treatment arm there is no verdict but inconclusive."""
        v = analyze(_spec(), {"control": _data(GOOD, SAFE)["control"]})
        assert v.decision == "inconclusive"
        assert "treatment" in v.reason

    def test_unproven_loss_within_margin_is_tolerated(self) -> None:
        """A guardrail loss that is not significant but whose bound stays inside the
        margin passes as non-inferior."""
        lat = (Summary(100.0, 400.0, 20000), Summary(100.2, 400.0, 20000))
        v = analyze(_spec(CONV, LATENCY), _data(GOOD, latency=lat))
        assert v.decision == "promote", v.reason
        assert v.metrics[1].status == "noninferior"

    def test_proven_loss_within_margin_still_rolls_back(self) -> None:
        """A loss shown significant rolls back even inside the margin (a deterioration
        test on every metric): the margin bounds what promotion may fail to rule out."""
        lat = (Summary(100.0, 400.0, 20000), Summary(101.0, 400.0, 20000))
        v = analyze(_spec(CONV, LATENCY), _data(GOOD, latency=lat))
        assert v.decision == "rollback", v.reason
        assert v.metrics[1].status == "worse"
        assert v.metrics[1].ci is not None
        assert 0 < v.metrics[1].ci[0] < 5.0  # significantly worse, by less than the margin

    def test_loss_beyond_margin_rolls_back(self) -> None:
        """A latency mean 10 ms worse with a 5 ms margin rolls back."""
        lat = (Summary(100.0, 400.0, 20000), Summary(110.0, 400.0, 20000))
        v = analyze(_spec(CONV, LATENCY), _data(GOOD, latency=lat))
        assert v.decision == "rollback"
        assert "latency" in v.reason

    def test_too_few_samples_reports_needed(self) -> None:
        """Too few samples reports the size needed and how many more per arm."""
        v = analyze(_spec(), _data((Counts(5, 60), Counts(9, 60)), (Counts(0, 60), Counts(0, 60))))
        assert v.additional_samples == 40
        assert {o.samples_needed for o in v.metrics} == {100}

    def test_continue_estimates_more_samples(self) -> None:
        """A flat sequential look estimates the units still planned per arm."""
        v = analyze(_spec(), _data(FLAT, SAFE))
        assert v.additional_samples == 0  # 20,000 already exceeds the planned 10,000
        small = _data((Counts(500, 5000), Counts(505, 5000)), (Counts(50, 5000), Counts(50, 5000)))
        assert analyze(_spec(), small).additional_samples == 5000

    def test_mde_sizes_the_estimate(self) -> None:
        """With an mde on the primary, the plan is the power calculation's size."""
        conv = MetricSpec("conversion", "proportion", "primary", "higher", mde=0.005)
        small = _data((Counts(500, 5000), Counts(505, 5000)), (Counts(50, 5000), Counts(50, 5000)))
        v = analyze(_spec(conv, ERRORS), small)
        assert v.additional_samples is not None
        assert v.additional_samples > 50_000

    def test_numbers_behind_each_metric(self) -> None:
        """Each metric reports effect, interval, p-values, alpha, sizes and method."""
        v = analyze(_spec(), _data(GOOD, SAFE))
        conv = v.metrics[0]
        assert conv.effect == pytest.approx(0.02)
        assert conv.ci is not None
        assert conv.ci[0] < 0.02 < conv.ci[1]
        assert conv.p_value <= conv.alpha
        assert conv.p_better <= conv.alpha_better
        assert conv.p_worse == 1.0
        assert (conv.n_control, conv.n_treatment) == (20000, 20000)
        assert "mixture SPRT" in conv.method
        assert v.srm is not None
        assert not v.srm.mismatch


class TestHolm:
    ONE = (Counts(100, 1000), Counts(130, 1000))  # fixed-horizon p = 0.0355
    TWO = (Counts(100, 1000), Counts(128, 1000))  # fixed-horizon p = 0.0488
    SAFE = (Counts(10, 1000), Counts(10, 1000))
    GUARD = MetricSpec("errors", "proportion", "guardrail", "lower", margin=0.02)

    def test_single_primary_promotes(self) -> None:
        """One primary at p = 0.0355 promotes at the final fixed-horizon look."""
        v = analyze(_spec(CONV, self.GUARD, mode="fixed"), _data(self.ONE, self.SAFE))
        assert v.decision == "promote", v.reason

    def test_two_primaries_are_adjusted(self) -> None:
        """Two primaries at 0.0355 and 0.0488 both adjust to 0.071 and do not promote."""
        second = MetricSpec("signups", "proportion", "primary", "higher")
        spec = _spec(CONV, second, self.GUARD, mode="fixed")
        v = analyze(spec, _data(self.ONE, self.SAFE, signups=self.TWO))
        assert v.decision == "inconclusive"
        adjusted = [o.p_adjusted for o in v.metrics if o.role == "primary"]
        assert adjusted == pytest.approx([0.0709769, 0.0709769], rel=1e-5)
        assert "Holm" in v.reason


class TestKinds:
    def test_raw_means(self) -> None:
        """A mean metric accepts raw values and is summarised."""
        rng = np.random.default_rng(0)
        lat = (rng.normal(100, 20, 5000), rng.normal(100, 20, 5000))
        v = analyze(_spec(CONV, LATENCY), _data(GOOD, latency=lat))
        assert v.metrics[1].n_control == 5000
        assert v.decision == "promote"

    def test_histogram_distribution_regression(self) -> None:
        """A latency histogram shifted to slower buckets rolls back a lower-is-better guardrail."""
        b = (0.1, 0.25, 0.5, 1.0, math.inf)
        hist = (
            Histogram(b, (4000, 12000, 18000, 19800, 20000)),
            Histogram(b, (1000, 6000, 14000, 19000, 20000)),
        )
        dist = MetricSpec("latency", "distribution", "guardrail", "lower", margin=0.05)
        v = analyze(_spec(CONV, dist), _data(GOOD, latency=hist))
        assert v.decision == "rollback"
        assert "Bonferroni" in v.metrics[1].method

    def test_quantile_regression(self) -> None:
        """A p95 latency regression beyond the margin rolls back a quantile guardrail."""
        rng = np.random.default_rng(1)
        lat = (rng.exponential(100, 20000), rng.exponential(150, 20000))
        p95 = MetricSpec("p95", "quantile", "guardrail", "lower", margin=20.0, q=0.95)
        v = analyze(AnalysisSpec(metrics=(CONV, p95), resamples=2000), _data(GOOD, p95=lat))
        assert v.decision == "rollback", v.reason

    def test_quantile_needs_raw_values(self) -> None:
        """Counts for a quantile metric are invalid data, hence inconclusive."""
        p95 = MetricSpec("p95", "quantile", "guardrail", "lower")
        v = analyze(_spec(CONV, p95), _data(GOOD, p95=SAFE))
        assert v.decision == "inconclusive"


class TestSpec:
    def test_round_trip(self) -> None:
        """AnalysisSpec survives to_dict / from_dict."""
        spec = AnalysisSpec(metrics=(CONV, ERRORS, LATENCY), mode="fixed", weights=(90.0, 10.0))
        assert AnalysisSpec.from_dict(spec.to_dict()) == spec

    @pytest.mark.parametrize(
        ("data", "name"),
        [
            ({"metrics": [{"name": "c", "kind": "proportion", "colour": 1}]}, "colour"),
            ({"metrics": [{"name": "c", "kind": "ratio"}]}, "kind"),
            ({"metrics": [{"name": "c", "kind": "mean", "alpha": 1.0}]}, "alpha"),
            ({"metrics": [{"name": "c", "kind": "mean", "direction": "up"}]}, "direction"),
            ({"metrics": [{"name": "c", "kind": "mean", "role": "guardrail"}]}, "primary"),
            ({"metrics": [{"name": "c", "kind": "mean"}], "mode": "bayes"}, "mode"),
            ({"metrics": [{"name": "c", "kind": "mean"}], "weights": [1, 0]}, "weights"),
            ({"metrics": [{"name": "c", "kind": "mean"}], "extra": 1}, "extra"),
        ],
    )
    def test_bad_spec_rejected(self, data: dict[str, object], name: str) -> None:
        """Invalid specs raise ValueError naming the key."""
        with pytest.raises(ValueError, match=name):
            AnalysisSpec.from_dict(data)


class TestNeverPromoteOnBadData:
    @pytest.mark.parametrize("arm", ["control", "treatment"])
    @pytest.mark.parametrize(
        ("metric", "bad"),
        [
            ("conversion", Counts(math.nan, 20000)),  # type: ignore[arg-type]
            ("conversion", Counts(2400, math.inf)),  # type: ignore[arg-type]
            ("conversion", Counts(-1, 20000)),
            ("conversion", Counts(30000, 20000)),
            ("conversion", None),
            ("errors", Counts(math.nan, 20000)),  # type: ignore[arg-type]
            ("errors", None),
            ("latency", Summary(math.nan, 400.0, 20000)),
            ("latency", Summary(100.0, math.inf, 20000)),
            ("latency", Summary(100.0, -1.0, 20000)),
            ("latency", np.array([100.0, math.nan] * 10_000)),
            ("latency", None),
        ],
    )
    def test_bad_data_never_promotes(self, arm: str, metric: str, bad: object) -> None:
        """Data that would promote stops promoting once any value is missing, NaN or invalid."""
        lat = (Summary(100.0, 400.0, 20000), Summary(100.0, 400.0, 20000))
        data = _data(GOOD, SAFE, latency=lat)
        assert analyze(_spec(CONV, ERRORS, LATENCY), data).decision == "promote"
        metrics = dict(data[arm].metrics)
        metrics[metric] = bad  # type: ignore[assignment]
        data[arm] = ArmData(data[arm].units, metrics)
        v = analyze(_spec(CONV, ERRORS, LATENCY), data)
        assert v.decision == "inconclusive", v.reason
        assert metric in v.reason

    def test_empty_sample_is_too_few(self) -> None:
        """An empty sample is no observations yet: continue, never promote."""
        lat = (Summary(100.0, 400.0, 20000), np.array([]))
        v = analyze(_spec(CONV, ERRORS, LATENCY), _data(GOOD, SAFE, latency=lat))
        assert v.decision == "continue"
        assert "latency: 0 samples" in v.reason

    @pytest.mark.parametrize("units", [math.nan, -5, 1.5])
    def test_bad_unit_counts_are_inconclusive(self, units: float) -> None:
        """Invalid assigned-unit counts make the verdict inconclusive."""
        data = _data(GOOD, SAFE)
        data["treatment"] = ArmData(units, data["treatment"].metrics)  # type: ignore[arg-type]
        assert analyze(_spec(), data).decision == "inconclusive"


class TestCarriedState:
    def test_running_p_and_fixed_tau(self) -> None:
        """With previous, p is the running minimum, the interval intersects, tau stays fixed."""
        first = analyze(_spec(), _data((Counts(1000, 10000), Counts(1100, 10000)), SAFE))
        later = _data((Counts(2000, 20000), Counts(2010, 20000)), SAFE)
        alone = analyze(_spec(), later)
        carried = analyze(_spec(), later, previous=first)
        c0, c1, c2 = first.metrics[0], alone.metrics[0], carried.metrics[0]
        assert c2.tau == c0.tau != c1.tau
        assert c2.p_value == min(c0.p_value, c2.p_look)
        assert c2.p_value < c1.p_value
        assert c0.ci is not None
        assert c2.ci is not None
        assert c2.ci_look is not None
        assert c2.ci == (max(c0.ci[0], c2.ci_look[0]), min(c0.ci[1], c2.ci_look[1]))

    def test_state_survives_a_missing_look(self) -> None:
        """A look with a missing metric keeps that metric's running state for the next look."""
        first = analyze(_spec(), _data(GOOD, SAFE))
        gap = analyze(_spec(), _data(GOOD), previous=first)
        assert gap.decision == "inconclusive"
        errors = gap.metrics[1]
        assert errors.status == "missing"
        assert (errors.tau, errors.p_value, errors.ci) == (
            first.metrics[1].tau,
            first.metrics[1].p_value,
            first.metrics[1].ci,
        )
        after = analyze(_spec(), _data(GOOD, SAFE), previous=gap)
        assert after.metrics[1].tau == first.metrics[1].tau

    def test_state_survives_srm(self) -> None:
        """An SRM-frozen look reports the metrics as not judged but keeps their state."""
        first = analyze(_spec(), _data(GOOD, SAFE))
        frozen = analyze(_spec(), _data(GOOD, SAFE, units=(20000, 21500)), previous=first)
        assert frozen.decision == "inconclusive"
        assert [o.tau for o in frozen.metrics] == [o.tau for o in first.metrics]
        assert all("not judged" in o.reason for o in frozen.metrics)

    def test_fixed_mode_efficacy_ignores_previous(self) -> None:
        """Fixed mode's efficacy is one look (the previous verdict does not change it);
        its harm side is still carried."""
        spec = _spec(mode="fixed")
        data = _data(GOOD, SAFE)
        first = analyze(spec, data)
        again = analyze(spec, data, previous=first)
        assert [o.p_better for o in again.metrics] == [o.p_better for o in first.metrics]
        assert again.decision == first.decision == "promote"
        assert [o.tau for o in again.metrics] == [o.tau for o in first.metrics]
        assert again.state.metrics["conversion"].looks == 2


GS = AnalysisSpec(metrics=(CONV, ERRORS), efficacy="group_sequential")


class TestTwoSides:
    def test_harm_is_bonferroni_over_judged_metrics(self) -> None:
        """Each metric's harm test runs at alpha / 2 / (metrics with a direction)."""
        v = analyze(_spec(), _data(GOOD, SAFE))
        assert {o.alpha_worse for o in v.metrics} == {0.05 / 2 / 2}
        watched = MetricSpec("latency", "mean", "guardrail", None)
        lat = (Summary(100.0, 400.0, 20000), Summary(130.0, 400.0, 20000))
        v = analyze(_spec(CONV, ERRORS, watched), _data(GOOD, SAFE, latency=lat))
        assert v.metrics[2].alpha_worse == 0.05 / 2 / 2  # the watched one does not count

    def test_a_metric_without_direction_is_reported_only(self) -> None:
        """30 ms slower latency with no direction neither rolls back nor blocks promotion."""
        watched = MetricSpec("latency", "mean", "guardrail", None)
        lat = (Summary(100.0, 400.0, 20000), Summary(130.0, 400.0, 20000))
        v = analyze(_spec(CONV, ERRORS, watched), _data(GOOD, SAFE, latency=lat))
        assert v.decision == "promote", v.reason
        assert v.metrics[2].status == "undecided"
        assert "reported only" in v.metrics[2].reason

    def test_relative_margin_follows_the_control(self) -> None:
        """A 10% relative margin on a 1% error rate is 0.001: an unproven 0.000025 loss
        with a tight bound passes, and the margin reported is in absolute terms."""
        rel = MetricSpec("errors", "proportion", "guardrail", "lower", margin=0.1,
                         relative_margin=True)  # fmt: skip
        errors = (Counts(20_000, 2_000_000), Counts(20_050, 2_000_000))
        v = analyze(_spec(CONV, rel), _data(GOOD, errors))
        assert v.metrics[1].margin == pytest.approx(0.001)
        assert v.metrics[1].status == "noninferior", v.metrics[1].reason

    def test_interval_and_p_values_agree(self) -> None:
        """The bad end of the interval excludes 0 exactly when p_worse <= alpha_worse."""
        for treated in range(180, 320, 7):
            v = analyze(_spec(), _data(GOOD, (Counts(200, 20000), Counts(treated, 20000))))
            err = v.metrics[1]
            assert err.ci is not None
            assert (err.ci[0] > 0) == (err.p_worse <= err.alpha_worse), treated


class TestGroupSequential:
    def test_progress_is_required(self) -> None:
        """A group-sequential efficacy side needs the caller's clock."""
        with pytest.raises(ValueError, match="progress"):
            analyze(GS, _data(GOOD, SAFE))

    def test_early_looks_demand_more(self) -> None:
        """The same evidence crosses the boundary near the horizon but not at 2% of it."""
        modest = _data((Counts(2000, 20000), Counts(2120, 20000)), SAFE)
        early = analyze(GS, modest, progress=0.02)
        late = analyze(GS, modest, progress=1.0)
        assert early.metrics[0].boundary > late.metrics[0].boundary
        assert early.decision == "continue"
        assert late.metrics[0].status == "better"
        assert late.metrics[0].z >= late.metrics[0].boundary

    def test_state_round_trips_through_storage(self) -> None:
        """The carried state, stored as JSON and read back, gives the same next verdict."""
        import json

        from abtest.analysis import AnalysisState

        first = analyze(GS, _data(FLAT, SAFE), progress=0.3)
        stored = AnalysisState.from_dict(json.loads(json.dumps(first.state.to_dict())))
        nxt = _data((Counts(4000, 40000), Counts(4100, 40000)), SAFE)
        a = analyze(GS, nxt, previous=first, progress=0.6)
        b = analyze(GS, nxt, previous=stored, progress=0.6)
        assert a.decision == b.decision
        assert [o.boundary for o in a.metrics] == pytest.approx([o.boundary for o in b.metrics])
        assert [o.p_worse for o in a.metrics] == pytest.approx([o.p_worse for o in b.metrics])

    def test_malformed_state_is_refused(self) -> None:
        """A stored state that is not one raises ValueError, never a silent restart."""
        from abtest.analysis import AnalysisState

        with pytest.raises(ValueError, match="p_worse"):
            AnalysisState.from_dict({"metrics": {"m": {"p_worse": 7}}})


class TestStrata:
    def test_steps_are_combined_by_inverse_variance(self) -> None:
        """A new stratum closes the last one: the estimate is their inverse-variance mean."""
        from abtest import sequential

        one = _data((Counts(900, 10000), Counts(1000, 10000)), SAFE)
        two = _data((Counts(1000, 10000), Counts(1050, 10000)), SAFE)
        first = analyze(_spec(), one, stratum=1)
        second = analyze(_spec(), two, previous=first, stratum=2)
        e1, v1, _, _ = sequential.difference(Counts(900, 10000), Counts(1000, 10000))
        e2, v2, _, _ = sequential.difference(Counts(1000, 10000), Counts(1050, 10000))
        expected = (e1 / v1 + e2 / v2) / (1 / v1 + 1 / v2)
        assert second.metrics[0].effect == pytest.approx(expected)
        assert len(second.state.metrics["conversion"].strata) == 1

    def test_same_stratum_replaces_its_data(self) -> None:
        """Within a stratum, data are cumulative: a later look replaces the earlier one."""
        one = _data((Counts(900, 10000), Counts(1000, 10000)), SAFE)
        two = _data((Counts(1800, 20000), Counts(2050, 20000)), SAFE)
        second = analyze(_spec(), two, previous=analyze(_spec(), one))
        assert second.metrics[0].effect == pytest.approx(0.0125)
        assert second.state.metrics["conversion"].strata == ()


class TestReviewFindings:
    def test_a_look_that_spends_nothing_cannot_promote(self) -> None:
        """At an unmoved clock the efficacy side tests nothing: evidence that passes the
        last look's boundary does not promote (it would leak alpha)."""
        spec = AnalysisSpec(metrics=(MetricSpec("m", "mean", "primary", "higher"),),
                            efficacy="group_sequential")  # fmt: skip

        def arms(n: int, treated: float) -> dict[str, ArmData]:
            return {"control": ArmData(n, {"m": Summary(100.0, 400.0, n)}),
                    "treatment": ArmData(n, {"m": Summary(treated, 400.0, n)})}  # fmt: skip

        first = analyze(spec, arms(1000, 101.0), progress=0.5)
        second = analyze(spec, arms(2000, 103.0), previous=first, progress=0.5)
        assert second.decision == "continue", second.reason
        moved = analyze(spec, arms(2000, 103.0), previous=first, progress=0.6)
        assert moved.decision == "promote", moved.reason

    @pytest.mark.parametrize(("treated", "decision"), [(200.0, "rollback"), (100.0, "continue")])
    def test_zero_variance_is_evidence_not_missing_data(
        self, treated: float, decision: str
    ) -> None:
        """Every latency alike in each arm: a difference is overwhelming, none is none."""
        spec = AnalysisSpec(metrics=(MetricSpec("m", "mean", "primary", "lower"),))
        data = {"control": ArmData(1000, {"m": Summary(100.0, 0.0, 1000)}),
                "treatment": ArmData(1000, {"m": Summary(treated, 0.0, 1000)})}  # fmt: skip
        assert analyze(spec, data).decision == decision

    def test_relative_margin_on_a_distribution_refused(self) -> None:
        """A rank-biserial margin has no control value to be relative to."""
        with pytest.raises(ValueError, match="relative_margin"):
            MetricSpec("lat", "distribution", "guardrail", "lower", 0.1, relative_margin=True)

    def test_a_shown_non_inferiority_stays_shown(self) -> None:
        """A relative margin moves with the control's value; once the guardrail's test has
        rejected, a later look whose margin shrank does not take it back (it used to, and
        the frozen test could then never promote)."""
        rel = MetricSpec("errors", "proportion", "guardrail", "lower", margin=0.5,
                         relative_margin=True)  # fmt: skip
        spec = AnalysisSpec(metrics=(CONV, rel), efficacy="group_sequential")
        first = analyze(spec, _data(GOOD, (Counts(240, 20000), Counts(240, 20000))), progress=1)
        assert first.metrics[1].status == "noninferior", first.metrics[1].reason
        lower_base = _data(GOOD, (Counts(150, 40000), Counts(160, 40000)))
        later = analyze(spec, lower_base, previous=first, progress=1)
        assert later.metrics[1].ci is not None
        assert later.metrics[1].ci[1] > later.metrics[1].margin  # today's margin not excluded
        assert later.metrics[1].status == "noninferior"
        assert later.decision == "promote"

    def test_information_is_the_effective_sample_size(self) -> None:
        """The boundaries' information only grows with the data (not 1 / variance)."""
        spec = AnalysisSpec(metrics=(CONV,), efficacy="group_sequential", weights=(25, 75))
        v = analyze(spec, _data((Counts(100, 1000), Counts(100, 3000))), progress=0.5)
        state = v.state.metrics["conversion"].efficacy
        assert state is not None
        assert state.information == pytest.approx(1000 * 3000 / 4000)
