"""Rollout phases and the legal moves between them: one table, no I/O.

    pending ──start──> progressing ──advance/hold──> progressing
                          │  ├──await_approval──> awaiting_approval ──approve──> promoted
                          │  │                                       ├──promote──> promoted
                          │  │                                       └──reject──> rolled_back
                          │  ├──promote──> promoted
                          │  ├──rollback──> rolled_back
                          │  └──pause──> paused ──resume──> progressing
                          └──abort──> aborted

A pending rollout (no weight set yet) may also be rolled back (an alert) or aborted.
A wait for approval ends in ``promote`` (no ``approve``) when approval turns out not
to be required: the wait began because the registry's approvals could not be read.
An approver's ``reject`` rolls back any active rollout (the candidate is vetoed).
``promoted``, ``rolled_back`` and ``aborted`` are terminal. ``move(phase, event)``
returns the next phase or raises ``IllegalMove`` naming both.
"""

from __future__ import annotations

from enum import StrEnum

from controller.errors import IllegalMove

__all__ = ["ACTIVE", "TERMINAL", "TRANSITIONS", "Event", "Phase", "move"]


class Phase(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class Event(StrEnum):
    START = "start"  # first weight set
    ADVANCE = "advance"  # next canary step
    HOLD = "hold"  # keep the current weights, evaluate again later
    PROMOTE = "promote"
    AWAIT_APPROVAL = "await_approval"
    APPROVE = "approve"
    REJECT = "reject"  # an approver vetoes the candidate: roll back
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


P, E = Phase, Event
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (P.PENDING, E.START): P.PROGRESSING,
    (P.PENDING, E.HOLD): P.PENDING,
    (P.PENDING, E.ROLLBACK): P.ROLLED_BACK,
    (P.PENDING, E.ABORT): P.ABORTED,
    (P.PROGRESSING, E.ADVANCE): P.PROGRESSING,
    (P.PROGRESSING, E.HOLD): P.PROGRESSING,
    (P.PROGRESSING, E.PROMOTE): P.PROMOTED,
    (P.PROGRESSING, E.AWAIT_APPROVAL): P.AWAITING_APPROVAL,
    (P.PROGRESSING, E.ROLLBACK): P.ROLLED_BACK,
    (P.PROGRESSING, E.PAUSE): P.PAUSED,
    (P.PROGRESSING, E.ABORT): P.ABORTED,
    (P.PAUSED, E.RESUME): P.PROGRESSING,
    (P.PAUSED, E.HOLD): P.PAUSED,
    (P.PAUSED, E.ROLLBACK): P.ROLLED_BACK,
    (P.PAUSED, E.ABORT): P.ABORTED,
    (P.AWAITING_APPROVAL, E.APPROVE): P.PROMOTED,
    (P.AWAITING_APPROVAL, E.PROMOTE): P.PROMOTED,  # approval was not required after all
    (P.AWAITING_APPROVAL, E.HOLD): P.AWAITING_APPROVAL,
    (P.AWAITING_APPROVAL, E.ROLLBACK): P.ROLLED_BACK,
    (P.AWAITING_APPROVAL, E.PAUSE): P.PAUSED,
    (P.AWAITING_APPROVAL, E.ABORT): P.ABORTED,
    (P.PENDING, E.REJECT): P.ROLLED_BACK,
    (P.PROGRESSING, E.REJECT): P.ROLLED_BACK,
    (P.PAUSED, E.REJECT): P.ROLLED_BACK,
    (P.AWAITING_APPROVAL, E.REJECT): P.ROLLED_BACK,
}
del P, E

TERMINAL: frozenset[Phase] = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})
ACTIVE: frozenset[Phase] = frozenset(Phase) - TERMINAL


def move(phase: Phase | str, event: Event | str) -> Phase:
    """The phase after ``event`` in ``phase``; ``IllegalMove`` when the table has no row."""
    try:
        key = (Phase(phase), Event(event))
    except ValueError:
        raise IllegalMove(str(phase), str(event)) from None
    try:
        return TRANSITIONS[key]
    except KeyError:
        raise IllegalMove(key[0].value, key[1].value) from None
