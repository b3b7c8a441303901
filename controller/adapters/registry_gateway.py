"""What the shell reads from the registry for the core's rules, failures as data.

``decide`` judges approvals but cannot read the registry (``read_approvals``); the
production rule needs to know when the current production version entered
production (``production_entered_at``); the shell refuses to promote a candidate
whose stored artifact no longer verifies (``artifact_problem``). ``candidate_facts``
reads what one tick needs of the registry for each rollout (production, the
candidate's stage, its approvals), for many rollouts at once. ``open_registry`` opens
the registry the config names: ours, or an MLflow tracking server (``registry.kind:
mlflow``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeGuard

import sqlalchemy as sa
import structlog

from controller.config import Config
from controller.core.state import Approvals
from registry import (
    CorruptArtifact,
    ModelRegistry,
    NotFound,
    RegistryError,
    SemVer,
)
from registry.schema import approvals_t, models_t, policies_t, versions_t

if TYPE_CHECKING:
    from registry.mlflow_registry import MLflowRegistry

__all__ = [
    "CandidateFacts",
    "candidate_facts",
    "fronts_mlflow",
    "open_registry",
    "production_entered_at",
    "read_approvals",
    "read_facts",
]

ACTOR = "modelreg-controller"


log = structlog.get_logger("controller")


def fronts_mlflow(registry: ModelRegistry) -> TypeGuard[MLflowRegistry]:
    """Whether ``registry`` fronts an MLflow server. Its module (and an HTTP client) is
    loaded only when the config names one (``open_registry``), and an instance
    implies the module: a daemon on our own registry never imports it."""
    module = sys.modules.get("registry.mlflow_registry")
    return module is not None and isinstance(registry, module.MLflowRegistry)


def open_registry(config: Config, clock: Callable[[], datetime] | None = None) -> ModelRegistry:
    """The daemon's registry, on the daemon's clock (default: the system's); on MLflow,
    its governance database holds the daemon's tables."""
    section = config.registry
    if section.kind == "mlflow":
        assert section.tracking_uri is not None  # the config's validator requires it
        from registry.mlflow_registry import MLflowRegistry  # noqa: PLC0415 -- see fronts_mlflow

        return MLflowRegistry(
            section.tracking_uri,
            governance=config.registry_url(),
            home=section.home,
            actor=ACTOR,
            clock=clock,
        )
    return ModelRegistry(
        config.registry_url(),
        home=section.home,
        actor=ACTOR,
        artifact_uri=section.artifacts,
        clock=clock,
    )


def read_approvals(registry: ModelRegistry, model: str, version: str) -> tuple[bool, Approvals]:
    """Whether the registry guards production for ``model``, and what it holds for
    ``version``; a registry failure, or a database that cannot be read (locked,
    damaged), is data (``Approvals.error``, never a promotion), not an exception."""
    try:
        status = registry.approval_status(model, version, "production")
    except RegistryError as exc:
        return False, Approvals(error=str(exc))
    except sa.exc.SQLAlchemyError as exc:  # first line only: the SQL would drown the reason
        return False, Approvals(error=str(exc).splitlines()[0])
    rejected = tuple(f"{d.approver}: {d.comments or 'no reason given'}" for d in status.rejected)
    return status.required, Approvals(
        needed=status.needed,
        missing=status.missing,
        approved_by=status.approved_by,
        rejected=rejected,
    )


def production_entered_at(registry: ModelRegistry, model: str) -> datetime | None:
    """When the current production version of ``model`` entered production (its newest
    move to production in the registry's history); None without one."""
    for transition in reversed(registry.history(model)):
        if transition.to_stage == "production":
            return transition.at
    return None


def artifact_problem(registry: ModelRegistry, model: str, version: str) -> str | None:
    """Why ``version``'s stored artifact cannot be served as registered (re-hashed:
    a flipped bit, a truncated or missing blob), or None when it verifies or has no
    artifact. A store that cannot be reached right now is not a problem of the
    artifact: None, and the promotion goes on (serving verifies on load). On an object
    store the blob is read through the local cache, so a promotion may download it
    once. An MLflow front keeps artifacts in MLflow, with only a download cache here:
    not checked."""
    if fronts_mlflow(registry):
        return None
    try:
        digest = registry.get_model_version(model, version).artifact_digest
        if digest is not None:
            registry.artifacts.verify(digest)
    except (CorruptArtifact, NotFound) as exc:
        return f"{model} {version}'s artifact: {exc}"
    except (RegistryError, OSError) as exc:  # unreachable or unreadable now: not its bytes
        log.warning("artifact_not_verified", model=model, version=version, error=str(exc))
        return None
    return None


@dataclass(frozen=True, slots=True)
class CandidateFacts:
    """What one look at a rollout needs of the registry: the model's ``production``
    version (None: none, or one this registry cannot name), the candidate's ``stage``
    (None: gone) and its approvals for production (``read_approvals``)."""

    production: str | None
    stage: str | None
    approval_required: bool
    approvals: Approvals


def read_facts(registry: ModelRegistry, model: str, version: str) -> CandidateFacts:
    """``CandidateFacts`` of one rollout, read one by one (any registry)."""
    try:
        found = getattr(registry.resolve(model), "version", None)
    except NotFound:
        found = None
    production = None if found is None else str(found)  # None too: MLflow's unadopted
    try:
        stage: str | None = registry.get_model_version(model, version).stage
    except NotFound:
        stage = None
    required, approvals = read_approvals(registry, model, version)
    return CandidateFacts(production, stage, required, approvals)


_CANDIDATE_STAGES = ("staging", "dev")
_GUARDED = "production"


def candidate_facts(
    registry: ModelRegistry, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], CandidateFacts]:
    """``read_facts`` of every ``(model, candidate)`` pair, with a fixed number of
    queries for any number of pairs in the common case: production versions from
    ``list_models``, candidates' stages from the staging and dev listings, and
    approvals left out where none can exist (no approval policy for the model at any
    level and no approval or rejection recorded for the version). A pair outside that
    (a policy in force, a decision recorded, a candidate moved out of staging) is read
    one by one, as is every pair of an MLflow registry (its stages live in MLflow), and
    every pair when a listing fails (failures are then data, as ``read_approvals``
    makes them)."""
    wanted = list(dict.fromkeys(pairs))
    if not wanted:
        return {}
    if fronts_mlflow(registry):
        return {pair: read_facts(registry, *pair) for pair in wanted}
    try:
        production = {m.name: str(m.production) for m in registry.list_models()
                      if m.production is not None}  # fmt: skip
        stages = {(v.name, str(v.version)): v.stage for stage in _CANDIDATE_STAGES
                  for v in registry.list_versions(stage=stage)}  # fmt: skip
        plain = _without_approvals(registry, wanted)
    except (RegistryError, sa.exc.SQLAlchemyError) as exc:
        log.warning("registry_listing_failed", error=str(exc).splitlines()[0])
        return {pair: read_facts(registry, *pair) for pair in wanted}
    facts = {}
    for pair in wanted:
        stage = stages.get(pair)
        if stage is None or pair not in plain:
            facts[pair] = read_facts(registry, *pair)
        else:
            facts[pair] = CandidateFacts(production.get(pair[0]), stage, False, Approvals())
    return facts


def _without_approvals(
    registry: ModelRegistry, pairs: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The pairs whose approval status for production is certainly empty (what
    ``approval_status`` answers with no policy row at the model's level or the
    registry's and no decision row for the version), from two reads of the registry's
    small approval tables. Any other pair is for ``approval_status`` to judge.

    A stand-in until the registry offers its own statuses of many versions at once: it
    knows where the registry keeps policies and decisions, never what they mean."""
    with registry.store.read() as conn:
        policy_levels = {row[0] for row in conn.execute(
            sa.select(models_t.c.name).distinct()
            .select_from(policies_t.outerjoin(models_t, models_t.c.id == policies_t.c.model_id))
            .where(policies_t.c.stage == _GUARDED)
        )}  # fmt: skip
        if None in policy_levels:  # a registry-wide level exists: every model may be guarded
            return set()
        decided = {(row[0], str(SemVer(row[1], row[2], row[3]))) for row in conn.execute(
            sa.select(models_t.c.name, versions_t.c.major, versions_t.c.minor,
                      versions_t.c.patch).distinct()
            .select_from(approvals_t.join(versions_t, versions_t.c.id == approvals_t.c.version_id)
                         .join(models_t, models_t.c.id == versions_t.c.model_id))
            .where(approvals_t.c.stage == _GUARDED)
        )}  # fmt: skip
    return {pair for pair in pairs if pair[0] not in policy_levels and pair not in decided}
