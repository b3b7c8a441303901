"""A policy's planned horizon: where the efficacy test's alpha is spent, and how far
along a rollout is.

Pure functions of the policy and elapsed time. The efficacy side of the analysis
spends its alpha over a clock that must not depend on the estimates, so the clock
is the *planned* information: each analysed step contributes its planned time at
its split, after the settle time that is not measured, weighted by ``w (1 - w)``
(the information a difference between arms gains per unit of traffic at split
``w``). A fixed split's horizon is its duration; a canary's is ``max_duration``
(its last step waits there for evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.core.memo import per_policy
from controller.core.policy import CanaryStrategy, PolicyConfig

__all__ = ["harm_fraction", "horizon_seconds", "planned_looks", "progress"]

HARM_FRACTION = 0.1  # the harm test is sharpest by here, or by the first step's end


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a policy implies for the clock, computed once per policy object."""

    horizon: float
    segments: tuple[tuple[float, float, float], ...]
    total: float
    looks: int
    harm: float


def _plan(policy: PolicyConfig) -> _Plan:
    """The policy's plan, computed once per policy object (``controller.core.memo``)."""
    return per_policy("plan", policy, None, lambda: _make_plan(policy))


def _make_plan(policy: PolicyConfig) -> _Plan:
    horizon = _horizon(policy)
    segments = _segments(policy, horizon)
    total = _information(segments, horizon)
    looks = max(1, math.ceil(horizon / policy.interval))
    harm = HARM_FRACTION
    if len(segments) > 1 and total > 0:
        harm = min(HARM_FRACTION, max(_information(segments, segments[0][1]) / total, 1e-4))
    return _Plan(horizon, segments, total, looks, harm)


def _horizon(policy: PolicyConfig) -> float:
    strategy = policy.strategy
    if isinstance(strategy, CanaryStrategy):
        return policy.max_duration
    return min(strategy.duration, policy.max_duration)


def horizon_seconds(policy: PolicyConfig) -> float:
    """Seconds from the start at which the last decision falls."""
    return _plan(policy).horizon


def _segments(policy: PolicyConfig, horizon: float) -> tuple[tuple[float, float, float], ...]:
    """``(start, end, information rate)`` of each planned step, in seconds from the start."""
    strategy = policy.strategy
    if isinstance(strategy, CanaryStrategy):
        steps = [s / 100.0 for s in strategy.steps if s < 100]
        dwell = strategy.step_duration
    else:
        steps, dwell = [strategy.weight / 100.0], horizon
    out = []
    for k, w in enumerate(steps):
        start = k * dwell
        end = horizon if k == len(steps) - 1 else min((k + 1) * dwell, horizon)
        if start >= horizon:
            break
        out.append((start + policy.settle_seconds, end, w * (1.0 - w)))
    return tuple(out)


def _information(segments: tuple[tuple[float, float, float], ...], elapsed: float) -> float:
    return sum(rate * max(0.0, min(elapsed, end) - start) for start, end, rate in segments)


def progress(policy: PolicyConfig, elapsed: float) -> float:
    """The planned information reached after ``elapsed`` seconds, as a fraction of the
    horizon's (0 to 1); a policy whose every step is settling throughout gives 1."""
    plan = _plan(policy)
    if plan.total <= 0:
        return 1.0
    return min(1.0, _information(plan.segments, max(0.0, elapsed)) / plan.total)


def harm_fraction(policy: PolicyConfig) -> float:
    """Where the harm test is sharpest: at the end of the first analysed step (a
    regression should be caught at the smallest exposure), but no later than
    ``HARM_FRACTION`` of the horizon's information."""
    return _plan(policy).harm


def planned_looks(policy: PolicyConfig) -> int:
    """How many evaluations fit in the horizon: the Bonferroni divisor for tests that
    have no sequential form."""
    return _plan(policy).looks
