"""Promotion between environments: a version copied into another environment's registry.

Each environment is a separate registry (its own database and store), so this is
the one concern that works on whole ``ModelRegistry`` objects rather than a store:
it reads and verifies through the source's public methods, registers through the
target's, and links the two in both registries' lineage and audit trails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry import lineage, names
from registry.errors import Conflict, CorruptArtifact, InvalidInput, NotFound
from registry.ops.preparation import NamedArtifact
from registry.records import ModelVersion
from registry.store import Store, Tx
from registry.versions import split_model_ref

if TYPE_CHECKING:
    from registry.api import ModelRegistry


def promote_to(
    registry: ModelRegistry,
    model: str,
    target_env: str,
    *,
    stage: str | None,
    actor: str | None,
) -> ModelVersion:
    """``ModelRegistry.promote_to``: an identical copy already there is reused."""
    name, number = split_model_ref(model)
    names.identifier(target_env, "environment")
    if registry.environment is not None and target_env == registry.environment:
        raise InvalidInput(f"{model} is already in environment {target_env!r}")
    who = names.actor(actor) if actor else registry.actor
    source = registry.get_model_version(name, number)
    entry_stage = stage or ("staging" if target_env in ("staging", "production") else "dev")
    here = registry.environment or "default"
    with registry.open_environment(target_env) as target:
        try:
            copied = target.get_model_version(name, number)
            if copied.artifact_digest != source.artifact_digest:
                raise Conflict(f"{target_env} already has {model} with a different artifact")
        except NotFound:
            artifact = (
                registry.artifacts.verify(source.artifact_digest)
                if source.artifact_digest
                else None
            )
            copied = target.register_model(
                name,
                NamedArtifact(artifact, source.artifact_name, source.artifact_format or "file")
                if artifact
                else None,
                version=number,
                metadata=source.metadata,
                stage=entry_stage,
                tags=source.tags,
                signature=source.signature,
                features=source.features,
                requirements=registry.get_file(name, number, "requirements.txt").decode(),
                owner=source.owner,
                actor=who,
            )
            if copied.artifact_digest != source.artifact_digest:
                raise CorruptArtifact(
                    f"{model}: the copy in {target_env} does not verify"
                ) from None
        _link_environment(target.store, f"{name}-{number}", here, "imported_from", who)
    _link_environment(registry.store, f"{name}-{number}", target_env, "promoted_to", who)
    return copied


def _link_environment(store: Store, ref: str, other_env: str, relation: str, who: str) -> None:
    """Record in this registry that ``ref`` was promoted to, or imported from, ``other_env``."""

    def op(tx: Tx) -> None:
        local = lineage.ensure_node(tx.conn, "model_version", ref, tx.now)
        remote = lineage.ensure_node(
            tx.conn,
            "model_version",
            f"{ref}@{other_env}",
            tx.now,
            attrs={"environment": other_env},
        )
        src, dst = (local, remote) if relation == "promoted_to" else (remote, local)
        lineage.add_edge(tx.conn, src, dst, relation, tx.now)
        tx.audit(actor=who, action=relation, target=ref, after={"environment": other_env})

    store.write(op)
