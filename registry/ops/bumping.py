"""``version_model``: a new version bumped from the latest one, without new bytes.

The new version shares its parent's artifact and files (only ``metadata.json`` is
rebuilt when metadata entries are overridden) and starts in ``dev``. It is not on
the hot path, so unlike ``registration`` it uses plain SQLAlchemy statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from registry import files as vfiles
from registry import names, queries
from registry.errors import InvalidInput, VersionNotFound
from registry.ops.common import check_metadata
from registry.ops.preparation import inline_file
from registry.records import ModelVersion
from registry.schema import files_t, transitions_t, versions_t
from registry.store import Store, Tx
from registry.versions import SemVer

v = versions_t.c


def version_model(
    store: Store,
    name: str,
    version_type: str,
    *,
    metadata: Mapping[str, Any] | None,
    reason: str | None,
    actor: str | None,
    default_actor: str,
) -> ModelVersion:
    """``ModelRegistry.version_model``: a bump from the latest version, sharing its files."""
    if version_type not in ("major", "minor", "patch"):
        raise InvalidInput(
            f"version_type must be 'major', 'minor' or 'patch', got {version_type!r}"
        )
    names.model_name(name)
    who = names.actor(actor) if actor else default_actor
    extra = check_metadata(metadata)

    def op(tx: Tx) -> ModelVersion:
        conn = tx.conn
        mid = queries.model_id(conn, name)
        latest = conn.execute(
            sa.select(versions_t).where(v.model_id == mid).order_by(*queries.NEWEST_FIRST)
        ).first()
        if latest is None:
            raise VersionNotFound(f"model {name!r} has no versions to bump from")
        base = SemVer(latest.major, latest.minor, latest.patch)
        number = base.bump(version_type)
        meta = {**(latest.metadata or {}), **extra}
        inserted = conn.execute(
            versions_t.insert().values(
                model_id=mid,
                major=number.major,
                minor=number.minor,
                patch=number.patch,
                stage="dev",
                artifact_digest=latest.artifact_digest,
                artifact_size=latest.artifact_size,
                artifact_name=latest.artifact_name,
                artifact_format=latest.artifact_format,
                metadata=meta,
                signature=latest.signature,
                features=latest.features,
                tags=latest.tags,
                owner=latest.owner,
                parent_id=latest.id,
                increment=latest.increment,
                created_at=tx.now,
            )
        ).inserted_primary_key
        assert inserted is not None
        new_id = inserted[0]
        old_files = conn.execute(sa.select(files_t).where(files_t.c.version_id == latest.id))
        rows = []
        for f in old_files:
            row = dict(f._mapping, version_id=new_id)
            if f.name == "metadata.json":
                fresh = inline_file("metadata.json", "metadata", vfiles.metadata_json(meta))
                row.update(content=fresh.content, digest=fresh.digest, size=fresh.size)
            rows.append(row)
        if rows:
            conn.execute(files_t.insert(), rows)
        conn.execute(
            transitions_t.insert().values(
                model_id=mid,
                version_id=new_id,
                from_stage=None,
                to_stage="dev",
                kind="register",
                actor=who,
                reason=reason or f"{version_type} bump from {base}",
                at=tx.now,
            )
        )
        tx.audit(
            actor=who,
            action="version",
            target=f"{name}-{number}",
            after={"version": str(number), "parent": str(base), "bump": version_type},
            reason=reason,
        )
        return queries.find_version(conn, name, version=number)

    return store.write(op)
