"""Immutable records the registry returns; storage rows never leave ``registry``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from registry.versions import SemVer


@dataclass(frozen=True, slots=True)
class VersionFileRecord:
    name: str
    role: str  # model | metadata | signature | requirements | features
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class DeprecationRecord:
    reason: str
    end_of_life: datetime | None
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a registered model as stored."""

    name: str
    version: SemVer
    stage: str
    created_at: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)
    signature: Mapping[str, Any] | None = None
    features: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    parent: SemVer | None = None
    artifact_digest: str | None = None
    artifact_size: int | None = None
    artifact_name: str | None = None
    artifact_format: str | None = None  # "pickle" | "file" | None (unknown: never unpickled)
    increment: str | None = None
    files: tuple[VersionFileRecord, ...] = ()
    deprecation: DeprecationRecord | None = None

    @property
    def ref(self) -> str:
        """``fraud-detection-v3.1.0``: how the seed names a version."""
        return f"{self.name}-{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(self.version),
            "stage": self.stage,
            "created_at": self.created_at.isoformat(),
            "owner": self.owner,
            "parent": str(self.parent) if self.parent else None,
            "tags": list(self.tags),
            "features": list(self.features) if self.features is not None else None,
            "signature": dict(self.signature) if self.signature is not None else None,
            "metadata": dict(self.metadata),
            "artifact": {
                "name": self.artifact_name,
                "digest": self.artifact_digest,
                "size": self.artifact_size,
                "format": self.artifact_format,
            },
            "increment": self.increment,
            "files": [
                {"name": f.name, "role": f.role, "digest": f.digest, "size": f.size}
                for f in self.files
            ],
            "deprecation": None
            if self.deprecation is None
            else {
                "reason": self.deprecation.reason,
                "end_of_life": self.deprecation.end_of_life.isoformat()
                if self.deprecation.end_of_life
                else None,
                "actor": self.deprecation.actor,
                "at": self.deprecation.at.isoformat(),
            },
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """A stage change in a model's history (registration has ``from_stage=None``)."""

    name: str
    version: SemVer
    from_stage: str | None
    to_stage: str
    kind: str
    actor: str
    reason: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(self.version),
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "kind": self.kind,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    versions: int
    latest: SemVer | None
    production: SemVer | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "latest": str(self.latest) if self.latest else None,
            "production": str(self.production) if self.production else None,
            "created_at": self.created_at.isoformat(),
        }


Direction = Literal["above", "below"]
Compare = Literal["value", "drop"]


@dataclass(frozen=True, slots=True)
class RollbackTrigger:
    """One stored rule: roll production back when ``metric`` (or its drop against the
    registered value) is ``direction`` ``threshold`` over the last ``window_s`` seconds,
    on at least ``min_samples`` observations, ``consecutive`` evaluations in a row;
    after a rollback, no further automatic one for ``cooldown_s`` seconds."""

    name: str
    metric: str
    threshold: float
    direction: Direction = "above"
    compare: Compare = "value"
    window_s: float = 3600.0
    min_samples: int = 100
    consecutive: int = 1
    cooldown_s: float = 3600.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollbackTrigger:
        return cls(
            name=str(data["name"]),
            metric=str(data["metric"]),
            threshold=float(data["threshold"]),
            direction="below" if data.get("direction") == "below" else "above",
            compare="drop" if data.get("compare") == "drop" else "value",
            window_s=float(data["window_s"]),
            min_samples=int(data["min_samples"]),
            consecutive=int(data["consecutive"]),
            cooldown_s=float(data["cooldown_s"]),
        )
