"""``MLflowRegistry``: the registry's API in front of a real MLflow tracking server.

What lives where:

- MLflow holds the models and versions, each version's files (logged to a run of
  the ``modelreg`` experiment, under ``model/``), our metadata, tags, signature,
  features, digest and semantic version as model-version tags (``modelreg.*``,
  ``metadata.<key>``, ``tag.<tag>``), and the stages as aliases: ``staging`` and
  ``production`` (MLflow's own stages are deprecated; an alias is unique per
  model, so one production version per model holds there too), plus one alias per
  semantic version, ``v3_1_0`` (MLflow allows only ``[A-Za-z0-9_-]`` in aliases
  and reserves ``v<number>``). MLflow's integer version is kept as it is.
- The governance database (any SQLAlchemy URL, SQLite by default) holds what
  MLflow cannot: the hash-chained audit, approvals and policies, lineage,
  deprecations, the stage history, auto-rollback triggers. It is an ordinary
  modelreg database, so ``modelreg audit verify``, reports and docs read it as
  they read any registry; its rows mirror our versions by MLflow model name and
  semantic version (the ``v3_1_0`` alias ties the two).

Every change is one governance transaction that ends with its MLflow calls
(``Store.finishing``): if MLflow refuses or cannot be reached, the transaction
rolls back and nothing is recorded; what MLflow had already taken is undone
(best effort: the new version and its run deleted, aliases put back). An
unreachable server therefore leaves no trace in the governance database.

Versions registered by other MLflow clients carry no ``modelreg.version`` tag:
they are shown as ``ExternalVersion`` with their integer version (address them
with an ``int``), never retagged or renumbered. One that gets the ``staging``
alias is adopted by the daemon's watcher (``registry.mlflow_sync``): recorded in
the governance database as ``vN.0.0``, found again through our ``vN_0_0`` alias.

``resolve`` (which version serves a stage) asks MLflow for the alias and caches
the answer in process for ``cache_ttl`` seconds; this registry's own changes drop
the cache at once, other clients' alias moves are seen within the TTL.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from registry import names, queries
from registry.api import ModelRegistry
from registry.artifacts import Progress
from registry.db import default_home
from registry.errors import CorruptArtifact, InvalidInput, ModelNotFound, NotFound, VersionNotFound
from registry.mlflow_rest import MLflowClient, MLflowNotFound
from registry.records import ModelVersion
from registry.schema import versions_t
from registry.store import Clock, Tx
from registry.versions import SemVer

__all__ = ["ExternalVersion", "MLflowRegistry", "MLflowVersion", "semver_alias"]

SEMVER_TAG = "modelreg.version"
STAGE_TAG = "modelreg.stage"
STAGE_ALIASES = ("staging", "production")
EXPERIMENT = "modelreg"
MODEL_DIR = "model"
_TAG_KEY = re.compile(r"^[\w.\- /]{1,250}$")
_TAG_VALUE_MAX = 8000


def semver_alias(version: SemVer) -> str:
    """``v3_1_0``: the alias that names our version ``v3.1.0`` in MLflow."""
    return f"v{version.major}_{version.minor}_{version.patch}"


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class MLflowVersion(ModelVersion):
    """One of our versions, with what MLflow knows of it."""

    mlflow_version: int | None = None
    aliases: tuple[str, ...] = ()
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = ModelVersion.to_dict(self)
        out["mlflow"] = {
            "version": self.mlflow_version,
            "aliases": list(self.aliases),
            "source": self.source,
        }
        return out


@dataclass(frozen=True, slots=True)
class ExternalVersion:
    """A version this governance database has no record of: registered by another
    MLflow client (no semantic version of ours), or through modelreg with another
    governance database (its ``modelreg.*`` tags are in ``tags``)."""

    name: str
    mlflow_version: int
    stage: str  # production | staging (from its aliases) | none
    created_at: datetime
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    run_id: str | None = None
    version: None = None

    @property
    def ref(self) -> str:
        """``fraud/7``: MLflow's own numbering (``models:/fraud/7``)."""
        return f"{self.name}/{self.mlflow_version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": None,
            "stage": self.stage,
            "created_at": self.created_at.isoformat(),
            "tags": dict(self.tags),
            "mlflow": {
                "version": self.mlflow_version,
                "aliases": list(self.aliases),
                "source": self.source,
                "run_id": self.run_id,
            },
        }


AnyVersion = MLflowVersion | ExternalVersion


@dataclass(slots=True)
class _Undo:
    """What a change made in MLflow so far, to take back if its transaction fails."""

    run_id: str | None = None
    created: tuple[str, int] | None = None
    aliases: list[tuple[str, str, int | None]] = field(default_factory=list)
    done: bool = False


class _AliasCache:
    """``(name, stage) -> record`` for ``ttl`` seconds (monotonic clock)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, AnyVersion]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> AnyVersion | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: tuple[str, str], record: AnyVersion) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, record)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class MLflowRegistry(ModelRegistry):
    """``ModelRegistry``'s API on an MLflow tracking server (see the module docstring).

    ``tracking_uri``: the server (``http(s)://host:port``). ``governance``: the
    modelreg database beside it (default ``sqlite:///<home>/mlflow-governance.db``).
    ``home`` also holds the local, digest-verified cache of artifacts.
    """

    def __init__(
        self,
        tracking_uri: str,
        increment: str | None = None,
        *,
        governance: str | None = None,
        home: str | Path | None = None,
        actor: str | None = None,
        clock: Clock | None = None,
        cache_ttl: float = 5.0,
        http: httpx.Client | None = None,
        create: bool = True,
    ) -> None:
        self.client = MLflowClient(tracking_uri, http=http)
        self.tracking_uri = self.client.uri
        root = Path(home) if home is not None else default_home()
        try:
            super().__init__(
                governance or f"sqlite:///{root / 'mlflow-governance.db'}",
                home=root,
                actor=actor,
                clock=clock,
                increment=increment,
                create=create,
            )
        except BaseException:
            self.client.close()
            raise
        self._numbers: dict[tuple[str, SemVer], int] = {}  # never change once made
        self._known_models: set[str] = set()  # exist in MLflow (as far as we know)
        self._resolved = _AliasCache(cache_ttl)
        self._experiment: str | None = None
        self._adopting = threading.local()  # .number: see ``adopting``
        self._adopt_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()
        super().close()

    def __enter__(self) -> MLflowRegistry:
        return self

    def _invalidate(self) -> None:
        super()._invalidate()
        self._resolved.clear()

    # -- writes: each ends its governance transaction with the MLflow calls ----------------

    def register_model(
        self,
        name: str,
        model: Any = None,
        version: str | SemVer | None = None,
        metadata: Mapping[str, Any] | None = None,
        stage: str = "dev",
        tags: Sequence[str] | None = None,
        signature: Mapping[str, Any] | None = None,
        features: Sequence[str] | None = None,
        requirements: str | Sequence[str] | None = None,
        *,
        parent: str | SemVer | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
        actor: str | None = None,
        input_example: Any = None,
    ) -> MLflowVersion:
        """``ModelRegistry.register_model``, the version and its files also in MLflow."""
        undo = _Undo()
        adopted: int | None = getattr(self._adopting, "number", None)
        effect = (
            functools.partial(self._mirror_new, undo)
            if adopted is None
            else functools.partial(self._mirror_adopted, undo, adopted)
        )
        with self._mirrored(undo, effect):
            result = super().register_model(
                name,
                model,
                version,
                metadata,
                stage,
                tags,
                signature,
                features,
                requirements,
                parent=parent,
                owner=owner,
                progress=progress,
                actor=actor,
                input_example=input_example,
            )
        self._invalidate()
        assert isinstance(result, MLflowVersion)
        return result

    def version_model(
        self,
        name: str,
        version_type: str = "patch",
        *,
        metadata: Mapping[str, Any] | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> MLflowVersion:
        """``ModelRegistry.version_model``: a new MLflow version with the parent's files."""
        names.model_name(name)
        with self.store.read() as conn:
            latest = conn.execute(
                sa.select(versions_t.c.major, versions_t.c.minor, versions_t.c.patch)
                .where(versions_t.c.model_id == queries.model_id(conn, name))
                .order_by(*queries.NEWEST_FIRST)
                .limit(1)
            ).first()
        if latest is not None:
            # The new version's files are logged again: the model blob must be here.
            self._cached_blob(super().get_model_version(name, SemVer(*latest)))
        undo = _Undo()
        with self._mirrored(undo, functools.partial(self._mirror_new, undo)):
            result = super().version_model(
                name, version_type, metadata=metadata, reason=reason, actor=actor
            )
        self._invalidate()
        assert isinstance(result, MLflowVersion)
        return result

    def promote_model(
        self,
        name: str,
        version: str | SemVer,
        from_stage: str | None = None,
        to_stage: str = "production",
        reason: str | None = None,
        *,
        force: bool = False,
        approval_required: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        """``ModelRegistry.promote_model``; MLflow's ``staging``/``production`` aliases
        follow in the same transaction."""
        undo = _Undo()
        with self._mirrored(undo, functools.partial(self._mirror_stages, undo)):
            return super().promote_model(
                name,
                version,
                from_stage,
                to_stage,
                reason,
                force=force,
                approval_required=approval_required,
                actor=actor,
            )

    def rollback(
        self,
        name: str,
        to_version: str | SemVer | None = None,
        *,
        reason: str,
        actor: str | None = None,
    ) -> ModelVersion:
        """``ModelRegistry.rollback``; the ``production`` alias moves back with it."""
        undo = _Undo()
        with self._mirrored(undo, functools.partial(self._mirror_stages, undo)):
            return super().rollback(name, to_version, reason=reason, actor=actor)

    def set_model_signature(
        self,
        model: str,
        inputs: Mapping[str, str],
        outputs: Mapping[str, str] | None = None,
        *,
        version: str | SemVer | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """``ModelRegistry.set_model_signature``; MLflow's ``modelreg.signature`` tag too."""
        with self._mirrored(_Undo(), self._mirror_tags):
            return super().set_model_signature(model, inputs, outputs, version=version, actor=actor)

    def deprecate_model(
        self,
        name: str,
        version: str | SemVer,
        reason: str,
        end_of_life: str | date | datetime | None = None,
        *,
        actor: str | None = None,
    ) -> ModelVersion:
        """``ModelRegistry.deprecate_model``; tagged ``modelreg.deprecated`` in MLflow."""
        with self._mirrored(_Undo(), self._mirror_tags):
            return super().deprecate_model(name, version, reason, end_of_life, actor=actor)

    def open_environment(self, environment: str) -> ModelRegistry:
        raise InvalidInput(
            "MLflowRegistry has no environments: use one tracking server (or one "
            "governance database) per environment"
        )

    def promote_to(
        self, model: str, target_env: str, *, stage: str | None = None, actor: str | None = None
    ) -> ModelVersion:
        return self.open_environment(target_env).promote_to(model, target_env)

    # -- reads ---------------------------------------------------------------------------

    def resolve(self, name: str, stage: str = "production") -> ModelVersion:
        """Which version holds MLflow's ``stage`` alias; cached for ``cache_ttl`` seconds.

        A version registered by another client is returned as ``ExternalVersion``
        (typed here as ``ModelVersion`` for callers of the base API: check
        ``isinstance``)."""
        if stage not in STAGE_ALIASES:
            return super().resolve(name, stage)
        key = (name, stage)
        hit = self._resolved.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        names.model_name(name)
        found = self.client.version_by_alias(name, stage)
        if found is None:
            if self.client.get_registered_model(name) is None:
                raise ModelNotFound(f"no registered model {name!r} in MLflow {self.tracking_uri}")
            raise VersionNotFound(f"{name!r} has no {stage!r} alias in MLflow {self.tracking_uri}")
        record = self._record(found)
        self._resolved.put(key, record)
        return record  # type: ignore[return-value]

    def get_model_version(
        self,
        name: str,
        version: str | SemVer | int | None = None,
        *,
        stage: str | None = None,
    ) -> ModelVersion:
        """By semantic version (the governance record, with MLflow's number), by MLflow's
        integer version (an ``ExternalVersion`` for other clients' versions), or by
        stage (``resolve``)."""
        if isinstance(version, int):
            names.model_name(name)
            found = self.client.get_model_version(name, version)
            if found is None:
                raise VersionNotFound(
                    f"MLflow {self.tracking_uri} has no version {version} of {name!r}"
                )
            return self._record(found)  # type: ignore[return-value]
        if version is None and (stage or "production") in STAGE_ALIASES:
            return self.resolve(name, stage or "production")
        record = super().get_model_version(name, version, stage=stage)
        return self._with_mlflow(record)

    def mlflow_versions(self, name: str) -> list[MLflowVersion | ExternalVersion]:
        """Every version MLflow holds for ``name``, ours and other clients', newest first."""
        names.model_name(name)
        found = self.client.search_model_versions(name)
        found.sort(key=lambda mv: int(mv["version"]), reverse=True)
        # Search results do not carry aliases: the registered model lists them all.
        held: dict[int, list[str]] = {}
        for alias in self._aliases_of(name):
            held.setdefault(int(alias["version"]), []).append(str(alias["alias"]))
        return [
            self._record({**mv, "aliases": sorted(held.get(int(mv["version"]), []))})
            for mv in found
        ]

    def get_model(
        self,
        name: str,
        stage: str | None = None,
        version: str | SemVer | int | None = None,
        *,
        force: bool = False,
    ) -> Any:
        """``ModelRegistry.get_model``: the artifact comes from MLflow into the local
        cache, verified against the digest tagged at registration. Another client's
        version loads as the path of its downloaded files (never unpickled)."""
        record: Any = (
            self.get_model_version(name, version)
            if version is not None
            else self.get_model_version(name, stage=stage or "production")
        )
        if isinstance(record, ExternalVersion):
            return self._download_external(record)
        self._cached_blob(record)
        return super().get_model(name, version=record.version, force=force)

    @contextlib.contextmanager
    def adopting(self, number: int) -> Any:
        """Within: ``register_model`` records MLflow's existing version ``number`` in
        the governance database (``registry.mlflow_sync.adopt``) instead of creating a
        new MLflow version. This thread only; one adoption at a time."""
        with self._adopt_lock:
            self._adopting.number = number
            try:
                yield
            finally:
                self._adopting.number = None

    # -- the MLflow side of a change -----------------------------------------------------

    @contextlib.contextmanager
    def _mirrored(self, undo: _Undo, effect: Any) -> Any:
        try:
            with self.store.finishing(effect):
                yield
        except BaseException:
            self._undo(undo)
            raise

    def _undo(self, undo: _Undo) -> None:
        """Take back, best effort, what MLflow took for a change that did not commit."""
        if not undo.done:
            return
        with contextlib.suppress(Exception):
            for name, alias, previous in reversed(undo.aliases):
                if previous is None:
                    self.client.delete_alias(name, alias)
                else:
                    self.client.set_alias(name, alias, previous)
        if undo.created is not None:
            with contextlib.suppress(Exception):
                self.client.delete_model_version(*undo.created)
        if undo.run_id is not None:
            with contextlib.suppress(Exception):
                self.client.delete_run(undo.run_id)
        self._resolved.clear()

    def _experiment_id(self) -> str:
        if self._experiment is None:
            self._experiment = self.client.experiment_id(EXPERIMENT)
        return self._experiment

    def _mirror_new(self, undo: _Undo, tx: Tx, mv: ModelVersion) -> MLflowVersion:
        """A new version: its run and files, the model version, its aliases."""
        client, name = self.client, mv.name
        if name not in self._known_models:
            client.create_registered_model(name)  # False when it exists: fine either way
        undo.done = True
        run_id, artifact_uri = client.create_run(
            self._experiment_id(),
            mv.ref,
            {"modelreg.model": name, SEMVER_TAG: str(mv.version)},
            _ms(tx.now),
        )
        undo.run_id = run_id
        vid = queries.version_row_id(tx.conn, queries.model_id(tx.conn, name), mv.version)
        assert vid is not None
        for f in mv.files:
            if f.role == "model":
                client.upload(
                    artifact_uri, f"{MODEL_DIR}/{f.name}", self.artifacts.verify(f.digest)
                )
            else:
                content = queries.file_content(tx.conn, vid, f.name) or b""
                client.upload(artifact_uri, f"{MODEL_DIR}/{f.name}", content)
        source = f"{artifact_uri}/{MODEL_DIR}"
        try:
            created = client.create_model_version(
                name, source, run_id=run_id, tags=_version_tags(mv), description=mv.ref
            )
        except MLflowNotFound:  # deleted in MLflow since we last saw it
            self._known_models.discard(name)
            client.create_registered_model(name)
            created = client.create_model_version(
                name, source, run_id=run_id, tags=_version_tags(mv), description=mv.ref
            )
        number = int(created["version"])
        undo.created = (name, number)
        aliases = [semver_alias(mv.version)]
        if mv.stage in STAGE_ALIASES:
            aliases.append(mv.stage)
        for alias in aliases:
            # A new number's alias cannot be held by anything we registered; a stage
            # alias may be, and is put back if this registration does not commit.
            previous = client.version_by_alias(name, alias) if alias in STAGE_ALIASES else None
            undo.aliases.append((name, alias, int(previous["version"]) if previous else None))
            client.set_alias(name, alias, number)
        client.end_run(run_id, "FINISHED", _ms(tx.now))
        self._numbers[(name, mv.version)] = number
        tx.after_commit.append(functools.partial(self._known_models.add, name))
        return _attach(mv, number, tuple(aliases), source)

    def _mirror_adopted(self, undo: _Undo, number: int, tx: Tx, mv: ModelVersion) -> MLflowVersion:
        """Another client's version taken in: only our ``vN_0_0`` alias is added in MLflow
        (its files, tags and number stay as that client left them)."""
        alias = semver_alias(mv.version)
        found = self.client.get_model_version(mv.name, number)
        if found is None:
            raise VersionNotFound(
                f"MLflow {self.tracking_uri} has no version {number} of {mv.name!r}"
            )
        undo.done = True
        undo.aliases.append((mv.name, alias, None))
        self.client.set_alias(mv.name, alias, number)
        self._numbers[(mv.name, mv.version)] = number
        held = tuple(sorted({*(str(a) for a in found.get("aliases", [])), alias}))
        return _attach(mv, number, held, str(found.get("source") or ""))

    def _mirror_stages(self, undo: _Undo, tx: Tx, mv: ModelVersion) -> ModelVersion:
        """Make MLflow's stage aliases and stage tags say what the governance database
        now says for this model (inside its transaction)."""
        undo.done = True
        client, name = self.client, mv.name
        v = versions_t.c
        rows = tx.conn.execute(
            sa.select(v.major, v.minor, v.patch, v.stage).where(
                v.model_id == queries.model_id(tx.conn, name),
                v.stage.in_(STAGE_ALIASES),
            )
        ).all()
        held = {a["alias"]: int(a["version"]) for a in self._aliases_of(name)}
        staging = [SemVer(r.major, r.minor, r.patch) for r in rows if r.stage == "staging"]
        production = [SemVer(r.major, r.minor, r.patch) for r in rows if r.stage == "production"]
        want: dict[str, SemVer | None] = {
            "production": production[0] if production else None,
            "staging": mv.version if mv.stage == "staging" else (max(staging) if staging else None),
        }
        if "staging" in held and mv.stage != "staging":
            # Keep the staging alias where it is if that version is still in staging.
            keep = next((s for s in staging if self._number(name, s) == held["staging"]), None)
            if keep is not None:
                want["staging"] = keep
        for alias, target in want.items():
            number = self._number(name, target) if target is not None else None
            if held.get(alias) == number:
                continue
            undo.aliases.append((name, alias, held.get(alias)))
            if number is None:
                client.delete_alias(name, alias)
            else:
                client.set_alias(name, alias, number)
        # Stage tags: the moved version, and a production version this move archived;
        # never on another client's version (``adopt``: only our alias is added there).
        if not is_adopted(mv, self.tracking_uri):
            client.set_version_tag(name, self._number(name, mv.version), STAGE_TAG, mv.stage)
        old = held.get("production")
        if old is not None and old != (
            self._number(name, want["production"]) if want["production"] else None
        ):
            with contextlib.suppress(MLflowNotFound):  # another client deleted it
                old_mv = client.get_model_version(name, old)
                if old_mv is not None and tags_of(old_mv).get(SEMVER_TAG):
                    client.set_version_tag(name, old, STAGE_TAG, "archived")
        return mv

    def _mirror_tags(self, tx: Tx, mv: ModelVersion) -> ModelVersion:
        """Signature and deprecation: tags on the MLflow version."""
        number = self._number(mv.name, mv.version)
        for key, value in _version_tags(mv).items():
            if key in ("modelreg.signature", "modelreg.deprecated", "modelreg.end_of_life"):
                self.client.set_version_tag(mv.name, number, key, value)
        return mv

    # -- MLflow records ------------------------------------------------------------------

    def _aliases_of(self, name: str) -> list[dict[str, Any]]:
        found = self.client.get_registered_model(name)
        return list(found.get("aliases", [])) if found else []

    def _number(self, name: str, version: SemVer) -> int:
        """MLflow's integer version of our ``version`` (its ``v3_1_0`` alias)."""
        key = (name, version)
        number = self._numbers.get(key)
        if number is None:
            found = self.client.version_by_alias(name, semver_alias(version))
            if found is None:
                raise VersionNotFound(
                    f"{name} {version} has no {semver_alias(version)!r} alias in MLflow "
                    f"{self.tracking_uri}: it was not registered through modelreg"
                )
            number = int(found["version"])
            self._numbers[key] = number
        return number

    def _record(self, found: Mapping[str, Any]) -> AnyVersion:
        tags = tags_of(found)
        aliases = tuple(str(a) for a in found.get("aliases", []))
        number = int(found["version"])
        semver = tags.get(SEMVER_TAG)
        if not semver and semver_alias(SemVer(number, 0, 0)) in aliases:
            semver = str(SemVer(number, 0, 0))  # another client's, adopted (``adopting``)
        record: ModelVersion | None = None
        if semver:
            name, version = str(found["name"]), SemVer.parse(semver)
            self._numbers[(name, version)] = number
            with contextlib.suppress(NotFound):  # made through another governance database
                record = super().get_model_version(name, version)
        if record is not None:
            stage = next((a for a in ("production", "staging") if a in aliases), None)
            if stage is not None and record.stage != stage:
                record = replace(record, stage=stage)  # MLflow's alias is the truth
            return _attach(record, number, aliases, str(found.get("source") or ""))
        held: str = next((a for a in ("production", "staging") if a in aliases), "none")
        return ExternalVersion(
            name=str(found["name"]),
            mlflow_version=number,
            stage=held,
            created_at=datetime.fromtimestamp(int(found["creation_timestamp"]) / 1000, UTC),
            aliases=aliases,
            tags=tags,
            source=found.get("source"),
            run_id=found.get("run_id") or None,
        )

    def _with_mlflow(self, record: ModelVersion) -> MLflowVersion:
        if isinstance(record, MLflowVersion):
            return record
        number = self._number(record.name, record.version)
        return _attach(record, number, (), None)

    def _cached_blob(self, record: ModelVersion) -> None:
        """Make sure the version's model blob is in the local cache, from MLflow if not."""
        digest, file_name = record.artifact_digest, record.artifact_name
        if digest is None or file_name is None or self.artifacts.exists(digest):
            return
        number = self._number(record.name, record.version)
        source = self.client.download_uri(record.name, number)
        with tempfile.TemporaryDirectory(prefix="modelreg-mlflow-") as tmp:
            dest = Path(tmp) / "blob"
            try:
                self.client.download(source, file_name, dest)
            except MLflowNotFound:
                raise NotFound(
                    f"{record.ref}: its artifact {source}/{file_name} is missing on MLflow "
                    f"{self.tracking_uri}"
                ) from None
            stored = self.artifacts.put_file(dest)
        if stored.digest != digest:
            if stored.created:
                self.artifacts.delete(stored.digest)
            raise CorruptArtifact(
                f"{record.ref}: {source}/{file_name} from MLflow {self.tracking_uri} is "
                f"corrupted (sha256 {stored.digest}, registered {digest})"
            )

    def _download_external(self, record: ExternalVersion) -> Path:
        """Another client's version: its files under ``<home>/mlflow/<name>/<n>``."""
        source = self.client.download_uri(record.name, record.mlflow_version)
        dest = self.home / "mlflow" / record.name / str(record.mlflow_version)
        entries = self.client.list_files(source)
        if not entries:
            raise NotFound(f"{record.ref}: MLflow {self.tracking_uri} has no artifacts at {source}")
        for rel in entries:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.client.download(source, rel, target)
            except MLflowNotFound:
                raise NotFound(
                    f"{record.ref}: its artifact {source}/{rel} is missing on MLflow "
                    f"{self.tracking_uri}"
                ) from None
        return dest


def is_adopted(mv: ModelVersion, tracking_uri: str) -> bool:
    """Another MLflow client's version on the server at ``tracking_uri``, taken in by
    ``adopt``: its origin in the metadata names that server. A version imported from
    another server is a new MLflow version of ours here, tagged like the others."""
    origin = mv.metadata.get("mlflow")
    return isinstance(origin, dict) and origin.get("tracking_uri") == tracking_uri


def tags_of(found: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in found.get("tags", [])}


def _attach(
    record: ModelVersion, number: int, aliases: tuple[str, ...], source: str | None
) -> MLflowVersion:
    values = {f: getattr(record, f) for f in ModelVersion.__dataclass_fields__}
    return MLflowVersion(**values, mlflow_version=number, aliases=aliases, source=source)


def _json_tag(value: object) -> str | None:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _TAG_VALUE_MAX else None


def _version_tags(mv: ModelVersion) -> dict[str, str]:
    """Everything of a version that fits in MLflow tags (the files hold it all too)."""
    tags: dict[str, str] = {SEMVER_TAG: str(mv.version), STAGE_TAG: mv.stage}
    plain = {
        "modelreg.digest": mv.artifact_digest,
        "modelreg.artifact": mv.artifact_name,
        "modelreg.format": mv.artifact_format,
        "modelreg.owner": mv.owner,
        "modelreg.parent": str(mv.parent) if mv.parent else None,
        "modelreg.increment": mv.increment,
    }
    tags.update({k: v for k, v in plain.items() if v})
    for key, value in (
        ("modelreg.signature", mv.signature),
        ("modelreg.features", list(mv.features) if mv.features is not None else None),
    ):
        text = _json_tag(value) if value is not None else None
        if text is not None:
            tags[key] = text
    if mv.deprecation is not None:
        tags["modelreg.deprecated"] = mv.deprecation.reason[:_TAG_VALUE_MAX]
        if mv.deprecation.end_of_life is not None:
            tags["modelreg.end_of_life"] = mv.deprecation.end_of_life.isoformat()
    for key, value in mv.metadata.items():
        text = _json_tag(value)
        if text is not None and _TAG_KEY.fullmatch(f"metadata.{key}"):
            tags[f"metadata.{key}"] = text
    for tag in mv.tags:
        tags[f"tag.{tag}"] = "true"
    return {k: v for k, v in tags.items() if _TAG_KEY.fullmatch(k)}
