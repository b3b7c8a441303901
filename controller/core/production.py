"""The production rule: may an alert or the guard roll production back, right now?

Both ask the same question with the same facts, so they get one answer here, and the
actuator (``controller.shell.actuator``) has one production-rollback path with one
idempotence record (the production ledger, ``controller.adapters.production_ledger``).

A rollback is refused (``Refused.why`` says why, in a sentence) when:

- a rollout of the model is active: it judges the model now;
- there is no production version;
- production is not the version the request is about (``expected``: the version the
  guard measured, or the alert's ``version`` label): it moved meanwhile;
- the request's instance (an alert's ``fingerprint@startsAt``) already rolled
  production back: the ledger remembers it, across restarts and a crash between the
  registry's commit and the ledger's;
- an alert without a version label started firing before the current version entered
  production: it is about the version this one replaced, and acting again would walk
  production down the version chain on one incident.

Otherwise ``Allowed``, with the ledger action to reuse when an earlier attempt for the
same request was recorded but its registry call never happened (a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from controller.core.causes import Cause

__all__ = [
    "ActionOutcome",
    "Allowed",
    "ProductionAction",
    "ProductionFacts",
    "Refused",
    "RollbackRequest",
    "may_roll_back",
]


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    """Who asks to roll ``model``'s production back, about which version, and why."""

    model: str
    cause: Cause  # Cause.ALERT or Cause.GUARD
    actor: str  # who the registry records, e.g. "alert:HighErrorRate"
    reason: str  # the human sentence for the registry's history and notifications
    expected: str | None = None  # the production version the request is about
    instance: str | None = None  # an alert's "fingerprint@startsAt": one action per instance
    since: datetime | None = None  # when the alert started firing
    cooldown_until: datetime | None = None  # the guard's cooldown after this action


ActionOutcome = Literal["pending", "rolled_back", "nothing_to_roll_back", "failed"]


@dataclass(frozen=True, slots=True)
class ProductionAction:
    """One production rollback the controller made or began: a row of the production
    ledger. ``pending`` is written before the registry call, so a crash in between is
    seen; ``cooldown_until`` is the guard's (an alert's action has none: its ``at``)."""

    model: str
    at: datetime
    from_version: str
    to_version: str | None
    outcome: ActionOutcome
    reason: str
    cooldown_until: datetime
    cause: Cause = Cause.GUARD
    instance: str | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class ProductionFacts:
    """What the actuator read under the model's lock before asking."""

    rollout_active: bool
    production: str | None  # the current production version
    entered_at: datetime | None  # when it entered production (the registry's history)
    ledger: Sequence[ProductionAction] = ()  # this instance's earlier actions, oldest first


@dataclass(frozen=True, slots=True)
class Allowed:
    """Roll back from ``from_version``; ``resume`` is a pending action to finish."""

    from_version: str
    resume: ProductionAction | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """No effect, and why."""

    why: str


def _same(version: str, label: str) -> bool:
    return label in (version, version.lstrip("v"))


def may_roll_back(request: RollbackRequest, facts: ProductionFacts) -> Allowed | Refused:
    """The rule in the module docstring."""
    if facts.rollout_active:
        return Refused("a rollout is active: it judges the model")
    if facts.production is None:
        return Refused("no production version to roll back")
    version = facts.production
    resume = None
    for entry in facts.ledger:
        if request.instance is None or entry.instance != request.instance:
            continue
        if entry.outcome == "rolled_back" or (
            entry.outcome == "pending" and entry.from_version != version
        ):
            return Refused(
                f"{version} is production after a rollback for this alert instance "
                f"{request.instance}"
            )
        if entry.outcome == "pending":
            resume = entry  # recorded, but production never moved: finish it
    if request.expected is not None and not _same(version, request.expected):
        return Refused(f"production is {version}, not {request.expected}")
    if (
        request.cause is Cause.ALERT
        and request.expected is None
        and request.since is not None
        and facts.entered_at is not None
        and request.since < facts.entered_at
    ):
        return Refused(
            f"{version} entered production at {facts.entered_at.isoformat()}, after this "
            f"alert started firing ({request.since.isoformat()})"
        )
    return Allowed(version, resume)
