"""modelreg's registry core: versions, stages, artifacts and rollback.

from registry import ModelRegistry
registry = ModelRegistry()            # $MODELREG_HOME or ./.modelreg, SQLite
registry.register_model("fraud", model, metadata={...})
"""

from registry.api import ModelRegistry
from registry.compare import Comparison
from registry.errors import (
    Conflict,
    CorruptArtifact,
    IllegalTransition,
    IncompatibleVersion,
    IntegrityError,
    InvalidInput,
    InvalidName,
    InvalidVersion,
    ModelNotFound,
    NotFound,
    RegistryError,
    VersionNotFound,
)
from registry.records import ModelSummary, ModelVersion, Transition
from registry.versions import SemVer

__all__ = [
    "Comparison",
    "Conflict",
    "CorruptArtifact",
    "IllegalTransition",
    "IncompatibleVersion",
    "IntegrityError",
    "InvalidInput",
    "InvalidName",
    "InvalidVersion",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSummary",
    "ModelVersion",
    "NotFound",
    "RegistryError",
    "SemVer",
    "Transition",
    "VersionNotFound",
]
