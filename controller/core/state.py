"""What the core knows of a rollout and of the world: its state and the observations.

``RolloutState`` is the one representation of a rollout's state: ``decide`` reads and
returns it, and the rollout store keeps it (``controller.adapters.rollout_store``: one
serialiser for the intent and the table). ``Observations`` is what the shell measured
and read for one evaluation (both arms' measurements, the registry's approvals).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from abtest.state import AnalysisState
from controller.core.phases import Phase
from monitors.measurement import Measurement

__all__ = ["Approvals", "ArmPair", "Observations", "RolloutState"]


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Everything ``decide`` needs to know about one rollout, as stored."""

    id: int
    model: str
    control: str
    treatment: str
    phase: Phase
    step: int  # index into analysed_steps(policy); -1 before the first weight
    weight: float  # treatment percent
    started_at: datetime
    step_started_at: datetime
    failures: int = 0  # consecutive evaluations with missing data / errors / inconclusive
    streaks: Mapping[str, int] = field(default_factory=dict)  # trigger -> breaches in a row
    approved: bool = False
    evidence: AnalysisState | None = None  # the last verdict's carried analysis state


ArmPair = tuple[Measurement, Measurement]  # (control, treatment)


@dataclass(frozen=True, slots=True)
class Approvals:
    """The registry's approvals of the treatment for production, as the shell read them.

    ``needed``: approvals still missing under the registry's policy; ``missing``:
    approvers who could still give one; ``rejected``: standing rejections, as
    ``"who: why"``; ``error``: the registry could not be read (never a promotion).
    """

    needed: int = 0
    missing: tuple[str, ...] = ()
    approved_by: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Observations:
    """What the sources measured for both arms since the step started (after settling)."""

    metrics: Mapping[str, ArmPair] = field(default_factory=dict)
    units: ArmPair | None = None
    approval_required: bool = False  # the registry guards production with approvals
    approvals: Approvals = field(default_factory=Approvals)
    clock_stepped: float = 0.0  # seconds the wall clock stepped since the last look (0: none)
