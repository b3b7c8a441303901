"""Registering versions: ``register_model`` and ``version_model``.

This is the write path that has to be fast (a durable registration costs a few
hundred microseconds, most of it the commit): its transaction runs prepared
statements on the raw cursor, caches model ids once committed, and does nothing
but insert rows. The bytes are stored beforehand (``preparation``); the number is
chosen, or checked, against the parent's features and signature.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from registry import approvals, fastsql, lineage, names, queries
from registry import files as vfiles
from registry.artifacts import BlobStore, Progress, StoredBlob
from registry.errors import (
    ApprovalRequired,
    Conflict,
    IllegalTransition,
    IncompatibleVersion,
    InvalidInput,
    VersionNotFound,
)
from registry.limits import DEFAULT_LIMITS, InputLimits
from registry.ops.common import check_metadata, check_signature
from registry.ops.preparation import (
    PreparedFile,
    discard_unreferenced,
    small_files,
    store_model,
)
from registry.records import ModelVersion, VersionFileRecord
from registry.stages import REGISTER_STAGES, stage_name
from registry.store import Store, Tx
from registry.versions import (
    Bump,
    ChangeReport,
    SemVer,
    bump_between,
    required_bump,
    split_model_ref,
)


def register_model(
    store: Store,
    artifacts: BlobStore,
    model_ids: dict[str, int],
    name: str,
    model: Any,
    version: str | SemVer | None,
    metadata: Mapping[str, Any] | None,
    stage: str,
    tags: Sequence[str] | None,
    signature: Mapping[str, Any] | None,
    features: Sequence[str] | None,
    requirements: str | Sequence[str] | None,
    *,
    parent: str | SemVer | None,
    owner: str | None,
    progress: Progress | None,
    actor: str | None,
    default_actor: str,
    default_increment: str | None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> ModelVersion:
    """``ModelRegistry.register_model``; ``model_ids`` caches committed model rows."""
    names.model_name(name)
    wanted = SemVer.parse(version) if version is not None else None
    stage = stage_name(stage)
    if stage not in REGISTER_STAGES:
        raise IllegalTransition(
            f"new versions enter {' or '.join(REGISTER_STAGES)}, not {stage!r}; "
            "register, then promote",
            from_stage=None,
            to_stage=stage,
        )
    meta = check_metadata(metadata, limits)
    feats = _check_features(features if features is not None else meta.get("features"), limits)
    sig = check_signature(signature, limits)
    if tags is not None and len(tags) > limits.tags:
        raise InvalidInput(f"{len(tags)} tags, over the limit of {limits.tags}")
    tag_list = [names.tag(t) for t in (tags or ())]
    who = names.actor(actor) if actor else default_actor
    owner_name = owner or meta.get("owner") or who
    parent_ver = _parent_hint(name, parent, meta)
    increment = meta.get("increment") or default_increment
    reqs = requirements if requirements is not None else vfiles.captured_requirements()

    prepared = small_files(meta, feats, sig, reqs)

    while True:
        blob, artifact_name, artifact_format = store_model(artifacts, model, progress)
        model_file = (
            [PreparedFile(artifact_name, "model", blob.digest, blob.size, None)]
            if blob is not None and artifact_name is not None
            else []
        )

        op = functools.partial(
            _register_op,
            artifacts=artifacts,
            model_ids=model_ids,
            name=name,
            wanted=wanted,
            parent_ver=parent_ver,
            stage=stage,
            meta=meta,
            feats=feats,
            sig=sig,
            tag_list=tag_list,
            owner=str(owner_name),
            who=who,
            increment=str(increment) if increment is not None else None,
            blob=blob,
            artifact_name=artifact_name,
            artifact_format=artifact_format,
            files=model_file + prepared,
        )
        try:
            return store.write(op)
        except _BlobVanished:
            continue  # a concurrent cleanup removed a shared blob: store it again
        except BaseException:
            if blob is not None and blob.created:
                # Best effort: the caller must see the original error, not ours.
                with contextlib.suppress(Exception):
                    discard_unreferenced(store, artifacts, [blob.digest])
            raise


def _parent_hint(name: str, parent: str | SemVer | None, meta: Mapping[str, Any]) -> SemVer | None:
    if parent is not None:
        return SemVer.parse(parent)
    ref = meta.get("parent_model")
    if isinstance(ref, str):
        try:
            parent_name, ver = split_model_ref(ref)
        except InvalidInput:
            return None
        if parent_name == name:
            return ver
    return None


def _register_op(
    tx: Tx,
    *,
    artifacts: BlobStore,
    model_ids: dict[str, int],
    name: str,
    wanted: SemVer | None,
    parent_ver: SemVer | None,
    stage: str,
    meta: dict[str, Any],
    feats: list[str] | None,
    sig: dict[str, Any] | None,
    tag_list: list[str],
    owner: str,
    who: str,
    increment: str | None,
    blob: StoredBlob | None,
    artifact_name: str | None,
    artifact_format: str | None,
    files: list[PreparedFile],
) -> ModelVersion:
    cur, now = tx.cur, tx.now
    mid = model_ids.get(name)
    if mid is None:
        found = cur.one(queries.SEL_MODEL_ID, {"name": name})
        if found is None:
            found = cur.one(queries.INS_MODEL, {"name": name, "owner": owner, "created_at": now})
            tx.audit(actor=who, action="create_model", target=name, after={"owner": owner})
        assert found is not None
        mid = int(found[0])
        # Cache only once committed: model rows are never deleted or renumbered.
        tx.after_commit.append(functools.partial(model_ids.__setitem__, name, mid))
    if stage != "dev":
        _refuse_guarded_entry(tx.conn, mid, name, stage)
    latest = _ParentRow.of(cur.one(queries.SEL_LATEST, {"mid": mid}))
    parent = _find_parent(cur, mid, name, latest, parent_ver, wanted)

    report = required_bump(
        parent.features if parent else None,
        feats,
        parent.signature if parent else None,
        sig,
    )
    if wanted is None:
        number = latest.version.bump(report.bump.label) if latest else SemVer(1, 0, 0)
    else:
        number = wanted
        if cur.one(queries.SEL_EXACT, {"mid": mid, **_parts(number)}) is not None:
            raise Conflict(f"{name} {number} already exists")
        if parent is not None:
            _check_explicit_bump(name, number, parent.version, report)
    model_file = next((f for f in files if f.role == "model"), None)
    if model_file is not None and not artifacts.exists(model_file.digest):
        raise _BlobVanished
    inserted = cur.one(
        queries.INS_VERSION,
        {
            "model_id": mid,
            **_parts(number),
            "stage": stage,
            "artifact_digest": blob.digest if blob else None,
            "artifact_size": blob.size if blob else None,
            "artifact_name": artifact_name,
            "artifact_format": artifact_format,
            "metadata": meta,
            "signature": sig,
            "features": feats,
            "tags": tag_list,
            "owner": owner,
            "parent_id": parent.id if parent else None,
            "increment": increment,
            "created_at": now,
        },
    )
    assert inserted is not None
    version_id = int(inserted[0])
    cur.executemany(
        queries.INS_FILE,
        [
            {
                "version_id": version_id,
                "name": f.name,
                "role": f.role,
                "digest": f.digest,
                "size": f.size,
                "content": f.content,
            }
            for f in files
        ],
    )
    cur.execute(
        queries.INS_TRANSITION,
        {
            "model_id": mid,
            "version_id": version_id,
            "from_stage": None,
            "to_stage": stage,
            "kind": "register",
            "actor": who,
            "reason": None,
            "at": now,
        },
    )
    ref = f"{name}-{number}"
    if meta.keys() & lineage.METADATA_KEYS:
        lineage.record_registration(
            tx.conn, name=name, ref=ref, version=str(number), meta=meta, now=now
        )
    tx.audit(
        actor=who,
        action="register",
        target=ref,
        after={
            "version": str(number),
            "stage": stage,
            "artifact_digest": blob.digest if blob else None,
            "parent": str(parent.version) if parent else None,
            "bump": report.bump.label,
        },
    )
    return ModelVersion(
        name=name,
        version=number,
        stage=stage,
        created_at=now,
        metadata=meta,
        signature=sig,
        features=tuple(feats) if feats is not None else None,
        tags=tuple(tag_list),
        owner=owner,
        parent=parent.version if parent else None,
        artifact_digest=blob.digest if blob else None,
        artifact_size=blob.size if blob else None,
        artifact_name=artifact_name,
        artifact_format=artifact_format,
        increment=increment,
        files=tuple(
            VersionFileRecord(f.name, f.role, f.digest, f.size)
            for f in sorted(files, key=lambda f: f.name)
        ),
    )


# -- the parent and the number -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ParentRow:
    id: int
    version: SemVer
    features: list[str] | None
    signature: dict[str, Any] | None

    @classmethod
    def of(cls, row: tuple[Any, ...] | None) -> _ParentRow | None:
        if row is None:
            return None
        return cls(
            int(row[0]),
            SemVer(int(row[1]), int(row[2]), int(row[3])),
            fastsql.json_value(row[4]),
            fastsql.json_value(row[5]),
        )


def _parts(number: SemVer) -> dict[str, int]:
    return {"major": number.major, "minor": number.minor, "patch": number.patch}


class _BlobVanished(Exception):
    """A deduplicated blob was removed by a concurrent failed registration; retry."""


def _find_parent(
    cur: fastsql.Cursor,
    mid: int,
    name: str,
    latest: _ParentRow | None,
    parent_ver: SemVer | None,
    wanted: SemVer | None,
) -> _ParentRow | None:
    """The named parent; else, for an explicit version, the highest one below it;
    else the latest version."""
    if parent_ver is not None:
        parent = _ParentRow.of(cur.one(queries.SEL_EXACT, {"mid": mid, **_parts(parent_ver)}))
        if parent is None:
            raise VersionNotFound(f"parent version {parent_ver} of {name!r} does not exist")
        return parent
    if wanted is not None and latest is not None:
        return _ParentRow.of(cur.one(queries.SEL_BELOW, {"mid": mid, **_parts(wanted)}))
    return latest


def _refuse_guarded_entry(conn: sa.Connection, mid: int, name: str, stage: str) -> None:
    """A new version may not enter a stage that approvals guard (no approval can exist yet)."""
    policy = approvals.policy_for(conn, mid, stage)
    if policy is not None:
        raise ApprovalRequired(
            f"{stage} is guarded by an approval policy for {name}: register into dev, "
            f"collect approvals from {', '.join(policy.approvers)}, then promote",
            to_stage=stage,
            missing=list(policy.approvers),
            needed=policy.min_approvals,
        )


def _check_explicit_bump(name: str, number: SemVer, parent: SemVer, report: ChangeReport) -> None:
    """An explicit version must move at least as far as its changes require."""
    got = bump_between(parent, number)
    if got is None:
        raise IncompatibleVersion(f"{number} is not greater than its parent {parent}", [])
    if got < report.bump:
        diffs = report.breaking if report.bump is Bump.MAJOR else report.additive
        raise IncompatibleVersion(
            f"{name} {number} is a {got.label} bump over {parent} but the changes "
            f"require a {report.bump.label} bump: " + "; ".join(diffs),
            diffs,
        )


def _check_features(features: object, limits: InputLimits) -> list[str] | None:
    if features is None:
        return None
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise InvalidInput("features must be a list of feature names")
    out = list(features)
    if len(out) > limits.features:
        raise InvalidInput(f"{len(out)} features, over the limit of {limits.features}")
    if not all(isinstance(f, str) and 0 < len(f) <= limits.feature_name for f in out):
        raise InvalidInput(
            f"features must be non-empty strings of at most {limits.feature_name} characters"
        )
    if len(set(out)) != len(out):
        dupes = sorted({f for f in out if out.count(f) > 1})
        raise InvalidInput(f"features contain duplicates: {', '.join(dupes)}")
    return out
