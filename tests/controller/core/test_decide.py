"""controller.core.decide: one table of (policy, state, observations) -> decision, no fixtures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.config import PolicyConfig, parse_config
from controller.core.causes import Cause
from controller.core.decide import (
    AwaitApproval,
    Decision,
    HoldUntil,
    Observations,
    Promote,
    RollBack,
    RolloutState,
    SetWeight,
    decide,
    operator,
)
from controller.core.phases import Event, Phase
from controller.errors import IllegalMove
from monitors import Measurement, Status, Subject, Window

from ..support import check_decision

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = Window(end=T0 + timedelta(hours=1), length=timedelta(minutes=1))


def policy(**overrides: Any) -> PolicyConfig:
    base: dict[str, Any] = {
        "router": "r",
        "strategy": {"kind": "canary", "steps": [50, 80, 100], "step_duration": 60},
        "interval": 10,
        "min_samples": 100,
        "max_duration": 120,  # the efficacy horizon: LATE (61 s) is past half of it
        "failure_limit": 2,
        "analysis": {
            "metrics": [
                {"name": "acc", "source": "s", "query": "accuracy", "kind": "proportion",
                 "direction": "higher"},
                {"name": "err", "source": "s", "query": "error_rate", "kind": "proportion",
                 "role": "guardrail", "direction": "lower", "margin": 0.01},
            ]
        },
        "triggers": [{"name": "err_high", "metric": "err", "threshold": 0.2, "consecutive": 1}],
    }  # fmt: skip
    base.update(overrides)
    config = parse_config(
        {
            "sources": {"s": {"kind": "ingest"}},
            "routers": {"r": {"kind": "http"}},
            "models": {"m": base},
        }
    )
    return config.models["m"]


def state(**overrides: Any) -> RolloutState:
    base: dict[str, Any] = {
        "id": 1, "model": "m", "control": "1.0.0", "treatment": "1.1.0",
        "phase": Phase.PROGRESSING, "step": 0, "weight": 50.0,
        "started_at": T0, "step_started_at": T0,
    }  # fmt: skip
    base.update(overrides)
    return RolloutState(**base)


def prop(x: int, n: int, name: str = "m") -> Measurement:
    return Measurement(name, Subject("m"), WINDOW, Status.OK, value=x / n, sample_size=n)


def units(n: int) -> Measurement:
    return Measurement("units", Subject("m"), WINDOW, Status.OK, value=float(n), sample_size=n)


def obs(acc: tuple[float, float], err: tuple[float, float], *, weight: float = 50,
        total: int = 10000, approval: bool = False) -> Observations:  # fmt: skip
    """Both arms with the given rates, units split as the weight says."""
    n_t = round(total * weight / 100)
    n = (total - n_t, n_t)
    return Observations(
        metrics={
            "acc": (prop(round(acc[0] * n[0]), n[0]), prop(round(acc[1] * n[1]), n[1])),
            "err": (prop(round(err[0] * n[0]), n[0]), prop(round(err[1] * n[1]), n[1])),
        },
        units=(units(n[0]), units(n[1])),
        approval_required=approval,
    )


NODATA = Measurement.nodata("acc", Subject("m"), WINDOW, "no events")
SAME = obs((0.8, 0.8), (0.01, 0.01))
SAME_80 = obs((0.8, 0.8), (0.01, 0.01), weight=80)
BETTER_80 = obs((0.8, 0.9), (0.01, 0.01), weight=80)
BETTER = obs((0.8, 0.9), (0.01, 0.01))
WORSE_ERRORS = obs((0.8, 0.8), (0.01, 0.3))
GUARDRAIL_WORSE = obs((0.8, 0.8), (0.01, 0.06))
FEW = obs((0.8, 0.8), (0.01, 0.01), total=100)
MISSING = Observations(
    metrics={"acc": (NODATA, NODATA), "err": (prop(5, 500), prop(5, 500))},
    units=(units(500), units(500)),
)
LATE = T0 + timedelta(seconds=61)
EARLY = T0 + timedelta(seconds=30)

CASES: list[tuple[str, PolicyConfig, RolloutState, Observations, datetime, type, dict]] = [
    ("pending starts at the first step", policy(), state(phase=Phase.PENDING, step=-1, weight=0.0),
     Observations(), EARLY, SetWeight, {"weight": 50.0, "step": 0, "phase": Phase.PROGRESSING}),
    ("paused holds", policy(), state(phase=Phase.PAUSED), BETTER, LATE, HoldUntil,
     {"phase": Phase.PAUSED}),
    ("awaiting approval holds", policy(require_approval=True),
     state(phase=Phase.AWAITING_APPROVAL), BETTER, LATE, HoldUntil,
     {"phase": Phase.AWAITING_APPROVAL}),
    ("approved promotes", policy(require_approval=True),
     state(phase=Phase.AWAITING_APPROVAL, approved=True), BETTER, LATE, Promote,
     {"phase": Phase.PROMOTED, "weight": 100.0}),
    ("max duration rolls back", policy(max_duration=60), state(), BETTER, LATE, RollBack,
     {"phase": Phase.ROLLED_BACK, "weight": 0.0}),
    ("settling holds", policy(settle=20), state(), WORSE_ERRORS, T0 + timedelta(seconds=5),
     HoldUntil, {"phase": Phase.PROGRESSING}),
    ("trigger fires", policy(), state(), WORSE_ERRORS, EARLY, RollBack,
     {"phase": Phase.ROLLED_BACK}),
    ("trigger needs consecutive breaches",
     policy(triggers=[{"name": "t", "metric": "err", "threshold": 0.2, "consecutive": 2}]),
     state(), WORSE_ERRORS, EARLY, RollBack, {"phase": Phase.ROLLED_BACK}),
    ("missing data holds and counts", policy(), state(), MISSING, LATE, HoldUntil,
     {"failures": 1}),
    ("missing data at the limit holds by default", policy(), state(failures=1), MISSING, LATE,
     HoldUntil, {"failures": 2}),
    ("missing data at the limit rolls back when told", policy(on_missing_data="rollback"),
     state(failures=1), MISSING, LATE, RollBack, {"phase": Phase.ROLLED_BACK}),
    ("no unit counts holds", policy(), state(),
     replace(SAME, units=None), LATE, HoldUntil, {"failures": 1}),
    ("too few samples holds", policy(), state(failures=1), FEW, LATE, HoldUntil, {"failures": 0}),
    ("guardrail worse rolls back", policy(triggers=[]), state(), GUARDRAIL_WORSE, EARLY, RollBack,
     {"phase": Phase.ROLLED_BACK}),
    ("no harm before dwell holds", policy(), state(), SAME, EARLY, HoldUntil,
     {"step": 0, "weight": 50.0}),
    ("no harm after dwell advances", policy(), state(), SAME, LATE, SetWeight,
     {"step": 1, "weight": 80.0, "step_started_at": LATE}),
    ("last step, no gain, holds", policy(), state(step=1, weight=80.0), SAME_80, LATE, HoldUntil,
     {"phase": Phase.PROGRESSING}),
    ("last step, better, promotes", policy(), state(step=1, weight=80.0), BETTER_80, LATE, Promote,
     {"phase": Phase.PROMOTED, "weight": 100.0}),
    ("policy approval awaits", policy(require_approval=True), state(step=1, weight=80.0), BETTER_80,
     LATE, AwaitApproval, {"phase": Phase.AWAITING_APPROVAL, "weight": 80.0}),
    ("registry approval awaits", policy(), state(step=1, weight=80.0),
     replace(BETTER_80, approval_required=True), LATE, AwaitApproval,
     {"phase": Phase.AWAITING_APPROVAL}),
    ("fixed split ends without gain: roll back",
     policy(strategy={"kind": "fixed", "weight": 50, "duration": 60}),
     state(weight=50.0), SAME, LATE, RollBack, {"phase": Phase.ROLLED_BACK}),
    ("fixed split ends better: promote",
     policy(strategy={"kind": "fixed", "weight": 50, "duration": 60}),
     state(weight=50.0), BETTER, LATE, Promote, {"phase": Phase.PROMOTED}),
]  # fmt: skip


class TestDecide:
    @pytest.mark.parametrize(
        ("name", "pol", "st", "ob", "now", "kind", "expect"), CASES, ids=[c[0] for c in CASES]
    )
    def test_table(
        self,
        name: str,
        pol: PolicyConfig,
        st: RolloutState,
        ob: Observations,
        now: datetime,
        kind: type,
        expect: dict[str, Any],
    ) -> None:
        """Each row: the decision variant and the fields of the next state."""
        check_decision(pol, st, ob, now, kind, expect)

    @pytest.mark.parametrize(
        ("stepped", "now", "said"),
        [(-600.0, LATE, "-600s"), (0.0, T0 - timedelta(seconds=90), "-90s"),
         (600.0, LATE, "+600s")],
    )  # fmt: skip
    def test_a_clock_step_restarts_the_window_instead_of_judging(
        self, stepped: float, now: datetime, said: str
    ) -> None:
        """The clock stepped since the last look (the shell saw it), or now is before the
        step's start: better evidence does not advance, the step's window restarts now
        with the phase, step and weight kept, under its own typed cause."""
        st = state(step=1, weight=80.0)
        decision = decide(policy(), st, replace(BETTER_80, clock_stepped=stepped), now=now)
        assert isinstance(decision, HoldUntil)
        assert decision.cause is Cause.CLOCK_STEPPED
        assert said in decision.reason
        moved = timedelta(seconds=float(said.removesuffix("s")))
        assert decision.state == replace(st, step_started_at=now, started_at=T0 + moved)

    def test_a_clock_set_ahead_past_max_duration_does_not_end_the_rollout(self) -> None:
        """Ten minutes ahead of a two-minute max_duration: the step is seen, the rollout
        keeps its running time; without the step it would be rolled back at once."""
        now = EARLY + timedelta(minutes=10)
        ob = replace(SAME, clock_stepped=600.0)
        decision = decide(policy(), state(), ob, now=now)
        assert decision.cause is Cause.CLOCK_STEPPED
        assert (now - decision.state.started_at).total_seconds() == 30
        assert decide(policy(), state(), SAME, now=now).cause is Cause.MAX_DURATION

    def test_missing_data_never_promotes(self) -> None:
        """Better accuracy with one arm's error rate missing does not promote."""
        ob = replace(
            BETTER_80,
            metrics={**BETTER_80.metrics, "err": (prop(20, 2000), Measurement.error(
                "err", Subject("m"), WINDOW, "timeout"))},
        )  # fmt: skip
        decision = decide(policy(), state(step=1, weight=80.0), ob, now=LATE)
        assert isinstance(decision, HoldUntil)
        assert "timeout" in decision.reason

    def test_numbers_carry_p_values(self) -> None:
        """A judged decision carries per-metric p-values and the unit counts."""
        decision = decide(policy(), state(step=1, weight=80.0), BETTER_80, now=LATE)
        assert decision.numbers["units"] == [2000, 8000]
        assert decision.numbers["metrics"]["acc"]["p_value"] < 0.05

    def test_trigger_streak_counts_up(self) -> None:
        """A breach short of `consecutive` holds and remembers the streak."""
        pol = policy(triggers=[{"name": "t", "metric": "acc", "threshold": 0.9,
                                "direction": "below", "consecutive": 3}])  # fmt: skip
        first = decide(pol, state(), SAME, now=EARLY)
        assert isinstance(first, HoldUntil)
        assert first.state.streaks == {"t": 1}
        second = decide(pol, first.state, SAME, now=EARLY)
        assert second.state.streaks == {"t": 2}
        third = decide(pol, second.state, SAME, now=EARLY)
        assert isinstance(third, RollBack)
        assert "3 evaluations in a row" in third.reason

    def test_terminal_is_illegal(self) -> None:
        """Evaluating a finished rollout is an illegal move naming the phase."""
        with pytest.raises(IllegalMove, match="promoted"):
            decide(policy(), state(phase=Phase.PROMOTED), SAME, now=LATE)


OPS: list[tuple[Phase, Event, type, Phase]] = [
    (Phase.PROGRESSING, Event.PAUSE, Decision, Phase.PAUSED),
    (Phase.PAUSED, Event.RESUME, HoldUntil, Phase.PROGRESSING),
    (Phase.PROGRESSING, Event.ABORT, RollBack, Phase.ABORTED),
    (Phase.AWAITING_APPROVAL, Event.APPROVE, HoldUntil, Phase.AWAITING_APPROVAL),
]


class TestOperator:
    @pytest.mark.parametrize(("phase", "event", "kind", "target"), OPS, ids=str)
    def test_operator(self, phase: Phase, event: Event, kind: type, target: Phase) -> None:
        """Operator events follow the phase table."""
        decision = operator(state(phase=phase), event, reason="test")
        assert isinstance(decision, kind)
        assert decision.state.phase is target

    def test_approve_outside_awaiting_is_illegal(self) -> None:
        """Approving a progressing rollout is an illegal move."""
        with pytest.raises(IllegalMove, match="progressing"):
            operator(state(), Event.APPROVE, reason="x")


class TestRobustness:
    def test_refused_data_holds(self) -> None:
        """Data abtest refuses (more successes than trials) holds as a failure, never promotes."""
        broken = Measurement("acc", Subject("m"), WINDOW, Status.OK, value=2.0, sample_size=5000)
        ob = replace(SAME, metrics={**SAME.metrics, "acc": (broken, broken)})
        decision = decide(policy(triggers=[]), state(), ob, now=LATE)
        assert isinstance(decision, HoldUntil)
        assert decision.state.failures == 1


WORSE_PRIMARY = obs((0.8, 0.7), (0.01, 0.01))


class TestTheRule:
    def test_a_worse_primary_rolls_back_before_the_dwell(self) -> None:
        """Harm is a rollback at once, whatever the step or dwell time: a primary metric
        significantly worse (accuracy 80% -> 70%) rolls back 30 s into a 60 s step."""
        decision = decide(policy(triggers=[]), state(), WORSE_PRIMARY, now=EARLY)
        assert isinstance(decision, RollBack)
        assert decision.cause is Cause.HARM
        assert "acc significantly worse" in decision.reason
        assert decision.numbers["metrics"]["acc"]["p_worse"] <= 0.0125

    @pytest.mark.parametrize(
        ("ob", "st", "now", "cause"),
        [
            (SAME, state(), EARLY, Cause.DWELLING),
            (SAME, state(), LATE, Cause.ADVANCED),
            (WORSE_ERRORS, state(), EARLY, Cause.TRIGGER),
            (MISSING, state(), LATE, Cause.MISSING_DATA),
            (FEW, state(), LATE, Cause.COLLECTING),
            (BETTER_80, state(step=1, weight=80.0), LATE, Cause.EFFICACY),
            (SAME_80, state(step=1, weight=80.0), LATE, Cause.AWAITING_EVIDENCE),
        ],
    )
    def test_every_decision_names_its_cause(
        self, ob: Observations, st: RolloutState, now: datetime, cause: Cause
    ) -> None:
        """Causes are typed values, not prose to parse."""
        assert decide(policy(), st, ob, now=now).cause is cause

    def test_timeouts_are_not_evidence(self) -> None:
        """max_duration and a fixed split's end roll back without calling the candidate worse."""
        timeout = decide(policy(max_duration=60), state(), BETTER, now=LATE)
        fixed = policy(strategy={"kind": "fixed", "weight": 50, "duration": 60})
        no_gain = decide(fixed, state(weight=50.0), SAME, now=LATE)
        assert (timeout.cause, no_gain.cause) == (Cause.MAX_DURATION, Cause.NO_GAIN)
        assert not timeout.cause.on_evidence
        assert not no_gain.cause.on_evidence


class TestEvidence:
    def test_a_judged_look_carries_its_state(self) -> None:
        """The verdict's analysis state rides in the next rollout state, and the next look
        keeps its mixture scale and running p-value."""
        first = decide(policy(), state(), SAME, now=EARLY)
        assert first.state.evidence is not None
        acc = first.state.evidence.metrics["acc"]
        assert acc.looks == 1
        second = decide(policy(), first.state, SAME, now=EARLY + timedelta(seconds=10))
        assert second.state.evidence is not None
        again = second.state.evidence.metrics["acc"]
        assert (again.looks, again.tau_worse) == (2, acc.tau_worse)
        assert again.p_worse <= acc.p_worse

    def test_a_new_step_closes_the_last_one(self) -> None:
        """After an advance the previous step's data become a closed stratum, combined with
        the new step's by inverse-variance weights (not thrown away)."""
        advanced = decide(policy(), state(), SAME, now=LATE)
        assert isinstance(advanced, SetWeight)
        later = LATE + timedelta(seconds=20)
        decision = decide(policy(), advanced.state, SAME_80, now=later)
        assert decision.state.evidence is not None
        acc = decision.state.evidence.metrics["acc"]
        assert len(acc.strata) == 1
        assert acc.current is not None

    def test_missing_data_keeps_the_evidence(self) -> None:
        """A look without data holds and keeps the carried state as it was."""
        first = decide(policy(), state(), SAME, now=EARLY)
        gap = decide(policy(), first.state, MISSING, now=EARLY + timedelta(seconds=10))
        assert isinstance(gap, HoldUntil)
        assert gap.state.evidence == first.state.evidence


class TestInvalidData:
    @pytest.mark.parametrize(
        ("metric", "bad", "said"),
        [
            ("acc", Measurement("acc", Subject("m"), WINDOW, Status.OK, value=1.5,
                                sample_size=1000), "outside [0, 1]"),
            ("acc", Measurement("acc", Subject("m"), WINDOW, Status.OK, value=0.5,
                                sample_size=-4), "negative sample size"),
            ("units", Measurement("units", Subject("m"), WINDOW, Status.OK, value=-3.0,
                                  sample_size=0), "negative unit count -3"),
        ],
    )  # fmt: skip
    def test_invalid_values_are_missing_data(
        self, metric: str, bad: Measurement, said: str
    ) -> None:
        """Negative counts and rates outside [0, 1] hold as missing data (counted towards
        failure_limit), never a verdict. (Fractional unit counts are PromQL's
        extrapolating increase(), and are rounded.)"""
        if metric == "units":
            assert SAME.units is not None
            ob = replace(SAME, units=(SAME.units[0], bad))
        else:
            ob = replace(SAME, metrics={**SAME.metrics, metric: (SAME.metrics[metric][0], bad)})
        decision = decide(policy(triggers=[]), state(), ob, now=LATE)
        assert isinstance(decision, HoldUntil)
        assert decision.cause is Cause.MISSING_DATA
        assert said in decision.reason
        assert decision.state.failures == 1


class TestFixedModeCanary:
    def test_steps_advance_and_the_last_look_decides_once(self) -> None:
        """With `mode: fixed` a canary still advances without harm; at its last step the
        first look after the dwell is the one efficacy look: no gain rolls back."""
        metrics = [
            {"name": "acc", "source": "s", "query": "accuracy", "kind": "proportion",
             "direction": "higher"},
            {"name": "err", "source": "s", "query": "error_rate", "kind": "proportion",
             "role": "guardrail", "direction": "lower", "margin": 0.01},
        ]  # fmt: skip
        fixed = policy(analysis={"mode": "fixed", "metrics": metrics})
        advanced = decide(fixed, state(), SAME, now=LATE)
        assert isinstance(advanced, SetWeight)
        last = decide(fixed, state(step=1, weight=80.0), SAME_80, now=LATE)
        assert isinstance(last, RollBack)
        assert last.cause is Cause.NO_GAIN
        better = decide(fixed, state(step=1, weight=80.0), BETTER_80, now=LATE)
        assert isinstance(better, Promote)
