"""``ModelRegistry``: the public Python API, named as users of the original skill expect.

This is a facade, so that the public surface stays one class while each concern can
be read on its own: every method delegates to the module of its concern in
``registry.ops`` (registration, stage moves, reads, approvals, auto-rollback
triggers, lineage, audit, environments), which checks the input and does the work.
The registry object holds what those share: the store, the artifact store, the
default actor and the resolve cache, which it drops after every change to an
existing version. Artifacts live in a local
directory (``<home>/artifacts``) or, with ``artifact_uri``, on object storage
(``registry.object_store``); ``CustomRegistry`` is the seed's name for the latter.

Every mutation is one database transaction that also appends its audit event.
Artifacts are written (durably, content-addressed) before that transaction; if
the transaction fails, any blob it alone would have referenced is removed again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from registry import approvals, auto_rollback, lineage, names
from registry.artifacts import BlobStore, Progress, open_artifact_store
from registry.audit import ChainBreak
from registry.compare import Comparison
from registry.db import default_home, default_url
from registry.limits import DEFAULT_LIMITS, InputLimits
from registry.ops import (
    approving,
    auditing,
    backup,
    bumping,
    environments,
    garbage,
    provenance,
    reads,
    registration,
    rollback_triggers,
    stage_moves,
)
from registry.ops.auditing import AuditRecord
from registry.ops.backup import BackupReport, RestoreReport
from registry.ops.garbage import GarbageReport
from registry.ops.preparation import ARTIFACT_FILE, ARTIFACT_PICKLE, PICKLE_NAME
from registry.records import ModelSummary, ModelVersion, Transition
from registry.signatures import infer_signature
from registry.storage_uri import StorageUri, artifact_location
from registry.store import Clock, Store
from registry.versions import SemVer

__all__ = [
    "ARTIFACT_FILE",
    "ARTIFACT_PICKLE",
    "PICKLE_NAME",
    "AuditRecord",
    "BackupReport",
    "CustomRegistry",
    "GarbageReport",
    "ModelRegistry",
    "RestoreReport",
    "restore_registry",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ModelRegistry:
    """A registry: one database (SQLite by default) plus a content-addressed store.

    ``home`` defaults to ``$MODELREG_HOME`` or ``./.modelreg``; ``url`` to
    ``sqlite:///<home>/registry.db``. ``artifact_uri`` puts the artifacts elsewhere:
    a directory, or ``s3://bucket/prefix`` (``gs://``, ``az://``; the ``s3``, ``gcs``
    or ``azure`` extra), with credentials from that library's usual environment;
    verified downloads are then cached under ``<home>/artifact-cache``. ``clock`` is
    injectable for tests.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        home: str | Path | None = None,
        actor: str | None = None,
        clock: Clock | None = None,
        increment: str | None = None,
        environment: str | None = None,
        environments: Mapping[str, str] | None = None,
        artifact_uri: str | Path | None = None,
        create: bool = True,
        limits: InputLimits | None = None,
    ) -> None:
        # ``create=False``: to read. A registry that is not there is ``NoRegistry``, and
        # neither its home, its database nor its artifact folders are made looking.
        # Checked before anything is opened: a refused URI creates no database.
        location = artifact_location(artifact_uri) if artifact_uri is not None else None
        self.root = Path(home) if home is not None else default_home()
        self.environment = (
            names.identifier(environment, "environment") if environment is not None else None
        )
        self.environments = dict(environments or {})
        # Each environment is a separate registry: its own database and store.
        self.home = self.root / "environments" / environment if environment else self.root
        self.url = url or self.environments.get(environment or "") or default_url(self.home)
        self.actor = names.actor(actor) if actor is not None else names.default_actor()
        self.increment = increment
        self.artifact_uri = artifact_uri
        # Size and depth limits on metadata, signatures, tags, features (registry.limits).
        self.limits = limits or DEFAULT_LIMITS
        if location is None:
            location = self.home / "artifacts"
        elif environment:  # each environment keeps its own blobs, as its own database
            location = (
                location.child("environments", environment)
                if isinstance(location, StorageUri)
                else location / "environments" / environment
            )
        self.artifacts: BlobStore = open_artifact_store(
            location, cache=self.home / "artifact-cache"
        )
        # The home is this registry's own: its directory may be made for the database;
        # a database URL elsewhere must name an existing directory.
        own = self.home if self.url == default_url(self.home) else None
        self._store = Store(self.url, clock=clock or _utcnow, create=create, own_dir=own)
        self._versions = reads.VersionLookup(self._store)  # the resolve cache

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        return self._store

    @property
    def stage_guard(self) -> Callable[[sa.Connection, str], None] | None:
        """Run inside every stage move's (promotion's, rollback's) transaction with the
        model's name; raising refuses the move. Several controller daemons sharing one
        database fence their moves with it; None (the default) checks nothing."""
        return self._store.stage_guard

    @stage_guard.setter
    def stage_guard(self, guard: Callable[[sa.Connection, str], None] | None) -> None:
        self._store.stage_guard = guard

    def _invalidate(self) -> None:
        """Drop the resolve cache: called after every change to an existing version."""
        self._versions.invalidate()

    # -- registration -------------------------------------------------------------

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
    ) -> ModelVersion:
        """Register a new version; return its record.

        ``model`` is a file path (stored under its own name), a Python object
        (pickled as ``model.pkl``) or ``None`` (metadata only). With ``version=None``
        the number is chosen from the changes against the parent (the latest
        version unless ``parent`` or ``metadata['parent_model']`` says otherwise).
        Without ``signature``, one is inferred from ``input_example`` (a record, a
        DataFrame, an array: ``registry.signatures``) when given; otherwise the
        version has none, and ``info`` says so.
        """
        if signature is None and input_example is not None:
            signature = infer_signature(input_example, model)
        return registration.register_model(
            self._store,
            self.artifacts,
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
            default_actor=self.actor,
            default_increment=self.increment,
            limits=self.limits,
        )

    def version_model(
        self,
        name: str,
        version_type: str = "patch",
        *,
        metadata: Mapping[str, Any] | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """A new version bumped from the latest one, sharing its artifact and files.

        ``minor``: v3.0.0 -> v3.1.0. The new version starts in ``dev``; ``metadata``
        entries override the copied ones.
        """
        return bumping.version_model(
            self._store,
            name,
            version_type,
            metadata=metadata,
            reason=reason,
            actor=actor,
            default_actor=self.actor,
        )

    # -- stage moves and the other changes to a version ---------------------------

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
        """Move a version to ``to_stage``; entering production archives the previous one.

        Both transitions (and their audit events) commit in one transaction. A stage
        guarded by an approval policy (or ``approval_required=True``) needs enough
        approvals of this exact version first; ``force`` does not skip them.
        """
        result = stage_moves.promote_model(
            self._store,
            name,
            version,
            from_stage,
            to_stage,
            reason,
            force=force,
            approval_required=approval_required,
            actor=actor,
            default_actor=self.actor,
            environment=self.environment,
        )
        self._invalidate()
        return result

    def rollback(
        self,
        name: str,
        to_version: str | SemVer | None = None,
        *,
        reason: str,
        actor: str | None = None,
    ) -> ModelVersion:
        """Put a previous version back in production, archiving the current one.

        Without ``to_version``: the version that was production before the current
        one, from history. No approval is needed; it is one audited transaction.
        """
        result = stage_moves.rollback(
            self._store,
            name,
            to_version,
            reason=reason,
            actor=actor,
            default_actor=self.actor,
            environment=self.environment,
        )
        self._invalidate()
        return result

    def set_model_signature(
        self,
        model: str,
        inputs: Mapping[str, str],
        outputs: Mapping[str, str] | None = None,
        *,
        version: str | SemVer | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Set a version's signature; ``model`` is ``name-vX.Y.Z`` or a name plus ``version``.

        Refused when the new inputs break compatibility with the parent version
        without a major bump, the same rule as at registration.
        """
        result = stage_moves.set_model_signature(
            self._store,
            model,
            inputs,
            outputs,
            version=version,
            actor=actor,
            default_actor=self.actor,
            limits=self.limits,
        )
        self._invalidate()
        return result

    def deprecate_model(
        self,
        name: str,
        version: str | SemVer,
        reason: str,
        end_of_life: str | date | datetime | None = None,
        *,
        actor: str | None = None,
    ) -> ModelVersion:
        """Mark a version deprecated with a reason and an optional end of life."""
        result = stage_moves.deprecate_model(
            self._store, name, version, reason, end_of_life, actor=actor, default_actor=self.actor
        )
        self._invalidate()
        return result

    # -- reads --------------------------------------------------------------------

    def get_model_version(
        self,
        name: str,
        version: str | SemVer | None = None,
        *,
        stage: str | None = None,
    ) -> ModelVersion:
        """The record of one version, by number or by stage (default: production).

        Stage lookups are the resolve hot path: served from a cache that is
        dropped as soon as any process commits a change (see ``Store.generation``).
        """
        return self._versions.get(name, version, stage=stage)

    def resolve(self, name: str, stage: str = "production") -> ModelVersion:
        """Which version serves ``name`` in ``stage``: the hot path for serving code.

        A cache hit costs one ``data_version`` probe and a dict lookup; any commit
        by any process changes the probe's answer and drops the cache.
        """
        return self._versions.resolve(name, stage)

    def get_model(
        self,
        name: str,
        stage: str | None = None,
        version: str | SemVer | None = None,
        *,
        force: bool = False,
    ) -> Any:
        """Load a version's model: the unpickled object for ``model.pkl`` (only after
        its SHA-256 verifies), else the verified artifact's path.

        A deprecated version loads with a ``DeprecatedModelWarning``; after its end
        of life it is refused unless ``force=True``.
        """
        return reads.get_model(
            self._store, self.artifacts, self._versions, name, stage, version, force=force
        )

    def get_file(self, name: str, version: str | SemVer, file_name: str) -> bytes:
        """The bytes of one of a version's files, verified against its digest."""
        return reads.get_file(self._store, self.artifacts, self._versions, name, version, file_name)

    def get_model_by_date(self, name: str, date: str | datetime) -> ModelVersion:
        """The version that was in production at that instant (a bare date: end of day, UTC)."""
        return reads.get_model_by_date(self._store, name, date)

    def list_models(self) -> list[ModelSummary]:
        return reads.list_models(self._store)

    def list_versions(
        self,
        name: str | None = None,
        *,
        stage: str | None = None,
        tag: str | None = None,
        increment: str | None = None,
        deprecated: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ModelVersion]:
        """Versions, newest first, filtered; records omit file manifests."""
        return reads.list_versions(
            self._store,
            name,
            stage=stage,
            tag=tag,
            increment=increment,
            deprecated=deprecated,
            limit=limit,
            offset=offset,
        )

    def history(self, name: str) -> list[Transition]:
        """Every stage transition of a model, oldest first (the deployment history)."""
        return reads.history(self._store, name)

    def compare_models(self, model_a: str, model_b: str) -> Comparison:
        """Compare two versions given as ``name-vX.Y.Z`` (the seed's form)."""
        return reads.compare_models(self._versions, model_a, model_b)

    # -- approvals ----------------------------------------------------------------

    def set_approval_required(
        self,
        stage: str,
        approvers: Sequence[str],
        min_approvals: int = 1,
        *,
        model: str | None = None,
        actor: str | None = None,
    ) -> approvals.Policy:
        """Require ``min_approvals`` distinct listed approvers before a version enters
        ``stage``: for one ``model``, or registry-wide when ``model`` is None."""
        return approving.set_approval_required(
            self._store,
            stage,
            approvers,
            min_approvals,
            model=model,
            actor=actor,
            default_actor=self.actor,
        )

    def approval_policy(
        self, name: str | None, stage: str = "production", *, at: datetime | None = None
    ) -> approvals.Policy | None:
        """The policy in force for a model's stage (its own, else the registry's; only
        the registry's when ``name`` is None), now or as it stood at ``at``."""
        return approving.approval_policy(self._store, name, stage, at=at)

    def clear_approval_policy(
        self, stage: str, *, model: str | None = None, actor: str | None = None
    ) -> approvals.Policy | None:
        """Remove the policy set for ``model`` (it falls back to the registry-wide one),
        or the registry-wide one when ``model`` is None; returns the policy now in force."""
        return approving.clear_approval_policy(
            self._store, stage, model=model, actor=actor, default_actor=self.actor
        )

    def approve_model(
        self,
        name: str,
        version: str | SemVer,
        approver: str,
        comments: str | None = None,
        *,
        stage: str = "production",
    ) -> approvals.ApprovalDecision:
        """Record ``approver``'s approval of this exact version entering ``stage``."""
        return approving.decide(self._store, name, version, approver, comments, stage, "approve")

    def reject_model(
        self,
        name: str,
        version: str | SemVer,
        approver: str,
        comments: str | None = None,
        *,
        stage: str = "production",
    ) -> approvals.ApprovalDecision:
        """Record a rejection; the version cannot enter ``stage`` while it stands."""
        return approving.decide(self._store, name, version, approver, comments, stage, "reject")

    def approval_status(
        self, name: str, version: str | SemVer, stage: str = "production"
    ) -> approvals.Status:
        """Whether this version may enter ``stage`` now as far as approvals go: the
        policy in force, who approved, how many more are needed, standing rejections.
        The same judgement a promotion makes, without attempting one."""
        return approving.approval_status(self._store, name, version, stage)

    def approvals(self, name: str, version: str | SemVer) -> list[approvals.ApprovalDecision]:
        """Every approval and rejection recorded for a version, oldest first."""
        return approving.decisions(self._store, name, version)

    # -- auto-rollback triggers (judged by the controller's guard) ----------------

    def set_auto_rollback_triggers(
        self,
        name: str | None = None,
        *,
        error_rate_threshold: float | None = None,
        latency_threshold: float | None = None,
        accuracy_drop_threshold: float | None = None,
        window: str | float = "1h",
        min_samples: int = 100,
        consecutive: int = 1,
        cooldown: str | float = "1h",
        actor: str | None = None,
    ) -> tuple[auto_rollback.RollbackTrigger, ...]:
        """Roll ``name``'s production version back (registry-wide when None) when its
        error rate or p95 latency (ms) exceeds, or its accuracy drops more than, the
        threshold over ``window``. Replaces the level's triggers; audited."""
        return rollback_triggers.set_triggers(
            self._store,
            name,
            error_rate_threshold=error_rate_threshold,
            latency_threshold=latency_threshold,
            accuracy_drop_threshold=accuracy_drop_threshold,
            window=window,
            min_samples=min_samples,
            consecutive=consecutive,
            cooldown=cooldown,
            actor=actor,
            default_actor=self.actor,
        )

    def clear_auto_rollback_triggers(
        self, name: str | None = None, *, actor: str | None = None
    ) -> None:
        """Remove the level's triggers (a model then falls back to the registry-wide ones)."""
        rollback_triggers.clear_triggers(self._store, name, actor=actor, default_actor=self.actor)

    def auto_rollback_triggers(self, name: str) -> tuple[auto_rollback.RollbackTrigger, ...]:
        """The triggers guarding ``name``'s production version: its own, else registry-wide."""
        return rollback_triggers.effective_triggers(self._store, name)

    def auto_rollback_settings(self) -> dict[str | None, auto_rollback.Setting]:
        """Every level's newest setting by model name (None: registry-wide), in one read."""
        return rollback_triggers.all_settings(self._store)

    # -- lineage ------------------------------------------------------------------

    def get_lineage(self, name: str, version: str | SemVer) -> lineage.LineageGraph:
        """Upstream lineage of a version plus its deployments (``.tree()`` prints the seed's)."""
        return provenance.get_lineage(self._store, name, version)

    def add_lineage_node(
        self, ref: str, *, attrs: Mapping[str, Any] | None = None, actor: str | None = None
    ) -> lineage.Node:
        """Declare a node such as ``data:v2024-02`` or ``feature-engineering:v2``."""
        return provenance.add_lineage_node(
            self._store, ref, attrs=attrs, actor=actor, default_actor=self.actor,
            limits=self.limits,
        )  # fmt: skip

    def add_lineage_edge(
        self, src: str, dst: str, relation: str = "derived", *, actor: str | None = None
    ) -> None:
        """Link two existing nodes; refused if either is missing or a cycle would form."""
        provenance.add_lineage_edge(
            self._store, src, dst, relation, actor=actor, default_actor=self.actor
        )

    def models_using_data(self, data_version: str) -> list[ModelVersion]:
        """Model versions trained (directly or not) on data with this version."""
        return provenance.models_using_data(self._store, data_version)

    def models_using_feature_set(self, feature_set_version: str) -> list[ModelVersion]:
        """Model versions built on this feature-engineering version."""
        return provenance.models_using_feature_set(self._store, feature_set_version)

    def models_using_feature(self, feature: str) -> list[ModelVersion]:
        """Model versions whose feature list contains ``feature``."""
        return provenance.models_using_feature(self._store, feature)

    def deployed_downstream_of(self, ref: str) -> list[lineage.Node]:
        """Deployments that descend from a lineage node, e.g. ``data:v2024-01``."""
        return provenance.deployed_downstream_of(self._store, ref)

    # -- audit --------------------------------------------------------------------

    def audit_log(
        self,
        model: str | None = None,
        *,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Audit events, oldest first, optionally for one model and a time range."""
        return auditing.audit_log(self._store, model, since=since, until=until, limit=limit)

    def verify_audit_chain(self) -> ChainBreak | None:
        """Walk the whole audit chain; the first broken link, or ``None``."""
        return auditing.verify_audit_chain(self._store)

    # -- artifacts ----------------------------------------------------------------

    def collect_garbage(
        self,
        *,
        older_than: timedelta = timedelta(days=1),
        dry_run: bool = False,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> GarbageReport:
        """Remove blobs no version references and writes abandoned mid-way (temp files,
        unfinished uploads), when older than ``older_than``: younger ones may belong to
        a registration still in flight. Deletions run under the write lock, re-checking
        references, and are audited. ``now`` is the storage's clock (default: this
        host's), not the registry's: blob ages come from the file system or bucket.
        """
        return garbage.collect_garbage(
            self._store,
            self.artifacts,
            older_than=older_than,
            dry_run=dry_run,
            now=now or datetime.now(UTC),
            actor=names.actor(actor) if actor else self.actor,
        )

    def backup(self, dest: str | Path) -> BackupReport:
        """Write a consistent backup to the new directory ``dest`` while writers go on:
        the database, every referenced artifact (verified) and a manifest of digests
        (``registry.ops.backup``). ``restore_registry`` puts it back."""
        return backup.backup(self._store, self.artifacts, Path(dest))

    # -- environments -------------------------------------------------------------

    def open_environment(self, environment: str) -> ModelRegistry:
        """The registry of another environment (same home, its own database)."""
        return ModelRegistry(
            self.environments.get(environment),
            home=self.root,
            actor=self.actor,
            clock=self._store.clock,
            environment=environment,
            environments=self.environments,
            artifact_uri=self.artifact_uri,
            limits=self.limits,
        )

    def promote_to(
        self,
        model: str,
        target_env: str,
        *,
        stage: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Copy ``name-vX.Y.Z`` with its verified artifact and files into ``target_env``.

        The copy keeps its version number; it enters ``stage`` there (staging for
        staging/production environments, else dev). Both registries record a
        lineage edge and an audit event. Repeating it is safe: an identical copy
        already there is reused.
        """
        return environments.promote_to(self, model, target_env, stage=stage, actor=actor)


class CustomRegistry(ModelRegistry):
    """The seed's ``CustomRegistry(storage_uri="s3://ml-models/registry")``: a
    ``ModelRegistry`` whose artifacts live at ``storage_uri`` (``s3://``, ``gs://``,
    ``az://`` or a directory), content-addressed and verified like local ones.

    The database does not move to object storage (SQLite needs a file system with
    locks, and a bucket has none): it stays ``url``, by default SQLite under
    ``home``; hosts that share one registry share a PostgreSQL ``url`` as well as the
    bucket. Every ``ModelRegistry`` method works unchanged.
    """

    def __init__(
        self,
        storage_uri: str,
        url: str | None = None,
        *,
        home: str | Path | None = None,
        actor: str | None = None,
        clock: Clock | None = None,
        increment: str | None = None,
        environment: str | None = None,
        environments: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            url,
            home=home,
            actor=actor,
            clock=clock,
            increment=increment,
            environment=environment,
            environments=environments,
            artifact_uri=storage_uri,
        )
        self.storage_uri = storage_uri


def restore_registry(
    src: str | Path,
    *,
    home: str | Path | None = None,
    url: str | None = None,
    artifact_uri: str | Path | None = None,
    force: bool = False,
) -> RestoreReport:
    """Replace the registry at ``url`` (default: the one in ``home``) with the backup
    ``src`` and put its artifacts back, after verifying all of it. The registry is not
    opened first: it may be the damaged one this restores. Refuses to replace a
    registry with a longer audit trail than the backup's unless ``force``."""
    root = Path(home) if home is not None else default_home()
    target = url or default_url(root)
    if url is None:
        root.mkdir(parents=True, exist_ok=True)  # the registry's own home
    location = artifact_location(artifact_uri) if artifact_uri is not None else root / "artifacts"
    store = open_artifact_store(location, cache=root / "artifact-cache")
    return backup.restore(Path(src), url=target, artifacts=store, force=force)
