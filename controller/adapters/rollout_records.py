"""A rollout as stored: its state, its pending intent, its decisions, and the one
serialiser of the state (``state_to_dict``/``state_from_dict``; the table's columns,
``state_columns``, are a thin layer over it). ``RolloutStore`` reads and writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from abtest.state import AnalysisState
from controller.adapters.epoch import from_epoch, to_epoch
from controller.core.phases import ACTIVE, Phase
from controller.core.state import RolloutState

__all__ = [
    "STATE_COLUMNS",
    "DecisionRecord",
    "Intent",
    "RolloutRecord",
    "state_columns",
    "state_from_dict",
    "state_to_dict",
]


def state_to_dict(state: RolloutState) -> dict[str, Any]:
    return {
        "phase": state.phase.value,
        "step": state.step,
        "weight": state.weight,
        "started_at": to_epoch(state.started_at),
        "step_started_at": to_epoch(state.step_started_at),
        "failures": state.failures,
        "streaks": dict(state.streaks),
        "approved": state.approved,
        "evidence": None if state.evidence is None else state.evidence.to_dict(),
    }


def state_from_dict(data: Mapping[str, Any], rollout: RolloutState) -> RolloutState:
    """``state_to_dict``'s inverse; identity (id, model, arms) comes from ``rollout``."""
    evidence = data.get("evidence")
    return replace(
        rollout,
        phase=Phase(data["phase"]),
        step=int(data["step"]),
        weight=float(data["weight"]),
        started_at=from_epoch(float(data["started_at"])),
        step_started_at=from_epoch(float(data["step_started_at"])),
        failures=int(data["failures"]),
        streaks=dict(data["streaks"]),
        approved=bool(data["approved"]),
        evidence=_evidence_of(evidence),
    )


def _evidence_of(data: object) -> AnalysisState | None:
    """The stored analysis state (a mapping, or its JSON text); an unreadable one
    restarts the tests, which is conservative: it never carries a wrong state."""
    try:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, Mapping):
            return None
        return AnalysisState.from_dict(data)
    except ValueError:  # json.JSONDecodeError included
        return None


@dataclass(frozen=True, slots=True)
class Intent:
    """A decision recorded but not yet confirmed: the state to reach, and its route revision."""

    decision_id: int
    action: str
    state: RolloutState
    revision: int
    next_eval_at: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "decision_id": self.decision_id,
                "action": self.action,
                "state": state_to_dict(self.state),
                "revision": self.revision,
                "next_eval_at": self.next_eval_at,
            }
        )

    @classmethod
    def from_json(cls, text: str, *, rollout: RolloutState) -> Intent:
        """The stored intent of ``rollout`` (whose identity its state keeps)."""
        data = json.loads(text)
        return cls(
            int(data["decision_id"]),
            str(data["action"]),
            state_from_dict(data["state"], rollout),
            int(data["revision"]),
            float(data["next_eval_at"]),
        )


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One stored rollout: its ``RolloutState`` (what ``decide`` sees) and the shell's
    bookkeeping around it (digests, schedule, route revision, pending intent)."""

    state: RolloutState
    control_digest: str | None
    treatment_digest: str
    next_eval_at: datetime
    revision: int
    intent: Intent | None
    reason: str
    updated_at: datetime
    finished_at: datetime | None

    # The state's fields, read through the record (``record.phase`` is ``record.state.phase``).
    @property
    def id(self) -> int:
        return self.state.id

    @property
    def model(self) -> str:
        return self.state.model

    @property
    def control(self) -> str:
        return self.state.control

    @property
    def treatment(self) -> str:
        return self.state.treatment

    @property
    def phase(self) -> Phase:
        return self.state.phase

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def weight(self) -> float:
        return self.state.weight

    @property
    def started_at(self) -> datetime:
        return self.state.started_at

    @property
    def step_started_at(self) -> datetime:
        return self.state.step_started_at

    @property
    def failures(self) -> int:
        return self.state.failures

    @property
    def streaks(self) -> Mapping[str, int]:
        return self.state.streaks

    @property
    def approved(self) -> bool:
        return self.state.approved

    @property
    def evidence(self) -> AnalysisState | None:
        return self.state.evidence

    @property
    def active(self) -> bool:
        return self.state.phase in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "id": state.id,
            "model": state.model,
            "control": state.control,
            "treatment": state.treatment,
            "control_digest": self.control_digest,
            "treatment_digest": self.treatment_digest,
            "phase": state.phase.value,
            "step": state.step,
            "weight": state.weight,
            "started_at": state.started_at.isoformat(),
            "step_started_at": state.step_started_at.isoformat(),
            "next_eval_at": self.next_eval_at.isoformat(),
            "failures": state.failures,
            "approved": state.approved,
            "revision": self.revision,
            "pending_intent": self.intent.action if self.intent else None,
            "reason": self.reason,
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def from_row(cls, row: Any) -> RolloutRecord:
        identity = RolloutState(
            id=row.id, model=row.model, control=row.control, treatment=row.treatment,
            phase=Phase.PENDING, step=-1, weight=0.0,
            started_at=from_epoch(row.started_at), step_started_at=from_epoch(row.step_started_at),
        )  # fmt: skip
        columns = {
            **{name: getattr(row, name) for name in STATE_COLUMNS},
            "streaks": json.loads(row.streaks),
            "evidence": row.evidence or None,  # JSON text: parsed by state_from_dict
        }
        state = state_from_dict(columns, identity)
        return cls(
            state=state,
            control_digest=row.control_digest,
            treatment_digest=row.treatment_digest,
            next_eval_at=from_epoch(row.next_eval_at),
            revision=row.revision,
            intent=Intent.from_json(row.intent, rollout=state) if row.intent else None,
            reason=row.reason,
            updated_at=from_epoch(row.updated_at),
            finished_at=from_epoch(row.finished_at) if row.finished_at is not None else None,
        )


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One stored decision with its reasons and numbers."""

    id: int
    rollout_id: int
    at: datetime
    action: str
    event: str
    phase_from: str
    phase_to: str
    step: int
    weight: float
    reasons: tuple[str, ...]
    numbers: Mapping[str, Any]
    applied: bool
    member: str | None = None  # the member that recorded it (several daemons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rollout_id": self.rollout_id,
            "at": self.at.isoformat(),
            "action": self.action,
            "event": self.event,
            "phase_from": self.phase_from,
            "phase_to": self.phase_to,
            "step": self.step,
            "weight": self.weight,
            "reasons": list(self.reasons),
            "numbers": dict(self.numbers),
            "applied": self.applied,
            "member": self.member,
        }


STATE_COLUMNS = ("phase", "step", "weight", "started_at", "step_started_at", "failures",
                  "streaks", "approved", "evidence")  # fmt: skip


def state_columns(state: RolloutState) -> dict[str, Any]:
    """The rollout table's columns for ``state``: ``state_to_dict`` with the mappings as
    JSON text."""
    values = state_to_dict(state)
    values["streaks"] = json.dumps(values["streaks"], sort_keys=True)
    values["evidence"] = None if values["evidence"] is None else json.dumps(values["evidence"])
    return values
