"""The shell's side of approvals: reading them from the registry, noticing overdue waits.

``decide`` judges approvals but cannot read the registry, and it has no memory of
what was already reported; these two helpers give it the first and the shell the
second. An overdue wait is reported once: the decisions table remembers it (each
approval-wait evaluation stores its ``approval`` numbers, ``overdue`` included),
so a restarted daemon does not report it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from controller.core.decide import Approvals, Decision
from controller.core.phases import Event, Phase
from controller.store import DecisionRecord
from registry import ModelRegistry, RegistryError

__all__ = ["newly_overdue", "read_approvals"]


def read_approvals(registry: ModelRegistry, model: str, version: str) -> tuple[bool, Approvals]:
    """Whether the registry guards production for ``model``, and what it holds for
    ``version``; a registry failure, or a database that cannot be read (locked,
    damaged), is data (``Approvals.error``, never a promotion), not an exception."""
    try:
        status = registry.approval_status(model, version, "production")
    except RegistryError as exc:
        return False, Approvals(error=str(exc))
    except sa.exc.SQLAlchemyError as exc:  # first line only: the SQL would drown the reason
        return False, Approvals(error=str(exc).splitlines()[0])
    rejected = tuple(f"{d.approver}: {d.comments or 'no reason given'}" for d in status.rejected)
    return status.required, Approvals(
        needed=status.needed,
        missing=status.missing,
        approved_by=status.approved_by,
        rejected=rejected,
    )


def _overdue(numbers: object) -> bool | None:
    """The ``overdue`` flag of an approval-wait evaluation; None for other decisions."""
    if not isinstance(numbers, dict):
        return None
    approval = numbers.get("approval")
    if not isinstance(approval, dict):
        return None
    return bool(approval.get("overdue"))


def newly_overdue(decision: Decision, earlier: Sequence[DecisionRecord]) -> bool:
    """True when ``decision`` is the first evaluation of this wait to find it overdue.

    ``earlier``: the rollout's stored decisions, oldest first. The newest earlier
    approval-wait evaluation (operator actions in between carry no ``approval``
    numbers) decides: overdue there means already reported. A decision that
    entered the wait ends the search: an older wait is not this one.
    """
    if decision.state.phase is not Phase.AWAITING_APPROVAL or not _overdue(dict(decision.numbers)):
        return False
    for record in reversed(earlier):
        if record.event == Event.AWAIT_APPROVAL.value:
            return True
        flag = _overdue(dict(record.numbers))
        if flag is not None:
            return not flag
    return True
