"""Registering versions: ``register_model`` and ``version_model``.

This is the write path that has to be fast (a durable registration costs a few
hundred microseconds, most of it the commit). Its caller checks and encodes
everything that needs no database before queueing its write, and stores the bytes
(``preparation``); the transaction then runs a handful of prepared statements on the
raw cursor: one read of the model and its latest version (none when the same
transaction just registered that model: ``Tx.memo``), then inserts. The number is
chosen, or checked, against the parent's features and signature.
"""

from __future__ import annotations

import contextlib
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
    RegistryError,
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
    """``ModelRegistry.register_model``.

    Everything that needs no database is done here, by the calling thread, before it
    queues its write: checking the input, encoding the JSON columns, building the
    small files and their digests, storing the artifact. The transaction then only
    reads the model's latest version and inserts rows (``_apply``).
    """
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
    increment = meta.get("increment") or default_increment
    reqs = requirements if requirements is not None else vfiles.captured_requirements()
    request = _Request(
        name=name,
        wanted=wanted,
        parent_ver=_parent_hint(name, parent, meta),
        stage=stage,
        meta=meta,
        feats=feats,
        sig=sig,
        tags=tuple(tag_list),
        owner=str(owner_name),
        who=who,
        increment=str(increment) if increment is not None else None,
        columns=(
            fastsql.json_text(meta),
            fastsql.json_text(sig),
            fastsql.json_text(feats),
            fastsql.json_text(tag_list),
        ),
        files=tuple(small_files(meta, feats, sig, reqs)),
        lineage=not meta.keys().isdisjoint(lineage.METADATA_KEYS),
    )

    while True:
        blob, artifact_name, artifact_format = store_model(artifacts, model, progress)
        stored = _Stored.of(blob, artifact_name, artifact_format)
        try:
            return store.write(_Registration(request, stored, artifacts))
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


@dataclass(frozen=True, slots=True)
class _Request:
    """A registration checked and encoded before its transaction: nothing here
    depends on the database, so it cannot turn stale while the write waits."""

    name: str
    wanted: SemVer | None
    parent_ver: SemVer | None
    stage: str
    meta: dict[str, Any]
    feats: list[str] | None
    sig: dict[str, Any] | None
    tags: tuple[str, ...]
    owner: str
    who: str
    increment: str | None
    columns: tuple[str | None, ...]  # metadata, signature, features, tags: encoded
    files: tuple[PreparedFile, ...]  # the small inline files
    lineage: bool  # the metadata names lineage to record


@dataclass(frozen=True, slots=True)
class _Stored:
    """The model artifact as stored for this attempt (none: metadata only)."""

    digest: str | None
    size: int | None
    name: str | None
    format: str | None
    file: PreparedFile | None

    @classmethod
    def of(cls, blob: StoredBlob | None, name: str | None, fmt: str | None) -> _Stored:
        if blob is None:
            return cls(None, None, name, fmt, None)
        file = PreparedFile(name, "model", blob.digest, blob.size, None) if name else None
        return cls(blob.digest, blob.size, name, fmt, file)


_LATEST = "registration.latest"
"""``Tx.memo`` key prefix: (model id, latest version) of a model registered earlier in
the same transaction, so the next registration of it need not read it back."""


class _Registration:
    """The write of one registration: by itself (``__call__``), or with the
    registrations queued beside it in the same transaction (``run_group``)."""

    __slots__ = ("artifacts", "request", "stored")

    def __init__(self, request: _Request, stored: _Stored, artifacts: BlobStore) -> None:
        self.request = request
        self.stored = stored
        self.artifacts = artifacts

    def __call__(self, tx: Tx) -> ModelVersion:
        r = self.request
        found = _model_and_latest(tx, r.name)
        if found is None:
            created = tx.cur.one(
                queries.INS_MODEL, {"name": r.name, "owner": r.owner, "created_at": tx.now}
            )
            assert created is not None
            found = int(created[0]), None
            tx.audit(actor=r.who, action="create_model", target=r.name, after={"owner": r.owner})
        rows = _Rows()
        done = _register(tx, self, *found, rows)
        if r.lineage:
            lineage.record_registration(
                tx.conn,
                name=r.name,
                ref=done.ref,
                version=str(done.version),
                meta=r.meta,
                now=tx.now,
            )
        rows.insert(tx.cur)
        return done

    @staticmethod
    def run_group(tx: Tx, ops: list[_Registration]) -> list[tuple[Any, Exception | None]]:
        """Registrations of models that exist, without lineage, one after the other:
        each checks its number against the rows the ones before it wrote, and a
        refused one (``RegistryError``, before it writes anything) fails alone. The
        version rows go in one by one (the next may name this one as its parent);
        their files and transitions together at the end. Stops before one that must
        create its model or record lineage: that one runs alone."""
        outcomes: list[tuple[Any, Exception | None]] = []
        rows = _Rows()
        for op in ops:
            found = None if op.request.lineage else _model_and_latest(tx, op.request.name)
            if found is None:
                break
            try:
                outcomes.append((_register(tx, op, *found, rows), None))
            except (RegistryError, _BlobVanished) as exc:
                outcomes.append((None, exc))
        rows.insert(tx.cur)
        return outcomes


class _Rows:
    """File and transition rows of one or more registrations, inserted together."""

    __slots__ = ("files", "transitions")

    def __init__(self) -> None:
        self.files: list[tuple[Any, ...]] = []
        self.transitions: list[tuple[Any, ...]] = []

    def insert(self, cur: fastsql.Cursor) -> None:
        if self.files:
            cur.insert_rows(queries.INS_FILE, self.files)
        if self.transitions:
            cur.insert_rows(queries.INS_TRANSITION, self.transitions)


def _model_and_latest(tx: Tx, name: str) -> tuple[int, _ParentRow | None] | None:
    """(model id, latest version) from this transaction's memo or one query; None when
    no such model exists."""
    known: tuple[int, _ParentRow | None] | None = tx.memo.get((_LATEST, name))
    if known is not None:
        return known
    row = tx.cur.one(queries.SEL_MODEL_LATEST, {"name": name})
    return None if row is None else (int(row[0]), _ParentRow.of(row[1:]))


def _register(
    tx: Tx, op: _Registration, mid: int, latest: _ParentRow | None, rows: _Rows
) -> ModelVersion:
    """Check and number the version, insert its row, queue its files and transition
    on ``rows`` and append its audit event. Until the version row is inserted it only
    reads, so a refusal leaves nothing behind."""
    r, stored, cur, now = op.request, op.stored, tx.cur, tx.now
    if r.stage != "dev":
        _refuse_guarded_entry(tx.conn, mid, r.name, r.stage)
    parent = _find_parent(cur, mid, r.name, latest, r.parent_ver, r.wanted)
    report = required_bump(
        parent.features if parent else None,
        r.feats,
        parent.signature if parent else None,
        r.sig,
    )
    if r.wanted is None:
        number = latest.version.bump(report.bump.label) if latest else SemVer(1, 0, 0)
    else:
        number = r.wanted
        if cur.one(queries.SEL_EXACT, {"mid": mid, **_parts(number)}) is not None:
            raise Conflict(f"{r.name} {number} already exists")
        if parent is not None:
            _check_explicit_bump(r.name, number, parent.version, report)
    if stored.file is not None and not op.artifacts.exists(stored.file.digest):
        raise _BlobVanished
    at = tx.stored_now
    inserted = cur.insert_one(
        queries.INS_VERSION,
        (
            mid,
            number.major,
            number.minor,
            number.patch,
            r.stage,
            stored.digest,
            stored.size,
            stored.name,
            stored.format,
            *r.columns,
            r.owner,
            parent.id if parent else None,
            r.increment,
            at,
        ),
    )
    version_id = int(inserted[0])
    files = (stored.file, *r.files) if stored.file is not None else r.files
    rows.files.extend((version_id, f.name, f.role, f.digest, f.size, f.content) for f in files)
    rows.transitions.append((mid, version_id, None, r.stage, "register", r.who, None, at))
    tx.audit(
        actor=r.who,
        action="register",
        target=f"{r.name}-{number}",
        after={
            "version": str(number),
            "stage": r.stage,
            "artifact_digest": stored.digest,
            "parent": str(parent.version) if parent else None,
            "bump": report.bump.label,
        },
    )
    # Every later registration of this model in the transaction numbers from here.
    tx.remember((_LATEST, r.name), (mid, _ParentRow(version_id, number, r.feats, r.sig)))
    return ModelVersion(
        name=r.name,
        version=number,
        stage=r.stage,
        created_at=now,
        metadata=r.meta,
        signature=r.sig,
        features=tuple(r.feats) if r.feats is not None else None,
        tags=r.tags,
        owner=r.owner,
        parent=parent.version if parent else None,
        artifact_digest=stored.digest,
        artifact_size=stored.size,
        artifact_name=stored.name,
        artifact_format=stored.format,
        increment=r.increment,
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
        if row is None or row[0] is None:
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
