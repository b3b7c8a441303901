"""Changes to an existing version: stage moves, rollback, its signature, deprecation.

A move and everything it implies (archiving the previous production version, the
transition rows, the audit events, the deployment's lineage node) commit in one
transaction. These are the operations after which ``ModelRegistry`` drops its
resolve cache; the signature and deprecation changes live here because they are
the other edits of a version that already exists and share its lookup.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable, Mapping
from datetime import date, datetime

import sqlalchemy as sa

from registry import approvals, lineage, names, queries
from registry import files as vfiles
from registry.errors import (
    Conflict,
    IllegalTransition,
    IncompatibleVersion,
    InvalidInput,
    VersionNotFound,
)
from registry.instants import parse_instant
from registry.limits import DEFAULT_LIMITS, InputLimits
from registry.ops.common import check_signature, locate
from registry.records import ModelVersion
from registry.schema import deprecations_t, files_t, transitions_t, versions_t
from registry.stages import LEGAL, check_move, last_stable, stage_name
from registry.store import Store, Tx
from registry.versions import Bump, SemVer, bump_between, required_bump, split_model_ref

v = versions_t.c
# A stage move's statements, built once (building one costs more than running it).
_PRODUCTION = sa.select(v.id, v.major, v.minor, v.patch).where(
    v.model_id == sa.bindparam("mid"), v.stage == "production"
)
_SET_STAGE = versions_t.update().where(v.id == sa.bindparam("vid"))
_INSERT_TRANSITION = transitions_t.insert()


def _caller_guard(store: Store) -> Callable[[sa.Connection, str], None]:
    """``store.stage_guard`` as the calling thread would run it. A write may be run by
    another thread (the group commit's leader: ``Store.write``), and a guard may read
    its caller's context: a controller fences a move with the leases its unit of
    work began under (``Membership.pinned``), not the leader's."""
    check = store.stage_guard
    if check is None:
        return lambda conn, name: None
    caller = contextvars.copy_context()
    return lambda conn, name: caller.run(check, conn, name)


def promote_model(
    store: Store,
    name: str,
    version: str | SemVer,
    from_stage: str | None,
    to_stage: str,
    reason: str | None,
    *,
    force: bool,
    approval_required: bool,
    actor: str | None,
    default_actor: str,
    environment: str | None,
) -> ModelVersion:
    """``ModelRegistry.promote_model``; ``environment`` names the deployment's node."""
    names.model_name(name)
    number = SemVer.parse(version)
    target = stage_name(to_stage)
    expected = stage_name(from_stage) if from_stage is not None else None
    who = names.actor(actor) if actor else default_actor
    guard = _caller_guard(store)

    def op(tx: Tx) -> ModelVersion:
        guard(tx.conn, name)
        mid, vid, current = locate(tx.conn, name, number)
        if expected is not None and current != expected:
            raise IllegalTransition(
                f"{name} {number} is in {current!r}, not {expected!r}",
                from_stage=current,
                to_stage=target,
            )
        check_move(current, target, force=force, reason=reason, ref=f"{name} {number}")
        owner = tx.conn.execute(sa.select(v.owner).where(v.id == vid)).scalar()
        approvals.check_promotion(
            tx.conn,
            ref=f"{name}-{number}",
            model_id=mid,
            version_id=vid,
            owner=owner,
            to_stage=target,
            explicit=approval_required,
        )
        kind = "force" if force and (current, target) not in LEGAL else "promote"
        if target == "production":
            _archive_production(tx, mid, name, who, f"replaced by {number}", "promote")
        _move(tx, mid, vid, name, number, current, target, kind, who, reason)
        _record_deployment(tx, name, number, target, who, environment)
        return queries.find_version(tx.conn, name, version=number)

    return store.write(op)


def rollback(
    store: Store,
    name: str,
    to_version: str | SemVer | None,
    *,
    reason: str,
    actor: str | None,
    default_actor: str,
    environment: str | None,
) -> ModelVersion:
    """``ModelRegistry.rollback``: back to a version that has been in production."""
    names.model_name(name)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("rollback needs a reason")
    wanted = SemVer.parse(to_version) if to_version is not None else None
    who = names.actor(actor) if actor else default_actor
    guard = _caller_guard(store)

    def op(tx: Tx) -> ModelVersion:
        conn = tx.conn
        guard(conn, name)
        mid = queries.model_id(conn, name)
        current = conn.execute(_PRODUCTION, {"mid": mid}).first()
        if current is None:
            raise IllegalTransition(
                f"{name!r} has no production version to roll back",
                from_stage=None,
                to_stage="production",
            )
        cur_ver = SemVer(current.major, current.minor, current.patch)
        if wanted is None:
            target = last_stable(queries.history(conn, name, mid=mid), cur_ver)
            if target is None:
                raise VersionNotFound(
                    f"{name!r} has no earlier production version to roll back to; name one "
                    "that was in production (to_version=, or --to on the command line)"
                )
        else:
            target = wanted
            if not _was_in_production(conn, mid, target):
                raise IllegalTransition(
                    f"{name} {target} has never been in production, so it is not a "
                    "rollback target; promote it (approvals apply) instead",
                    from_stage=None,
                    to_stage="production",
                )
        if target == cur_ver:
            raise IllegalTransition(
                f"{name} {target} is already in production",
                from_stage="production",
                to_stage="production",
            )
        _, tid, tstage = locate(conn, name, target, mid=mid)
        _move(
            tx,
            mid,
            current.id,
            name,
            cur_ver,
            "production",
            "archived",
            "rollback",
            who,
            reason,
        )
        _move(tx, mid, tid, name, target, tstage, "production", "rollback", who, reason)
        _record_deployment(tx, name, target, "production", who, environment)
        return queries.find_version(conn, name, version=target, mid=mid)

    return store.write(op)


def set_model_signature(
    store: Store,
    model: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str] | None,
    *,
    version: str | SemVer | None,
    actor: str | None,
    default_actor: str,
    limits: InputLimits = DEFAULT_LIMITS,
) -> ModelVersion:
    """``ModelRegistry.set_model_signature``: the registration's bump rule applies."""
    if version is None:
        name, number = split_model_ref(model)
    else:
        name, number = model, SemVer.parse(version)
    names.model_name(name)
    sig = check_signature({"inputs": inputs, "outputs": outputs or {}}, limits)
    assert sig is not None
    who = names.actor(actor) if actor else default_actor

    def op(tx: Tx) -> ModelVersion:
        conn = tx.conn
        _, vid, _ = locate(conn, name, number)
        row = conn.execute(sa.select(v.signature, v.parent_id).where(v.id == vid)).one()
        if row.parent_id is not None:
            parent = conn.execute(
                sa.select(v.major, v.minor, v.patch, v.signature).where(v.id == row.parent_id)
            ).one()
            report = required_bump(None, None, parent.signature, sig)
            got = bump_between(SemVer(parent.major, parent.minor, parent.patch), number)
            if got is not None and got < report.bump:
                diffs = report.breaking if report.bump is Bump.MAJOR else report.additive
                raise IncompatibleVersion(
                    f"signature change needs a {report.bump.label} bump over "
                    f"v{parent.major}.{parent.minor}.{parent.patch}: " + "; ".join(diffs),
                    diffs,
                )
        conn.execute(versions_t.update().where(v.id == vid).values(signature=sig))
        content = vfiles.signature_json(sig)
        conn.execute(
            files_t.delete().where(files_t.c.version_id == vid, files_t.c.name == "signature.json")
        )
        conn.execute(
            files_t.insert().values(
                version_id=vid,
                name="signature.json",
                role="signature",
                digest=hashlib.sha256(content).hexdigest(),
                size=len(content),
                content=content,
            )
        )
        tx.audit(
            actor=who,
            action="set_signature",
            target=f"{name}-{number}",
            before={"signature": row.signature},
            after={"signature": sig},
        )
        return queries.find_version(conn, name, version=number)

    return store.write(op)


def deprecate_model(
    store: Store,
    name: str,
    version: str | SemVer,
    reason: str,
    end_of_life: str | date | datetime | None,
    *,
    actor: str | None,
    default_actor: str,
) -> ModelVersion:
    """``ModelRegistry.deprecate_model``: a reason and an optional end of life."""
    names.model_name(name)
    number = SemVer.parse(version)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("deprecation needs a reason")
    eol = parse_instant(end_of_life) if end_of_life is not None else None
    who = names.actor(actor) if actor else default_actor

    def op(tx: Tx) -> ModelVersion:
        _, vid, _ = locate(tx.conn, name, number)
        exists = tx.conn.execute(
            sa.select(deprecations_t.c.version_id).where(deprecations_t.c.version_id == vid)
        ).first()
        if exists:
            raise Conflict(f"{name} {number} is already deprecated")
        tx.conn.execute(
            deprecations_t.insert().values(
                version_id=vid, reason=reason, end_of_life=eol, actor=who, at=tx.now
            )
        )
        tx.audit(
            actor=who,
            action="deprecate",
            target=f"{name}-{number}",
            after={"end_of_life": eol.isoformat() if eol else None},
            reason=reason,
        )
        return queries.find_version(tx.conn, name, version=number)

    return store.write(op)


# -- the moves themselves -----------------------------------------------------------


def _record_deployment(
    tx: Tx, name: str, number: SemVer, stage: str, who: str, environment: str | None
) -> None:
    if stage in ("staging", "production"):
        lineage.record_deployment(
            tx.conn,
            name=name,
            ref=f"{name}-{number}",
            version=str(number),
            stage=stage,
            environment=environment,
            actor=who,
            now=tx.now,
        )


def _was_in_production(conn: sa.Connection, mid: int, number: SemVer) -> bool:
    t = transitions_t.c
    found = conn.execute(
        sa.select(t.id)
        .join(versions_t, v.id == t.version_id)
        .where(
            t.model_id == mid,
            t.to_stage == "production",
            v.major == number.major,
            v.minor == number.minor,
            v.patch == number.patch,
        )
        .limit(1)
    ).first()
    return found is not None


def _archive_production(tx: Tx, mid: int, name: str, who: str, reason: str, kind: str) -> None:
    current = tx.conn.execute(_PRODUCTION, {"mid": mid}).first()
    if current is not None:
        ver = SemVer(current.major, current.minor, current.patch)
        _move(tx, mid, current.id, name, ver, "production", "archived", kind, who, reason)


def _move(
    tx: Tx,
    mid: int,
    vid: int,
    name: str,
    number: SemVer,
    from_stage: str,
    to_stage: str,
    kind: str,
    who: str,
    reason: str | None,
) -> None:
    tx.conn.execute(_SET_STAGE, {"vid": vid, "stage": to_stage})
    tx.conn.execute(
        _INSERT_TRANSITION,
        {"model_id": mid, "version_id": vid, "from_stage": from_stage, "to_stage": to_stage,
         "kind": kind, "actor": who, "reason": reason, "at": tx.now},
    )  # fmt: skip
    tx.audit(
        actor=who,
        action=kind,
        target=f"{name}-{number}",
        before={"stage": from_stage},
        after={"stage": to_stage},
        reason=reason,
    )
