"""Approvals as registry operations: policies set, decisions recorded, status read.

``registry.approvals`` holds the rules and their tables (which policy is in force,
what a promotion needs); this module is the transactional, audited side that the
``ModelRegistry`` methods call: who may decide, on which version, and the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from registry import approvals, names, queries, schema
from registry.errors import ApprovalRefused, IllegalTransition
from registry.ops.common import locate
from registry.schema import versions_t
from registry.stages import stage_name
from registry.store import Store, Tx
from registry.versions import SemVer

v = versions_t.c


def set_approval_required(
    store: Store,
    stage: str,
    approvers: Sequence[str],
    min_approvals: int,
    *,
    model: str | None,
    actor: str | None,
    default_actor: str,
) -> approvals.Policy:
    """``ModelRegistry.set_approval_required``: a new policy row, audited."""
    target_stage = stage_name(stage)
    people, needed = approvals.validate_policy(list(approvers), min_approvals)
    who = names.actor(actor) if actor else default_actor

    def op(tx: Tx) -> approvals.Policy:
        mid = queries.model_id(tx.conn, model) if model is not None else None
        tx.conn.execute(
            schema.policies_t.insert().values(
                model_id=mid,
                stage=target_stage,
                approvers=people,
                min_approvals=needed,
                actor=who,
                at=tx.now,
            )
        )
        policy = approvals.Policy(target_stage, tuple(people), needed, model)
        tx.audit(
            actor=who,
            action="set_approval_policy",
            target=model or "*",
            after=policy.to_dict(),
        )
        return policy

    return store.write(op)


def approval_policy(
    store: Store, name: str | None, stage: str, *, at: datetime | None
) -> approvals.Policy | None:
    with store.read() as conn:
        mid = queries.model_id(conn, name) if name is not None else None
        return approvals.policy_for(conn, mid, stage_name(stage), at=at)


def clear_approval_policy(
    store: Store, stage: str, *, model: str | None, actor: str | None, default_actor: str
) -> approvals.Policy | None:
    """Clear the policy set at one level (a model, or registry-wide): a row that says
    so, audited. The policy in force afterwards is returned: a model's falls back to
    the registry-wide one."""
    target_stage = stage_name(stage)
    who = names.actor(actor) if actor else default_actor

    def op(tx: Tx) -> approvals.Policy | None:
        mid = queries.model_id(tx.conn, model) if model is not None else None
        before = approvals.policy_for(tx.conn, mid, target_stage)
        tx.conn.execute(
            schema.policies_t.insert().values(
                model_id=mid, stage=target_stage, approvers=[], min_approvals=0, actor=who,
                at=tx.now,
            )
        )  # fmt: skip
        tx.audit(
            actor=who,
            action="clear_approval_policy",
            target=model or "*",
            before=before.to_dict() if before is not None else None,
            after={"stage": target_stage, "model": model, "cleared": True},
        )
        return approvals.policy_for(tx.conn, mid, target_stage)

    return store.write(op)


def decide(
    store: Store,
    name: str,
    version: str | SemVer,
    approver: str,
    comments: str | None,
    stage: str,
    decision: str,
) -> approvals.ApprovalDecision:
    """Record ``approver``'s ``decision`` (approve or reject) on this exact version."""
    names.model_name(name)
    number = SemVer.parse(version)
    person = names.actor(approver)
    target_stage = stage_name(stage)

    def op(tx: Tx) -> approvals.ApprovalDecision:
        mid, vid, current = locate(tx.conn, name, number)
        ref = f"{name}-{number}"
        if current == "archived":
            raise IllegalTransition(
                f"{ref} is archived; archived versions cannot be {decision}d",
                from_stage=current,
                to_stage=target_stage,
            )
        policy = approvals.policy_for(tx.conn, mid, target_stage)
        if policy is not None and person not in policy.approvers:
            raise ApprovalRefused(
                f"{person} is not an approver for {name} {target_stage}; approvers: "
                + ", ".join(policy.approvers)
            )
        owner = tx.conn.execute(sa.select(v.owner).where(v.id == vid)).scalar()
        if person in {owner, approvals.registrant(tx.conn, vid)}:
            raise ApprovalRefused(f"{person} owns or registered {ref} and cannot {decision} it")
        approvals.record(
            tx.conn,
            version_id=vid,
            stage=target_stage,
            approver=person,
            decision=decision,
            comments=comments,
            now=tx.now,
        )
        tx.audit(
            actor=person,
            action=decision,
            target=ref,
            after={"stage": target_stage, "decision": decision},
            reason=comments,
        )
        return approvals.ApprovalDecision(
            name, str(number), target_stage, person, decision, comments, tx.now
        )

    return store.write(op)


def approval_status(store: Store, name: str, version: str | SemVer, stage: str) -> approvals.Status:
    """``ModelRegistry.approval_status``: the promotion's judgement, without promoting."""
    names.model_name(name)
    number = SemVer.parse(version)
    target_stage = stage_name(stage)
    with store.read() as conn:
        mid, vid, _ = locate(conn, name, number)
        owner = conn.execute(sa.select(v.owner).where(v.id == vid)).scalar()
        return approvals.status(conn, model_id=mid, version_id=vid, owner=owner, stage=target_stage)


def decisions(store: Store, name: str, version: str | SemVer) -> list[approvals.ApprovalDecision]:
    """``ModelRegistry.approvals``: every decision on a version, oldest first."""
    names.model_name(name)
    number = SemVer.parse(version)
    with store.read() as conn:
        _, vid, _ = locate(conn, name, number)
        return approvals.decisions(conn, vid)
