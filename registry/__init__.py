"""modelreg's registry core: versions, stages, artifacts and rollback.

from registry import ModelRegistry
registry = ModelRegistry()            # $MODELREG_HOME or ./.modelreg, SQLite
registry.register_model("fraud", model, metadata={...})
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.api import AuditRecord, CustomRegistry, ModelRegistry, restore_registry
    from registry.compare import Comparison
    from registry.errors import (
        ApprovalRefused,
        ApprovalRequired,
        Conflict,
        CorruptArtifact,
        DatabaseUnavailable,
        DeprecatedModelWarning,
        IllegalTransition,
        IncompatibleVersion,
        IntegrityError,
        InvalidInput,
        InvalidName,
        InvalidVersion,
        ModelEndOfLife,
        ModelNotFound,
        NoRegistry,
        NotFound,
        RegistryError,
        StorageError,
        UnusableDatabase,
        VersionNotFound,
    )
    from registry.experiments import track_experiment
    from registry.mlflow_registry import MLflowRegistry
    from registry.monitoring import ModelMonitor
    from registry.records import ModelSummary, ModelVersion, RollbackTrigger, Transition
    from registry.report import ModelGovernance
    from registry.versions import SemVer

# Names are loaded on first use (PEP 562), so that importing one light module of this
# package (its values, its pure rules) does not load the database, HTTP and data-frame
# libraries the rest needs: the controller's pure core depends on that.
_WHERE: dict[str, str] = {
    "ApprovalRefused": "registry.errors",
    "ApprovalRequired": "registry.errors",
    "AuditRecord": "registry.api",
    "Comparison": "registry.compare",
    "Conflict": "registry.errors",
    "CustomRegistry": "registry.api",
    "DatabaseUnavailable": "registry.errors",
    "UnusableDatabase": "registry.errors",
    "CorruptArtifact": "registry.errors",
    "DeprecatedModelWarning": "registry.errors",
    "IllegalTransition": "registry.errors",
    "IncompatibleVersion": "registry.errors",
    "IntegrityError": "registry.errors",
    "InvalidInput": "registry.errors",
    "InvalidName": "registry.errors",
    "InvalidVersion": "registry.errors",
    "MLflowRegistry": "registry.mlflow_registry",
    "ModelEndOfLife": "registry.errors",
    "ModelGovernance": "registry.report",
    "ModelMonitor": "registry.monitoring",
    "ModelNotFound": "registry.errors",
    "ModelRegistry": "registry.api",
    "restore_registry": "registry.api",
    "ModelSummary": "registry.records",
    "ModelVersion": "registry.records",
    "NoRegistry": "registry.errors",
    "NotFound": "registry.errors",
    "RegistryError": "registry.errors",
    "RollbackTrigger": "registry.records",
    "StorageError": "registry.errors",
    "SemVer": "registry.versions",
    "Transition": "registry.records",
    "VersionNotFound": "registry.errors",
    "track_experiment": "registry.experiments",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "ApprovalRefused",
    "ApprovalRequired",
    "AuditRecord",
    "Comparison",
    "Conflict",
    "CorruptArtifact",
    "CustomRegistry",
    "DatabaseUnavailable",
    "DeprecatedModelWarning",
    "IllegalTransition",
    "IncompatibleVersion",
    "IntegrityError",
    "InvalidInput",
    "InvalidName",
    "InvalidVersion",
    "MLflowRegistry",
    "ModelEndOfLife",
    "ModelGovernance",
    "ModelMonitor",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSummary",
    "ModelVersion",
    "NoRegistry",
    "NotFound",
    "RegistryError",
    "RollbackTrigger",
    "SemVer",
    "StorageError",
    "Transition",
    "UnusableDatabase",
    "VersionNotFound",
    "restore_registry",
    "track_experiment",
]
