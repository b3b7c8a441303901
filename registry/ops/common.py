"""Helpers that more than one concern of ``ModelRegistry`` uses, kept in one place.

Finding a version's row inside a transaction and checking the caller's metadata
and signature are shared by registration, stage moves, approvals and lineage; one
definition keeps their rules and error messages identical everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from registry import queries
from registry.errors import InvalidInput, VersionNotFound
from registry.limits import DEFAULT_LIMITS, InputLimits, check_depth, check_encoded_size
from registry.schema import versions_t
from registry.versions import SemVer

v = versions_t.c


_LOCATE = sa.select(v.id, v.stage).where(
    v.model_id == sa.bindparam("mid"),
    v.major == sa.bindparam("major"),
    v.minor == sa.bindparam("minor"),
    v.patch == sa.bindparam("patch"),
)  # built once: every stage move runs it


def locate(
    conn: sa.Connection, name: str, number: SemVer, *, mid: int | None = None
) -> tuple[int, int, str]:
    """(model id, version id, stage) of ``name`` ``number``; ``VersionNotFound`` if absent.
    ``mid``: the model's id when the caller has it."""
    if mid is None:
        mid = queries.model_id(conn, name)
    row = conn.execute(
        _LOCATE, {"mid": mid, "major": number.major, "minor": number.minor, "patch": number.patch}
    ).first()
    if row is None:
        raise VersionNotFound(f"model {name!r} has no version {number}")
    return mid, int(row.id), str(row.stage)


def check_signature(
    signature: object, limits: InputLimits = DEFAULT_LIMITS
) -> dict[str, Any] | None:
    if signature is None:
        return None
    if not isinstance(signature, Mapping):
        raise InvalidInput("signature must be a mapping with 'inputs' and 'outputs'")
    unknown = set(signature) - {"inputs", "outputs"}
    if unknown:
        raise InvalidInput(f"signature has unknown keys {sorted(unknown)}; use inputs/outputs")
    out: dict[str, Any] = {}
    for part in ("inputs", "outputs"):
        fields = signature.get(part) or {}
        if not isinstance(fields, Mapping) or not all(
            isinstance(k, str) and isinstance(t, str) for k, t in fields.items()
        ):
            raise InvalidInput(f"signature {part} must map field names to type names (str)")
        out[part] = dict(fields)
    check_encoded_size(out, "the signature", limits.signature_bytes)
    return out


def check_metadata(
    metadata: object, limits: InputLimits = DEFAULT_LIMITS, what: str = "metadata"
) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"{what} must be a mapping")
    check_depth(metadata, what, limits.depth)  # before json.dumps, which recurses
    try:
        # Round-trip so what we store is exactly what JSON can hold.
        encoded = check_encoded_size(dict(metadata), what, limits.metadata_bytes)
        return dict(json.loads(encoded))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
