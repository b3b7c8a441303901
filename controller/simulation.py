"""Simulated rollouts through the real ``decide()``: what a policy does with a good
candidate and with a bad one.

``simulate(policy, scenario, workload, runs=..., seed=...)`` plays ``runs`` rollouts
of the policy exactly as the daemon would (its steps, weights, interval, settle
time, minimum samples, triggers, max duration and analysis, each verdict carried
to the next look), on traffic drawn from ``workload`` at the policy's own splits,
and counts how each one ended: rolled back (on evidence: harm or a trigger; or for
missing data past ``failure_limit`` when the policy says so), promoted on evidence,
or still undecided at the horizon (the daemon then rolls it
back for lack of evidence). Nothing here does I/O or reads a clock; every run has
its own seeded generator, so results do not depend on how runs are split over
processes.

The traffic model, per metric of the policy (what ``decide`` receives from a
source): a proportion with ``direction: lower`` is an error rate (the workload's
``error_rate``); one with ``direction: higher`` is a success rate whose failures
are the errors (``1 - error_rate``); mean, quantile and distribution metrics are
latencies, lognormal with the workload's median and sigma (means from exact
draws up to 64 values per arm and interval, beyond that from the normal law of
the sum and sum of squares with the lognormal's moments). Scenarios scale the
treatment's error rate or latency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from abtest import stats
from abtest.results import Summary
from controller.core import horizon
from controller.core.causes import Cause
from controller.core.decide import (
    AwaitApproval,
    Observations,
    Promote,
    RollBack,
    RolloutState,
    decide,
)
from controller.core.phases import Phase
from controller.core.policy import MetricConfig, PolicyConfig
from controller.scenarios import SCENARIOS, Scenario, Workload
from monitors import Measurement, Status, Subject, Window
from monitors.measurement import SufficientStats

__all__ = [
    "SCENARIOS",
    "RunOutcome",
    "Scenario",
    "ScenarioResult",
    "Workload",
    "run_once",
    "simulate",
    "simulate_all",
]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Outcome = Literal["rollback", "promote", "undecided"]
_EXACT_MEAN_DRAWS = 64


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one simulated rollout ended and when (``look``: evaluations after the start)."""

    outcome: Outcome
    cause: Cause
    look: int
    seconds: float
    baseline_promote: bool | None = None


def _quantile(values: Sequence[int], q: float) -> int | None:
    """The look by which a share ``q`` of these rollouts had ended (a whole look)."""
    return int(np.quantile(values, q, method="higher")) if values else None


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """All runs of one scenario, with the shares and look quantiles a person reads."""

    scenario: Scenario
    outcomes: tuple[RunOutcome, ...]
    horizon_looks: int
    touched: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    def share(self, outcome: Outcome) -> float:
        return sum(o.outcome == outcome for o in self.outcomes) / max(1, self.runs)

    def looks(self, outcome: Outcome) -> list[int]:
        return [o.look for o in self.outcomes if o.outcome == outcome]

    @property
    def baseline_share(self) -> float | None:
        """Share of runs a single fixed-horizon test at the horizon calls better."""
        judged = [o.baseline_promote for o in self.outcomes if o.baseline_promote is not None]
        return sum(judged) / len(judged) if judged else None

    def to_dict(self) -> dict[str, Any]:
        causes: dict[str, int] = {}
        for o in self.outcomes:
            causes[o.cause.value] = causes.get(o.cause.value, 0) + 1
        out: dict[str, Any] = {
            "scenario": self.scenario.key,
            "label": self.scenario.label,
            "runs": self.runs,
            "horizon_looks": self.horizon_looks,
            "touched_metrics": list(self.touched),
            "rollback": round(self.share("rollback"), 4),
            "promote": round(self.share("promote"), 4),
            "undecided": round(self.share("undecided"), 4),
            "causes": dict(sorted(causes.items())),
        }
        outcome: Outcome
        for outcome in ("rollback", "promote"):
            looks = self.looks(outcome)
            out[f"{outcome}_look_p50"] = _quantile(looks, 0.5)
            out[f"{outcome}_look_p90"] = _quantile(looks, 0.9)
        if self.baseline_share is not None:
            out["fixed_horizon_z_test_promote"] = round(self.baseline_share, 4)
        return out


@dataclass(slots=True)
class _Arm:
    """One arm's cumulative data in the current measurement window."""

    units: int = 0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # proportions: x, n
    sums: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # means: n, S, Q
    samples: dict[str, list[float]] = field(default_factory=dict)  # quantile, distribution

    def merge(self, other: _Arm) -> None:
        """Add ``other``'s data to this arm's."""
        self.units += other.units
        for name, (x, n) in other.counts.items():
            old_x, old_n = self.counts.get(name, (0, 0))
            self.counts[name] = (old_x + x, old_n + n)
        for name, (n, s, q) in other.sums.items():
            old = self.sums.get(name, (0, 0.0, 0.0))
            self.sums[name] = (old[0] + n, old[1] + s, old[2] + q)
        for name, values in other.samples.items():
            self.samples.setdefault(name, []).extend(values)


class _Traffic:
    """Draws one run's traffic, per arm and interval, for every metric of the policy."""

    def __init__(
        self, policy: PolicyConfig, scenario: Scenario, workload: Workload, rng: np.random.Generator
    ) -> None:
        self.metrics = policy.analysis.metrics
        self.scenario = scenario
        self.workload = workload
        self.rng = rng
        sigma = workload.latency_sigma
        self.mu = math.log(workload.latency_median)
        # raw moments E[x^k] of the control's lognormal latency
        self.moments = [math.exp(k * self.mu + 0.5 * k * k * sigma * sigma) for k in range(5)]

    def _rate(self, metric: MetricConfig, treatment: bool) -> float:
        err = self.workload.error_rate * (self.scenario.error_factor if treatment else 1.0)
        err = min(err, 1.0)
        return 1.0 - err if metric.direction == "higher" else err

    def _latency_factor(self, metric: MetricConfig, treatment: bool) -> float:
        return (self.scenario.latency_factor if treatment else 1.0) / metric.scale

    def add(self, arm: _Arm, n: int, treatment: bool) -> None:
        arm.units += n
        if n <= 0:
            return
        for m in self.metrics:
            if m.kind == "proportion":
                x = int(self.rng.binomial(n, self._rate(m, treatment)))
                old_x, old_n = arm.counts.get(m.name, (0, 0))
                arm.counts[m.name] = (old_x + x, old_n + n)
            elif m.kind == "mean":
                s, q = self._sums(n, self._latency_factor(m, treatment))
                old = arm.sums.get(m.name, (0, 0.0, 0.0))
                arm.sums[m.name] = (old[0] + n, old[1] + s, old[2] + q)
            else:
                f = self._latency_factor(m, treatment)
                values = f * self.rng.lognormal(self.mu, self.workload.latency_sigma, n)
                arm.samples.setdefault(m.name, []).extend(values.tolist())

    def _sums(self, n: int, factor: float) -> tuple[float, float]:
        """Sum and sum of squares of ``n`` lognormal latencies times ``factor``."""
        if n <= _EXACT_MEAN_DRAWS:
            x = factor * self.rng.lognormal(self.mu, self.workload.latency_sigma, n)
            return float(x.sum()), float((x * x).sum())
        m1, m2, m3, m4 = self.moments[1:5]
        cov = n * np.array([[m2 - m1 * m1, m3 - m1 * m2], [m3 - m1 * m2, m4 - m2 * m2]])
        s, q = self.rng.multivariate_normal([n * m1, n * m2], cov, method="cholesky")
        q = max(q, s * s / n)  # a sum of squares is never below what the mean implies
        return float(s) * factor, float(q) * factor * factor


def _measurements(
    policy: PolicyConfig, arm: _Arm, subject: Subject, window: Window
) -> tuple[dict[str, Measurement], Measurement]:
    """What a source would report for one arm: each metric and the unit count."""
    out: dict[str, Measurement] = {}
    ok = Status.OK
    for m in policy.analysis.metrics:
        if m.kind == "proportion":
            x, n = arm.counts.get(m.name, (0, 0))
            if not n:
                out[m.name] = Measurement.nodata(m.name, subject, window, "no requests")
                continue
            counts = {"x": float(x), "n": float(n)}
            out[m.name] = Measurement(
                m.name, subject, window, ok, value=x / n, sample_size=n, counts=counts
            )
        elif m.kind == "mean":
            n, s, q = arm.sums.get(m.name, (0, 0.0, 0.0))
            if n < 2:
                out[m.name] = Measurement.nodata(m.name, subject, window, "too few requests")
                continue
            mean = s / n
            stats = SufficientStats(n, mean, max(0.0, (q - s * mean) / (n - 1)))
            out[m.name] = Measurement(
                m.name, subject, window, ok, value=mean, sample_size=n, stats=stats
            )
        else:
            values = arm.samples.get(m.name, [])
            if not values:
                out[m.name] = Measurement.nodata(m.name, subject, window, "no requests")
                continue
            out[m.name] = Measurement(
                m.name, subject, window, ok, value=float(np.quantile(values, 0.95)),
                sample_size=len(values), samples=tuple(values),
            )  # fmt: skip
    units = Measurement("units", subject, window, ok, value=float(arm.units), sample_size=arm.units)
    return out, units


def _baseline_metric(policy: PolicyConfig) -> MetricConfig | None:
    for m in policy.analysis.metrics:
        if m.role == "primary" and m.direction is not None and m.kind in ("proportion", "mean"):
            return m
    return None


def _fixed_horizon_better(metric: MetricConfig, control: _Arm, treatment: _Arm) -> bool:
    """The single fixed-horizon test on everything up to the horizon (``abtest.stats``'s
    pooled two-proportion z test, Welch's test for means), two-sided at the metric's
    alpha, with the effect in the good direction."""
    if metric.kind == "proportion":
        xc, nc = control.counts.get(metric.name, (0, 0))
        xt, nt = treatment.counts.get(metric.name, (0, 0))
        if not (nc and nt):
            return False
        result = stats.two_proportions(xc, nc, xt, nt)
    else:
        nc, sc, qc = control.sums.get(metric.name, (0, 0.0, 0.0))
        nt, st, qt = treatment.sums.get(metric.name, (0, 0.0, 0.0))
        if nc < 2 or nt < 2:
            return False
        c, t = Summary.from_sums(nc, sc, qc), Summary.from_sums(nt, st, qt)
        result = stats.welch_from_summary(c.mean, c.var, c.n, t.mean, t.var, t.n)
    good = result.effect if metric.direction == "higher" else -result.effect
    return good > 0 and result.p_value <= metric.alpha


class _Run:
    """One rollout on simulated traffic: the daemon's loop of measure, decide, apply."""

    def __init__(
        self,
        policy: PolicyConfig,
        scenario: Scenario,
        workload: Workload,
        rng: np.random.Generator,
        baseline: bool,
    ) -> None:
        self.policy, self.workload, self.rng, self.baseline = policy, workload, rng, baseline
        self.traffic = _Traffic(policy, scenario, workload, rng)
        start = RolloutState(
            id=1, model="sim", control="control", treatment="treatment", phase=Phase.PENDING,
            step=-1, weight=0.0, started_at=T0, step_started_at=T0,
        )  # fmt: skip
        self.state = decide(policy, start, Observations(), now=T0).state  # START: 1st weight
        self.weight = self.state.weight
        self.arms = (_Arm(), _Arm())  # the current measurement window
        self.totals = (_Arm(), _Arm())  # everything up to the horizon, for the baseline
        self.subjects = (Subject("sim", version="control"), Subject("sim", version="treatment"))
        self.result: RunOutcome | None = None

    def serve(self, look: int, now: datetime) -> None:
        """The interval's requests: into the window after the settle time, and into the
        totals (until the horizon) when the fixed-horizon baseline is wanted."""
        interval = self.policy.interval
        start = self.state.step_started_at + timedelta(seconds=self.policy.settle_seconds)
        measured = (now - max(start, now - timedelta(seconds=interval))).total_seconds()
        counted = measured / interval if measured > 0 else 0.0
        requests = int(self.rng.poisson(self.workload.rps * interval))
        n_t = int(self.rng.binomial(requests, self.weight / 100.0))
        for index, n in ((0, requests - n_t), (1, n_t)):
            kept = round(n * counted) if self.result is None else 0
            fresh = _Arm()
            self.traffic.add(fresh, kept, index == 1)
            self.arms[index].merge(fresh)
            if self.baseline and look <= horizon.planned_looks(self.policy):
                self.traffic.add(fresh, n - kept, index == 1)  # the settle time's requests
                self.totals[index].merge(fresh)

    def look(self, look: int, now: datetime) -> None:
        """Measure the window, decide, and apply the decision."""
        window = Window(end=now, length=timedelta(seconds=self.policy.interval))
        c_metrics, c_units = _measurements(self.policy, self.arms[0], self.subjects[0], window)
        t_metrics, t_units = _measurements(self.policy, self.arms[1], self.subjects[1], window)
        observations = Observations(
            metrics={name: (c_metrics[name], t_metrics[name]) for name in c_metrics},
            units=(c_units, t_units),
        )
        decision = decide(self.policy, self.state, observations, now=now)
        seconds = look * self.policy.interval
        if isinstance(decision, Promote | AwaitApproval):
            self.result = RunOutcome("promote", decision.cause, look, seconds)
        elif isinstance(decision, RollBack):
            on_evidence = decision.cause in (Cause.HARM, Cause.TRIGGER, Cause.MISSING_DATA)
            outcome: Outcome = "rollback" if on_evidence else "undecided"
            self.result = RunOutcome(outcome, decision.cause, look, seconds)
        elif decision.state.step_started_at != self.state.step_started_at:
            self.arms = (_Arm(), _Arm())  # a new split: a new measurement window
            self.weight = decision.state.weight
        self.state = decision.state

    def play(self) -> RunOutcome:
        interval = self.policy.interval
        last = math.ceil(self.policy.max_duration / interval) + 1
        if self.baseline:
            last = max(last, horizon.planned_looks(self.policy))
        for look in range(1, last + 1):
            now = T0 + timedelta(seconds=look * interval)
            self.serve(look, now)
            if self.result is None:
                self.look(look, now)
            elif not self.baseline:
                break
        result = self.result or RunOutcome("undecided", Cause.MAX_DURATION, last, last * interval)
        if self.baseline:
            metric = _baseline_metric(self.policy)
            better = metric is not None and _fixed_horizon_better(metric, *self.totals)
            result = replace(result, baseline_promote=better)
        return result


def run_once(
    policy: PolicyConfig,
    scenario: Scenario,
    workload: Workload,
    rng: np.random.Generator,
    *,
    baseline: bool = False,
) -> RunOutcome:
    """One rollout of ``policy`` on simulated traffic, from its start to its end; with
    ``baseline``, also the fixed-horizon z test on the same traffic up to the horizon."""
    return _Run(policy, scenario, workload, rng, baseline).play()


def _seeds(seed: int, scenario_index: int, runs: Iterable[int]) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, scenario_index, run]) for run in runs]


def simulate(
    policy: PolicyConfig,
    scenario: Scenario,
    workload: Workload,
    *,
    runs: int,
    seed: int = 0,
    baseline: bool = False,
    on_run: Callable[[], None] | None = None,
    first_run: int = 0,
) -> ScenarioResult:
    """``runs`` seeded rollouts of one scenario (runs ``first_run`` to ``first_run +
    runs - 1``: a split over processes gives the same runs)."""
    index = next((i for i, s in enumerate(SCENARIOS) if s.key == scenario.key), len(SCENARIOS))
    outcomes = []
    for rng in _seeds(seed, index, range(first_run, first_run + runs)):
        outcomes.append(run_once(policy, scenario, workload, rng, baseline=baseline))
        if on_run is not None:
            on_run()
    touched = tuple(m.name for m in policy.analysis.metrics if scenario.touches(m))
    return ScenarioResult(scenario, tuple(outcomes), horizon.planned_looks(policy), touched)


def _chunk(
    args: tuple[PolicyConfig, Scenario, Workload, int, int, int, bool],
) -> tuple[str, int, tuple[RunOutcome, ...]]:
    policy, scenario, workload, runs, seed, first, baseline = args
    result = simulate(policy, scenario, workload, runs=runs, seed=seed, baseline=baseline,
                      first_run=first)  # fmt: skip
    return scenario.key, first, result.outcomes


def simulate_all(
    policy: PolicyConfig,
    scenarios: Sequence[Scenario],
    workload: Workload,
    *,
    runs: int,
    seed: int = 0,
    baseline: bool = False,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
    chunk: int = 20,
) -> list[ScenarioResult]:
    """Every scenario, ``runs`` rollouts each, over ``workers`` processes (the same
    results for any number of workers); ``on_progress(n)`` after each ``n`` runs."""
    jobs = [
        (policy, s, workload, min(chunk, runs - first), seed, first, baseline)
        for s in scenarios
        for first in range(0, runs, chunk)
    ]
    parts: dict[str, dict[int, tuple[RunOutcome, ...]]] = {s.key: {} for s in scenarios}

    def done(key: str, first: int, outcomes: tuple[RunOutcome, ...]) -> None:
        parts[key][first] = outcomes
        if on_progress is not None:
            on_progress(len(outcomes))

    if workers <= 1:
        for job in jobs:
            done(*_chunk(job))
    else:
        import concurrent.futures  # noqa: PLC0415 -- only the parallel path needs it
        import multiprocessing  # noqa: PLC0415 -- ditto

        context = multiprocessing.get_context("spawn")  # no inherited threads or locks
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for future in concurrent.futures.as_completed(pool.submit(_chunk, j) for j in jobs):
                done(*future.result())
    results = []
    for s in scenarios:
        outcomes = tuple(o for first in sorted(parts[s.key]) for o in parts[s.key][first])
        touched = tuple(m.name for m in policy.analysis.metrics if s.touches(m))
        results.append(ScenarioResult(s, outcomes, horizon.planned_looks(policy), touched))
    return results
