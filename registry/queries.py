"""Read queries shared by the registry API; each takes an open connection.

They return immutable records; SQL rows never leave this module.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from registry.audit import utc
from registry.errors import ModelNotFound, VersionNotFound
from registry.fastsql import MultiRow, Prepared
from registry.records import (
    DeprecationRecord,
    ModelSummary,
    ModelVersion,
    Transition,
    VersionFileRecord,
)
from registry.schema import deprecations_t, files_t, models_t, transitions_t, versions_t
from registry.versions import SemVer

v = versions_t.c
_parent = versions_t.alias("parent")

VERSION_COLUMNS: Sequence[sa.ColumnElement[Any]] = (
    v.id,
    models_t.c.name,
    v.major,
    v.minor,
    v.patch,
    v.stage,
    v.created_at,
    v.metadata,
    v.signature,
    v.features,
    v.tags,
    v.owner,
    v.artifact_digest,
    v.artifact_size,
    v.artifact_name,
    v.artifact_format,
    v.increment,
    _parent.c.major.label("p_major"),
    _parent.c.minor.label("p_minor"),
    _parent.c.patch.label("p_patch"),
    deprecations_t.c.reason.label("dep_reason"),
    deprecations_t.c.end_of_life.label("dep_eol"),
    deprecations_t.c.actor.label("dep_actor"),
    deprecations_t.c.at.label("dep_at"),
)
FROM_VERSIONS = (
    versions_t.join(models_t, models_t.c.id == v.model_id)
    .outerjoin(_parent, _parent.c.id == v.parent_id)
    .outerjoin(deprecations_t, deprecations_t.c.version_id == v.id)
)
NEWEST_FIRST = (v.major.desc(), v.minor.desc(), v.patch.desc())


# The statements of one version's lookups and of a stage move, built once: building
# a statement costs more than SQLite takes to run it.
_MODEL_ID = sa.select(models_t.c.id).where(models_t.c.name == sa.bindparam("name"))
_VERSION = (
    sa.select(*VERSION_COLUMNS)
    .select_from(FROM_VERSIONS)
    .where(
        v.model_id == sa.bindparam("mid"),
        v.major == sa.bindparam("major"),
        v.minor == sa.bindparam("minor"),
        v.patch == sa.bindparam("patch"),
    )
)
_IN_STAGE = (
    sa.select(*VERSION_COLUMNS)
    .select_from(FROM_VERSIONS)
    .where(v.model_id == sa.bindparam("mid"), v.stage == sa.bindparam("stage"))
    .order_by(*NEWEST_FIRST)
    .limit(1)
)
_FILES = (
    sa.select(files_t.c.name, files_t.c.role, files_t.c.digest, files_t.c.size)
    .where(files_t.c.version_id == sa.bindparam("vid"))
    .order_by(files_t.c.name)
)
_HISTORY = (
    sa.select(
        transitions_t.c.from_stage, transitions_t.c.to_stage, transitions_t.c.kind,
        transitions_t.c.actor, transitions_t.c.reason, transitions_t.c.at,
        v.major, v.minor, v.patch,
    )
    .join(versions_t, v.id == transitions_t.c.version_id)
    .where(transitions_t.c.model_id == sa.bindparam("mid"))
    .order_by(transitions_t.c.id)
)  # fmt: skip


def model_id(conn: sa.Connection, name: str) -> int:
    found = conn.execute(_MODEL_ID, {"name": name}).scalar()
    if found is None:
        raise ModelNotFound(f"no registered model named {name!r}{_did_you_mean(conn, name)}")
    return int(found)


def _did_you_mean(conn: sa.Connection, name: str) -> str:
    """``; did you mean 'fraud-detection-model'?`` for a name that is a prefix of a
    registered one (the seed's short refs, ``fraud-detection-v3.1.0``) or close to one;
    empty when none is. Only on the error path: one query of the names."""
    known = [str(n) for n in conn.execute(sa.select(models_t.c.name)).scalars()]
    close = sorted(n for n in known if n.startswith(f"{name}-") or n.startswith(f"{name}_"))
    close += [n for n in difflib.get_close_matches(name, known, n=3, cutoff=0.75) if n not in close]
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(n) for n in close[:3]) + "?"


def version_from_row(row: sa.Row[Any], files: tuple[VersionFileRecord, ...] = ()) -> ModelVersion:
    parent = SemVer(row.p_major, row.p_minor, row.p_patch) if row.p_major is not None else None
    deprecation = (
        DeprecationRecord(
            row.dep_reason,
            utc(row.dep_eol) if row.dep_eol else None,
            row.dep_actor,
            utc(row.dep_at),
        )
        if row.dep_reason is not None
        else None
    )
    return ModelVersion(
        name=row.name,
        version=SemVer(row.major, row.minor, row.patch),
        stage=row.stage,
        created_at=utc(row.created_at),
        metadata=row.metadata or {},
        signature=row.signature,
        features=tuple(row.features) if row.features is not None else None,
        tags=tuple(row.tags or ()),
        owner=row.owner,
        parent=parent,
        artifact_digest=row.artifact_digest,
        artifact_size=row.artifact_size,
        artifact_name=row.artifact_name,
        artifact_format=row.artifact_format,
        increment=row.increment,
        files=files,
        deprecation=deprecation,
    )


def _files(conn: sa.Connection, version_id: int) -> tuple[VersionFileRecord, ...]:
    return tuple(
        VersionFileRecord(r.name, r.role, r.digest, r.size)
        for r in conn.execute(_FILES, {"vid": version_id})
    )


def find_version(
    conn: sa.Connection,
    name: str,
    *,
    version: SemVer | None = None,
    stage: str | None = None,
    mid: int | None = None,
) -> ModelVersion:
    """The full record (files, deprecation) by exact version or by stage; ``mid``: the
    model's id when the caller has it."""
    if mid is None:
        mid = model_id(conn, name)
    if version is not None:
        found = conn.execute(
            _VERSION,
            {"mid": mid, "major": version.major, "minor": version.minor, "patch": version.patch},
        )
        what = str(version)
    else:
        assert stage is not None
        found = conn.execute(_IN_STAGE, {"mid": mid, "stage": stage})
        what = f"in stage {stage!r}"
    row = found.first()
    if row is None:
        raise VersionNotFound(f"model {name!r} has no version {what}")
    return version_from_row(row, _files(conn, row.id))


def version_row_id(conn: sa.Connection, mid: int, version: SemVer) -> int | None:
    found = conn.execute(
        sa.select(v.id).where(
            v.model_id == mid,
            v.major == version.major,
            v.minor == version.minor,
            v.patch == version.patch,
        )
    ).scalar()
    return int(found) if found is not None else None


def list_versions(
    conn: sa.Connection,
    name: str | None,
    *,
    stage: str | None = None,
    tag: str | None = None,
    increment: str | None = None,
    deprecated: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[ModelVersion]:
    """Versions newest first, without file manifests (use ``find_version`` for those)."""
    query = sa.select(*VERSION_COLUMNS).select_from(FROM_VERSIONS)
    if name is not None:
        query = query.where(v.model_id == model_id(conn, name))
    if stage is not None:
        query = query.where(v.stage == stage)
    if tag is not None:
        # A prefilter on the JSON text (wildcards escaped); exactness is checked below.
        pattern = f"%{like_escape(json.dumps(tag))}%"
        query = query.where(sa.cast(v.tags, sa.Text).like(pattern, escape="\\"))
    if increment is not None:
        query = query.where(v.increment == increment)
    if deprecated is not None:
        joined = deprecations_t.c.version_id
        query = query.where(joined.is_not(None) if deprecated else joined.is_(None))
    query = query.order_by(models_t.c.name, *NEWEST_FIRST).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    found = [version_from_row(row) for row in conn.execute(query)]
    return [mv for mv in found if tag in mv.tags] if tag is not None else found


def like_escape(text: str) -> str:
    """Escape LIKE wildcards so user text matches literally (use with escape='\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_models(conn: sa.Connection) -> list[ModelSummary]:
    """Every model with its version count, latest and production version: one query.

    Correlated subqueries walk the (model_id, major, minor, patch) index per model
    instead of sorting every version row.
    """
    m = models_t.c
    latest_id = (
        sa.select(v.id)
        .where(v.model_id == m.id)
        .order_by(*NEWEST_FIRST)
        .limit(1)
        .correlate(models_t)
    ).scalar_subquery()
    count = (
        sa.select(sa.func.count()).where(v.model_id == m.id).correlate(models_t).scalar_subquery()
    )
    latest = versions_t.alias("latest")
    prod = versions_t.alias("prod")
    rows = conn.execute(
        sa.select(
            m.name,
            m.created_at,
            count.label("n"),
            latest.c.major,
            latest.c.minor,
            latest.c.patch,
            prod.c.major.label("p_major"),
            prod.c.minor.label("p_minor"),
            prod.c.patch.label("p_patch"),
        )
        .select_from(models_t)
        .outerjoin(latest, latest.c.id == latest_id)
        .outerjoin(prod, sa.and_(prod.c.model_id == m.id, prod.c.stage == "production"))
        .order_by(m.name)
    )
    return [
        ModelSummary(
            name=r.name,
            versions=int(r.n or 0),
            latest=SemVer(r.major, r.minor, r.patch) if r.major is not None else None,
            production=SemVer(r.p_major, r.p_minor, r.p_patch) if r.p_major is not None else None,
            created_at=utc(r.created_at),
        )
        for r in rows
    ]


def history(conn: sa.Connection, name: str, *, mid: int | None = None) -> list[Transition]:
    """Every stage transition of the model, oldest first; ``mid`` as ``find_version``'s."""
    rows = conn.execute(_HISTORY, {"mid": model_id(conn, name) if mid is None else mid})
    return [
        Transition(
            name=name,
            version=SemVer(r.major, r.minor, r.patch),
            from_stage=r.from_stage,
            to_stage=r.to_stage,
            kind=r.kind,
            actor=r.actor,
            reason=r.reason,
            at=utc(r.at),
        )
        for r in rows
    ]


def file_content(conn: sa.Connection, version_id: int, file_name: str) -> bytes | None:
    return conn.execute(
        sa.select(files_t.c.content).where(
            files_t.c.version_id == version_id, files_t.c.name == file_name
        )
    ).scalar()


def referenced_digests(conn: sa.Connection, digests: Iterable[str]) -> set[str]:
    wanted = list(digests)
    if not wanted:
        return set()
    rows = conn.execute(sa.select(files_t.c.digest).where(files_t.c.digest.in_(wanted)))
    return {r[0] for r in rows}


# -- prepared statements for the write hot path --------------------------------------

B = sa.bindparam
_PARENT_COLS = (v.id, v.major, v.minor, v.patch, v.features, v.signature)
_latest = versions_t.alias("latest")
INS_MODEL = Prepared(models_t.insert().returning(models_t.c.id), ["name", "owner", "created_at"])
_latest_id = (
    sa.select(_latest.c.id)
    .where(_latest.c.model_id == models_t.c.id)
    .order_by(_latest.c.major.desc(), _latest.c.minor.desc(), _latest.c.patch.desc())
    .limit(1)
    .correlate(models_t)
    .scalar_subquery()
)
SEL_MODEL_LATEST = Prepared(
    sa.select(models_t.c.id, *_PARENT_COLS)
    .select_from(models_t.outerjoin(versions_t, v.id == _latest_id))
    .where(models_t.c.name == B("name"))
)
"""A model's id and its latest version (NULLs without one), in one query."""
SEL_EXACT = Prepared(
    sa.select(*_PARENT_COLS).where(
        v.model_id == B("mid"), v.major == B("major"), v.minor == B("minor"), v.patch == B("patch")
    )
)
SEL_BELOW = Prepared(
    sa.select(*_PARENT_COLS)
    .where(
        v.model_id == B("mid"),
        sa.or_(
            v.major < B("major"),
            sa.and_(v.major == B("major"), v.minor < B("minor")),
            sa.and_(v.major == B("major"), v.minor == B("minor"), v.patch < B("patch")),
        ),
    )
    .order_by(*NEWEST_FIRST)
    .limit(1)
)
INS_VERSION = MultiRow(
    versions_t,
    [
        "model_id", "major", "minor", "patch", "stage", "artifact_digest", "artifact_size",
        "artifact_name", "artifact_format", "metadata", "signature", "features", "tags",
        "owner", "parent_id", "increment", "created_at",
    ],
    returning=["id"],
)  # fmt: skip
INS_FILE = MultiRow(files_t, ["version_id", "name", "role", "digest", "size", "content"])
INS_TRANSITION = MultiRow(
    transitions_t,
    ["model_id", "version_id", "from_stage", "to_stage", "kind", "actor", "reason", "at"],
)
