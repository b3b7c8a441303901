"""Reading versions, their models and files, and a model's history.

``VersionLookup`` serves a version's record by number or by stage. Stage lookups
are the serving hot path (``resolve``), so they are cached, and the cache is valid
for one ``Store.generation``: any commit by any process drops it, and the registry
also drops it itself after its own stage changes. Loading a model verifies its
SHA-256 first and unpickles only what the registry itself pickled.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import warnings
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from registry import names, queries
from registry.artifacts import BlobStore
from registry.compare import Comparison, compare_versions
from registry.errors import (
    CorruptArtifact,
    DeprecatedModelWarning,
    InvalidInput,
    ModelEndOfLife,
    NotFound,
    VersionNotFound,
)
from registry.instants import parse_instant
from registry.ops.preparation import ARTIFACT_PICKLE
from registry.records import ModelSummary, ModelVersion, Transition
from registry.schema import transitions_t, versions_t
from registry.stages import stage_name
from registry.store import Store
from registry.versions import SemVer, split_model_ref

v = versions_t.c


class VersionLookup:
    """One version's record, by number or by stage; stage lookups cached per generation."""

    __slots__ = ("_cache", "_cache_gen", "_cache_lock", "_store")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[tuple[str, str], ModelVersion] = {}
        self._cache_gen = -1
        self._cache_lock = threading.Lock()

    def invalidate(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._cache_gen = -1

    def get(
        self, name: str, version: str | SemVer | None = None, *, stage: str | None = None
    ) -> ModelVersion:
        """``ModelRegistry.get_model_version``."""
        if version is not None and stage is not None:
            raise InvalidInput("pass either version or stage, not both")
        if version is not None:
            names.model_name(name)
            number = SemVer.parse(version)
            with self._store.read() as conn:
                return queries.find_version(conn, name, version=number)
        key = (name, stage or "production")
        gen = self._store.generation()
        cached = self._cache.get(key) if gen == self._cache_gen else None
        if cached is not None:
            return cached
        names.model_name(name)
        wanted_stage = stage_name(key[1])
        with self._store.read() as conn:
            found = queries.find_version(conn, name, stage=wanted_stage)
        with self._cache_lock:
            if gen != self._cache_gen:
                self._cache.clear()
                self._cache_gen = gen
            self._cache[key] = found
        return found

    def resolve(self, name: str, stage: str) -> ModelVersion:
        """``ModelRegistry.resolve``: a hit is one generation probe and a dict lookup."""
        gen = self._store.generation()
        if gen == self._cache_gen:
            cached = self._cache.get((name, stage))
            if cached is not None:
                return cached
        return self.get(name, stage=stage)


def get_model(
    store: Store,
    artifacts: BlobStore,
    versions: VersionLookup,
    name: str,
    stage: str | None,
    version: str | SemVer | None,
    *,
    force: bool,
) -> Any:
    """``ModelRegistry.get_model``; its deprecation warning names that method's caller."""
    record = (
        versions.get(name, version)
        if version is not None
        else versions.get(name, stage=stage or "production")
    )
    dep = record.deprecation
    if dep is not None:
        now = store.clock()
        if dep.end_of_life is not None and now >= dep.end_of_life and not force:
            raise ModelEndOfLife(
                f"{record.ref} reached its end of life on {dep.end_of_life.date()} "
                f"({dep.reason}); pass force=True to load it anyway"
            )
        eol = f", end of life {dep.end_of_life.date()}" if dep.end_of_life else ""
        warnings.warn(
            f"{record.ref} is deprecated: {dep.reason}{eol}",
            DeprecatedModelWarning,
            stacklevel=3,  # past this function and ModelRegistry.get_model
        )
    if record.artifact_digest is None:
        raise NotFound(f"{record.ref} has no model artifact (registered metadata only)")
    if record.artifact_format == ARTIFACT_PICKLE:
        # Hash exactly the bytes we unpickle: nothing unverified is ever loaded, and
        # only objects this registry serialised itself are unpickled at all.
        return pickle.loads(artifacts.read_bytes(record.artifact_digest))
    return artifacts.verify(record.artifact_digest)


def get_file(
    store: Store,
    artifacts: BlobStore,
    versions: VersionLookup,
    name: str,
    version: str | SemVer,
    file_name: str,
) -> bytes:
    """``ModelRegistry.get_file``: the bytes, verified against the file's digest."""
    names.file_name(file_name)
    record = versions.get(name, version)
    entry = next((f for f in record.files if f.name == file_name), None)
    if entry is None:
        raise NotFound(f"{record.ref} has no file {file_name!r}")
    if entry.role == "model":
        return artifacts.read_bytes(entry.digest)
    with store.read() as conn:
        mid = queries.model_id(conn, name)
        vid = queries.version_row_id(conn, mid, record.version)
        assert vid is not None
        content = queries.file_content(conn, vid, file_name) or b""
    if hashlib.sha256(content).hexdigest() != entry.digest:
        raise CorruptArtifact(f"{record.ref}/{file_name} does not match its digest")
    return content


def get_model_by_date(store: Store, name: str, date: str | datetime) -> ModelVersion:
    """``ModelRegistry.get_model_by_date``: production at that instant, from transitions."""
    names.model_name(name)
    instant = parse_instant(date)
    t = transitions_t.c
    with store.read() as conn:
        mid = queries.model_id(conn, name)
        row = conn.execute(
            sa.select(t.to_stage, v.major, v.minor, v.patch)
            .join(versions_t, v.id == t.version_id)
            .where(
                t.model_id == mid,
                t.at <= instant,
                sa.or_(t.to_stage == "production", t.from_stage == "production"),
            )
            .order_by(t.id.desc())
            .limit(1)
        ).first()
        if row is None or row.to_stage != "production":
            raise VersionNotFound(
                f"no version of {name!r} was in production at {instant.isoformat()}"
            )
        return queries.find_version(conn, name, version=SemVer(row.major, row.minor, row.patch))


def list_models(store: Store) -> list[ModelSummary]:
    with store.read() as conn:
        return queries.list_models(conn)


def list_versions(
    store: Store,
    name: str | None,
    *,
    stage: str | None,
    tag: str | None,
    increment: str | None,
    deprecated: bool | None,
    limit: int | None,
    offset: int,
) -> list[ModelVersion]:
    """``ModelRegistry.list_versions``: the filters checked, then one query."""
    if name is not None:
        names.model_name(name)
    if stage is not None:
        stage = stage_name(stage)
    if tag is not None:
        names.tag(tag)
    with store.read() as conn:
        return queries.list_versions(
            conn,
            name,
            stage=stage,
            tag=tag,
            increment=increment,
            deprecated=deprecated,
            limit=limit,
            offset=offset,
        )


def history(store: Store, name: str) -> list[Transition]:
    names.model_name(name)
    with store.read() as conn:
        return queries.history(conn, name)


def compare_models(versions: VersionLookup, model_a: str, model_b: str) -> Comparison:
    name_a, ver_a = split_model_ref(model_a)
    name_b, ver_b = split_model_ref(model_b)
    a = versions.get(name_a, ver_a)
    b = versions.get(name_b, ver_b)
    return compare_versions(a, b)
