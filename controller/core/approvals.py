"""Approval waits the shell must report: a wait past ``approval.max_wait`` is reported
once, and the decisions table is the memory of that (each approval-wait evaluation
stores its ``approval`` numbers, ``overdue`` included), so a restarted daemon does not
report it again. Pure: the shell passes the stored decisions in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from controller.core.decisions import Decision
from controller.core.phases import Event, Phase

__all__ = ["StoredDecision", "newly_overdue"]


class StoredDecision(Protocol):
    """What this rule reads of a stored decision."""

    @property
    def event(self) -> str: ...

    @property
    def numbers(self) -> Mapping[str, Any]: ...


def _overdue(numbers: object) -> bool | None:
    """The ``overdue`` flag of an approval-wait evaluation; None for other decisions."""
    if not isinstance(numbers, Mapping):
        return None
    approval = numbers.get("approval")
    if not isinstance(approval, Mapping):
        return None
    return bool(approval.get("overdue"))


def newly_overdue(decision: Decision, earlier: Sequence[StoredDecision]) -> bool:
    """True when ``decision`` is the first evaluation of this wait to find it overdue.

    ``earlier``: the rollout's stored decisions, oldest first. The newest earlier
    approval-wait evaluation (operator actions in between carry no ``approval``
    numbers) decides: overdue there means already reported. A decision that
    entered the wait ends the search: an older wait is not this one.
    """
    if decision.state.phase is not Phase.AWAITING_APPROVAL or not _overdue(decision.numbers):
        return False
    for record in reversed(earlier):
        if record.event == Event.AWAIT_APPROVAL.value:
            return True
        flag = _overdue(record.numbers)
        if flag is not None:
            return not flag
    return True
