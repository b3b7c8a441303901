"""What the shell reads from the registry for the core's rules, failures as data.

``decide`` judges approvals but cannot read the registry (``read_approvals``); the
production rule needs to know when the current production version entered
production (``production_entered_at``); the shell refuses to promote a candidate
whose stored artifact no longer verifies (``artifact_problem``). ``open_registry``
opens the registry the config names: ours, or an MLflow tracking server
(``registry.kind: mlflow``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
import structlog

from controller.config import Config
from controller.core.state import Approvals
from registry import CorruptArtifact, MLflowRegistry, ModelRegistry, NotFound, RegistryError

__all__ = ["open_registry", "production_entered_at", "read_approvals"]

ACTOR = "modelreg-controller"


log = structlog.get_logger("controller")


def open_registry(config: Config, clock: Callable[[], datetime] | None = None) -> ModelRegistry:
    """The daemon's registry, on the daemon's clock (default: the system's); on MLflow,
    its governance database holds the daemon's tables."""
    section = config.registry
    if section.kind == "mlflow":
        assert section.tracking_uri is not None  # the config's validator requires it
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
    if isinstance(registry, MLflowRegistry):
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
