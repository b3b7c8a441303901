"""The decisions ``decide`` and ``operator`` return: the next state, the phase event, the
reasons in words, the numbers behind them and a typed ``Cause``.

The variant says what the shell must do (``action``): set a weight, promote, roll
back, pause, await approval, or hold. Human text is in ``reasons``; anything a machine
reads (metrics labels, notifications, ``policy simulate``) reads ``cause`` and
``numbers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from controller.core.causes import Cause
from controller.core.phases import Event
from controller.core.state import RolloutState

__all__ = [
    "AwaitApproval",
    "Decision",
    "HoldUntil",
    "Pause",
    "Promote",
    "Release",
    "RollBack",
    "SetWeight",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """Base of the decision variants: next state, event, reasons, numbers and cause."""

    action: ClassVar[str] = "decision"
    event: Event
    state: RolloutState
    reasons: tuple[str, ...]
    numbers: Mapping[str, Any] = field(default_factory=dict)
    cause: Cause = Cause.OPERATOR

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class SetWeight(Decision):
    """Route ``state.weight`` percent to the treatment (start or next step)."""

    action: ClassVar[str] = "set_weight"


@dataclass(frozen=True, slots=True)
class Promote(Decision):
    """Make the treatment production and send it all traffic."""

    action: ClassVar[str] = "promote"


@dataclass(frozen=True, slots=True)
class RollBack(Decision):
    """Send all traffic back to the control and move the treatment out of staging."""

    action: ClassVar[str] = "rollback"


@dataclass(frozen=True, slots=True)
class Release(Decision):
    """End without moving the registry: the registry moved on without this rollout
    (``controller.core.superseded``), so serving follows its production version."""

    action: ClassVar[str] = "release"


@dataclass(frozen=True, slots=True)
class Pause(Decision):
    """Stop evaluating; keep the weights."""

    action: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class AwaitApproval(Decision):
    """Promotion is due but needs an approval first; keep the weights."""

    action: ClassVar[str] = "await_approval"


@dataclass(frozen=True, slots=True)
class HoldUntil(Decision):
    """Nothing to change; evaluate again at ``until`` (or the next interval)."""

    action: ClassVar[str] = "hold"
    until: datetime | None = None
