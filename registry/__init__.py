"""modelreg's registry core: versions, stages, artifacts and rollback.

from registry import ModelRegistry
registry = ModelRegistry()            # $MODELREG_HOME or ./.modelreg, SQLite
registry.register_model("fraud", model, metadata={...})
"""

from registry.api import AuditRecord, ModelRegistry
from registry.auto_rollback import RollbackTrigger
from registry.compare import Comparison
from registry.errors import (
    ApprovalRefused,
    ApprovalRequired,
    Conflict,
    CorruptArtifact,
    DeprecatedModelWarning,
    IllegalTransition,
    IncompatibleVersion,
    IntegrityError,
    InvalidInput,
    InvalidName,
    InvalidVersion,
    ModelEndOfLife,
    ModelNotFound,
    NotFound,
    RegistryError,
    VersionNotFound,
)
from registry.experiments import track_experiment
from registry.monitoring import ModelMonitor
from registry.records import ModelSummary, ModelVersion, Transition
from registry.report import ModelGovernance
from registry.versions import SemVer

__all__ = [
    "ApprovalRefused",
    "ApprovalRequired",
    "AuditRecord",
    "Comparison",
    "Conflict",
    "CorruptArtifact",
    "DeprecatedModelWarning",
    "IllegalTransition",
    "IncompatibleVersion",
    "IntegrityError",
    "InvalidInput",
    "InvalidName",
    "InvalidVersion",
    "ModelEndOfLife",
    "ModelGovernance",
    "ModelMonitor",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSummary",
    "ModelVersion",
    "NotFound",
    "RegistryError",
    "RollbackTrigger",
    "SemVer",
    "Transition",
    "VersionNotFound",
    "track_experiment",
]
