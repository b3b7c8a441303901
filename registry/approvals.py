"""Approval policies and decisions, and the check a promotion must pass.

A policy names who may approve entry into a stage and how many distinct approvals
are needed; a model's own policy overrides the registry-wide one, and the newest
row wins (policies are history, so audit reports can show what applied). Four
eyes: whoever owns or registered a version cannot approve it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from registry.audit import utc
from registry.errors import ApprovalRequired, Conflict, IllegalTransition, InvalidInput
from registry.schema import approvals_t, models_t, policies_t, transitions_t, versions_t


@dataclass(frozen=True, slots=True)
class Policy:
    stage: str
    approvers: tuple[str, ...]
    min_approvals: int
    model: str | None  # None: registry-wide

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "approvers": list(self.approvers),
            "min_approvals": self.min_approvals,
            "model": self.model,
        }


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """One approver's approval or rejection of a version for a stage."""

    name: str
    version: str
    stage: str
    approver: str
    decision: str  # approve | reject
    comments: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "stage": self.stage,
            "approver": self.approver,
            "decision": self.decision,
            "comments": self.comments,
            "at": self.at.isoformat(),
        }


def policy_for(
    conn: sa.Connection, model_id: int | None, stage: str, *, at: datetime | None = None
) -> Policy | None:
    """The policy in force for ``stage`` of this model (its own, else the global one),
    now or as it stood at instant ``at`` (for judging past deployments). A level's
    newest row with ``min_approvals`` 0 is a cleared policy: the model falls back to
    the registry-wide one, and the registry-wide level to none. ``model_id`` None:
    the registry-wide policy alone."""
    p = policies_t.c
    for owner in (model_id, None) if model_id is not None else (None,):
        cond = p.model_id == owner if owner is not None else p.model_id.is_(None)
        query = (
            sa.select(p.approvers, p.min_approvals, models_t.c.name)
            .select_from(policies_t.outerjoin(models_t, models_t.c.id == p.model_id))
            .where(cond, p.stage == stage)
            .order_by(p.id.desc())
            .limit(1)
        )
        if at is not None:
            query = query.where(p.at <= at)
        row = conn.execute(query).first()
        if row is not None:
            if row.min_approvals == 0:
                continue  # cleared at this level (``clear_approval_policy``): the next one
            return Policy(stage, tuple(row.approvers), int(row.min_approvals), row.name)
    return None


def validate_policy(approvers: object, min_approvals: object) -> tuple[list[str], int]:
    if isinstance(approvers, str) or not isinstance(approvers, list | tuple):
        raise InvalidInput("approvers must be a list of identities (e.g. e-mail addresses)")
    people = [a.strip() for a in approvers if isinstance(a, str) and a.strip()]
    if len(people) != len(approvers) or not people:
        raise InvalidInput("approvers must be a non-empty list of non-empty strings")
    if len(set(people)) != len(people):
        raise InvalidInput("approvers contain duplicates")
    if not isinstance(min_approvals, int) or isinstance(min_approvals, bool):
        raise InvalidInput("min_approvals must be an integer")
    if not 1 <= min_approvals <= len(people):
        raise InvalidInput(
            f"min_approvals must be between 1 and the number of approvers ({len(people)}), "
            f"got {min_approvals}"
        )
    return people, min_approvals


def registrant(conn: sa.Connection, version_id: int) -> str | None:
    t = transitions_t.c
    return conn.execute(
        sa.select(t.actor)
        .where(t.version_id == version_id, t.kind == "register")
        .order_by(t.id)
        .limit(1)
    ).scalar()


def decisions(
    conn: sa.Connection, version_id: int, stage: str | None = None
) -> list[ApprovalDecision]:
    a = approvals_t.c
    query = (
        sa.select(
            models_t.c.name,
            versions_t.c.major,
            versions_t.c.minor,
            versions_t.c.patch,
            a.stage,
            a.approver,
            a.decision,
            a.comments,
            a.at,
        )
        .join(versions_t, versions_t.c.id == a.version_id)
        .join(models_t, models_t.c.id == versions_t.c.model_id)
        .where(a.version_id == version_id)
        .order_by(a.id)
    )
    if stage is not None:
        query = query.where(a.stage == stage)
    return [
        ApprovalDecision(
            r.name,
            f"v{r.major}.{r.minor}.{r.patch}",
            r.stage,
            r.approver,
            r.decision,
            r.comments,
            utc(r.at),
        )
        for r in conn.execute(query)
    ]


def record(
    conn: sa.Connection,
    *,
    version_id: int,
    stage: str,
    approver: str,
    decision: str,
    comments: str | None,
    now: datetime,
) -> None:
    existing = conn.execute(
        sa.select(approvals_t.c.decision).where(
            approvals_t.c.version_id == version_id,
            approvals_t.c.stage == stage,
            approvals_t.c.approver == approver,
        )
    ).scalar()
    if existing is not None:
        raise Conflict(f"{approver} has already recorded '{existing}' for this version and stage")
    conn.execute(
        approvals_t.insert().values(
            version_id=version_id,
            stage=stage,
            approver=approver,
            decision=decision,
            comments=comments,
            at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class Status:
    """Where a version stands with the approvals for entering ``stage``.

    ``needed``: approvals still missing (0 when enough are recorded or no policy
    guards the stage); ``missing``: listed approvers who could still give one;
    ``rejected``: standing rejections, which block the stage whatever the count.
    """

    stage: str
    policy: Policy | None
    approved_by: tuple[str, ...]
    needed: int
    missing: tuple[str, ...]
    rejected: tuple[ApprovalDecision, ...]

    @property
    def required(self) -> bool:
        return self.policy is not None


def status(
    conn: sa.Connection,
    *,
    model_id: int,
    version_id: int,
    owner: str | None,
    stage: str,
    explicit: bool = False,
) -> Status:
    """Judge the recorded approvals of a version against the policy for ``stage``.

    ``explicit`` (the seed's ``approval_required=True``) demands at least one
    approval even where no policy guards the stage. Approvals by the version's
    owner or registrant, or (under a policy) by someone off its list, do not count.
    """
    policy = policy_for(conn, model_id, stage)
    recorded = decisions(conn, version_id, stage)
    rejected = tuple(d for d in recorded if d.decision == "reject")
    author = {owner, registrant(conn, version_id)} - {None}
    approved = {d.approver for d in recorded if d.decision == "approve"} - author
    if policy is not None:
        approved &= set(policy.approvers)
        needed = policy.min_approvals - len(approved)
        missing = tuple(a for a in policy.approvers if a not in approved and a not in author)
    else:
        needed = 1 - len(approved) if explicit else 0
        missing = ()
    by = tuple(d.approver for d in recorded if d.approver in approved and d.decision == "approve")
    return Status(stage, policy, by, max(needed, 0), missing, rejected)


def check_promotion(
    conn: sa.Connection,
    *,
    ref: str,
    model_id: int,
    version_id: int,
    owner: str | None,
    to_stage: str,
    explicit: bool,
) -> Policy | None:
    """Raise ``ApprovalRequired`` unless the version may enter ``to_stage`` now.

    ``explicit`` (the seed's ``approval_required=True``) demands at least one
    approval even where no policy guards the stage.
    """
    found = status(
        conn,
        model_id=model_id,
        version_id=version_id,
        owner=owner,
        stage=to_stage,
        explicit=explicit,
    )
    # A standing rejection blocks even where no policy asks for approvals.
    if found.rejected:
        who = ", ".join(f"{d.approver} ({d.comments or 'no comment'})" for d in found.rejected)
        raise IllegalTransition(
            f"{ref} was rejected for {to_stage} by {who}", from_stage=None, to_stage=to_stage
        )
    if found.needed > 0:
        needed = found.needed
        from_whom = (
            f" from: {', '.join(found.missing)}"
            if found.missing
            else " from someone other than its author"
        )
        raise ApprovalRequired(
            f"{ref} needs {needed} more approval{'s' if needed > 1 else ''} to enter "
            f"{to_stage}{from_whom}",
            to_stage=to_stage,
            missing=list(found.missing),
            needed=needed,
        )
    return found.policy
