"""Table definitions (SQLModel over SQLAlchemy 2).

These classes describe the schema; the Alembic migrations in ``registry/migrations``
create and upgrade it. Hot paths use the ``__table__`` objects with SQLAlchemy Core
rather than ORM sessions, which keeps a durable registration well under a millisecond.

Invariants the database enforces, not only Python:
- one row per (model, major, minor, patch);
- at most one ``production`` version per model (partial unique index);
- the audit chain cannot fork (``prev_hash`` is unique) and is appended under a lock
  on the single ``audit_head`` row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

STAGES = ("dev", "staging", "production", "archived")
GENESIS_HASH = "0" * 64

metadata = SQLModel.metadata
_TS = sa.DateTime(timezone=True)


class RegisteredModel(SQLModel, table=True):
    __tablename__: ClassVar[str] = "registered_model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, unique=True))
    description: str | None = None
    owner: str | None = None
    created_at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class ModelVersionRow(SQLModel, table=True):
    __tablename__: ClassVar[str] = "model_version"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "major", "minor", "patch", name="uq_version_number"),
        sa.Index(
            "uq_one_production_per_model",
            "model_id",
            unique=True,
            sqlite_where=sa.text("stage = 'production'"),
            postgresql_where=sa.text("stage = 'production'"),
        ),
        sa.Index("ix_version_model_stage", "model_id", "stage"),
        sa.CheckConstraint(
            "stage IN ('dev', 'staging', 'production', 'archived')", name="ck_version_stage"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", nullable=False)
    major: int
    minor: int
    patch: int
    stage: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    artifact_digest: str | None = Field(default=None, max_length=64)
    artifact_size: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    artifact_name: str | None = None
    artifact_format: str | None = None  # "pickle" (an object we serialised) | "file"
    meta: dict[str, Any] = Field(sa_column=sa.Column("metadata", sa.JSON, nullable=False))
    signature: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    features: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    tags: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    owner: str | None = None
    parent_id: int | None = Field(default=None, foreign_key="model_version.id")
    increment: str | None = None
    created_at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class StageTransition(SQLModel, table=True):
    """One row per stage change; registration is a transition from ``None``."""

    __tablename__: ClassVar[str] = "stage_transition"
    __table_args__ = (sa.Index("ix_transition_model_at", "model_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", nullable=False)
    version_id: int = Field(foreign_key="model_version.id", nullable=False)
    from_stage: str | None = None
    to_stage: str
    kind: str  # register | promote | rollback | archive
    actor: str
    reason: str | None = None
    at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class AuditEvent(SQLModel, table=True):
    """Append-only; ``hash`` covers every other column and ``prev_hash``."""

    __tablename__: ClassVar[str] = "audit_event"

    id: int = Field(primary_key=True)
    at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    reason: str | None = None
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """A single row (id 1): the last event's id and hash; locked by every writer."""

    __tablename__: ClassVar[str] = "audit_head"

    id: int = Field(primary_key=True)
    last_id: int
    last_hash: str = Field(max_length=64)


class VersionFile(SQLModel, table=True):
    """The files a version keeps; small ones inline, the model file by digest in the store."""

    __tablename__: ClassVar[str] = "version_file"

    version_id: int = Field(foreign_key="model_version.id", primary_key=True)
    name: str = Field(primary_key=True, max_length=200)
    role: str
    digest: str = Field(max_length=64, index=True)
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    content: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))


class Deprecation(SQLModel, table=True):
    __tablename__: ClassVar[str] = "deprecation"

    version_id: int = Field(foreign_key="model_version.id", primary_key=True)
    reason: str
    end_of_life: datetime | None = Field(default=None, sa_column=sa.Column(_TS))
    actor: str
    at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


models_t: sa.Table = RegisteredModel.__table__  # type: ignore[attr-defined]
versions_t: sa.Table = ModelVersionRow.__table__  # type: ignore[attr-defined]
transitions_t: sa.Table = StageTransition.__table__  # type: ignore[attr-defined]
audit_t: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]
audit_head_t: sa.Table = AuditHead.__table__  # type: ignore[attr-defined]
files_t: sa.Table = VersionFile.__table__  # type: ignore[attr-defined]
deprecations_t: sa.Table = Deprecation.__table__  # type: ignore[attr-defined]


class ApprovalPolicy(SQLModel, table=True):
    """Who must approve entry into a stage; ``model_id`` NULL is the registry default."""

    __tablename__: ClassVar[str] = "approval_policy"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int | None = Field(default=None, foreign_key="registered_model.id")
    stage: str
    approvers: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    min_approvals: int
    actor: str
    at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class Approval(SQLModel, table=True):
    """One approver's decision on one version entering one stage."""

    __tablename__: ClassVar[str] = "approval"
    __table_args__ = (
        sa.UniqueConstraint("version_id", "stage", "approver", name="uq_one_decision_each"),
    )

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id")
    stage: str
    approver: str
    decision: str  # approve | reject
    comments: str | None = None
    at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class LineageNode(SQLModel, table=True):
    """A typed node: data, feature_set, experiment, model_version or deployment."""

    __tablename__: ClassVar[str] = "lineage_node"
    __table_args__ = (sa.UniqueConstraint("kind", "key", name="uq_lineage_node"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    key: str
    version: str | None = None
    attrs: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class LineageEdge(SQLModel, table=True):
    __tablename__: ClassVar[str] = "lineage_edge"

    src_id: int = Field(foreign_key="lineage_node.id", primary_key=True)
    dst_id: int = Field(foreign_key="lineage_node.id", primary_key=True)
    relation: str
    created_at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


class Experiment(SQLModel, table=True):
    __tablename__: ClassVar[str] = "experiment"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    increment: str | None = None
    params: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    metrics: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    status: str
    actor: str
    started_at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=sa.Column(_TS))


policies_t: sa.Table = ApprovalPolicy.__table__  # type: ignore[attr-defined]
approvals_t: sa.Table = Approval.__table__  # type: ignore[attr-defined]
nodes_t: sa.Table = LineageNode.__table__  # type: ignore[attr-defined]
edges_t: sa.Table = LineageEdge.__table__  # type: ignore[attr-defined]
experiments_t: sa.Table = Experiment.__table__  # type: ignore[attr-defined]


class AutoRollbackPolicy(SQLModel, table=True):
    """Auto-rollback triggers and tracked metrics; ``model_id`` NULL is the registry
    default. Newest row per level wins; ``triggers`` NULL: nothing set at this level."""

    __tablename__: ClassVar[str] = "auto_rollback_policy"
    __table_args__ = (sa.Index("ix_auto_rollback_model", "model_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int | None = Field(default=None, foreign_key="registered_model.id")
    triggers: list[dict[str, Any]] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    tracked: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    actor: str
    at: datetime = Field(sa_column=sa.Column(_TS, nullable=False))


auto_rollback_t: sa.Table = AutoRollbackPolicy.__table__  # type: ignore[attr-defined]
