"""Table definitions (SQLAlchemy 2 Core).

These classes describe the schema; the Alembic migrations in ``registry/migrations``
create and upgrade it. Hot paths use the ``__table__`` objects with SQLAlchemy Core
rather than ORM sessions, which keeps a durable registration well under a millisecond.
They are plain ``sa.Table`` objects, not SQLModel classes: nothing here is an ORM
model, and SQLModel's import cost about 0.1 s at every start of the CLI and daemon.

Invariants the database enforces, not only Python:
- one row per (model, major, minor, patch);
- at most one ``production`` version per model (partial unique index);
- the audit chain cannot fork (``prev_hash`` is unique) and is appended under a lock
  on the single ``audit_head`` row.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

STAGES = ("dev", "staging", "production", "archived")
GENESIS_HASH = "0" * 64

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)


_TEXT = sa.String  # unbounded VARCHAR, as the migrations create


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True)


def _at(name: str = "at", *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, _TS, nullable=nullable)


models_t = sa.Table(
    "registered_model",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", _TEXT),
    sa.Column("owner", _TEXT),
    _at("created_at"),
)

versions_t = sa.Table(
    "model_version",
    metadata,
    _id(),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id"), nullable=False),
    sa.Column("major", sa.Integer, nullable=False),
    sa.Column("minor", sa.Integer, nullable=False),
    sa.Column("patch", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("artifact_digest", sa.String(64)),
    sa.Column("artifact_size", sa.BigInteger),
    sa.Column("artifact_name", _TEXT),
    sa.Column("artifact_format", _TEXT),  # "pickle" (an object we serialised) | "file"
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("signature", sa.JSON),
    sa.Column("features", sa.JSON),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("owner", _TEXT),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_version.id")),
    sa.Column("increment", _TEXT),
    _at("created_at"),
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

# One row per stage change; registration is a transition from ``None``.
transitions_t = sa.Table(
    "stage_transition",
    metadata,
    _id(),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id"), nullable=False),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), nullable=False),
    sa.Column("from_stage", _TEXT),
    sa.Column("to_stage", _TEXT, nullable=False),
    sa.Column("kind", _TEXT, nullable=False),  # register | promote | rollback | archive
    sa.Column("actor", _TEXT, nullable=False),
    sa.Column("reason", _TEXT),
    _at(),
    sa.Index("ix_transition_model_at", "model_id", "id"),
)

# Append-only; ``hash`` covers every other column and ``prev_hash``.
audit_t = sa.Table(
    "audit_event",
    metadata,
    _id(),
    _at(),
    sa.Column("actor", _TEXT, nullable=False),
    sa.Column("action", _TEXT, nullable=False),
    sa.Column("target", _TEXT, nullable=False),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Column("reason", _TEXT),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False),
)

# A single row (id 1): the last event's id and hash; locked by every writer.
audit_head_t = sa.Table(
    "audit_head",
    metadata,
    _id(),
    sa.Column("last_id", sa.Integer, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
)

# The files a version keeps; small ones inline, the model file by digest in the store.
files_t = sa.Table(
    "version_file",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("role", _TEXT, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary),
)

deprecations_t = sa.Table(
    "deprecation",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), primary_key=True),
    sa.Column("reason", _TEXT, nullable=False),
    _at("end_of_life", nullable=True),
    sa.Column("actor", _TEXT, nullable=False),
    _at(),
)

# Who must approve entry into a stage; ``model_id`` NULL is the registry default.
policies_t = sa.Table(
    "approval_policy",
    metadata,
    _id(),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id")),
    sa.Column("stage", _TEXT, nullable=False),
    sa.Column("approvers", sa.JSON, nullable=False),
    sa.Column("min_approvals", sa.Integer, nullable=False),
    sa.Column("actor", _TEXT, nullable=False),
    _at(),
)

# One approver's decision on one version entering one stage.
approvals_t = sa.Table(
    "approval",
    metadata,
    _id(),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), nullable=False),
    sa.Column("stage", _TEXT, nullable=False),
    sa.Column("approver", _TEXT, nullable=False),
    sa.Column("decision", _TEXT, nullable=False),  # approve | reject
    sa.Column("comments", _TEXT),
    _at(),
    sa.UniqueConstraint("version_id", "stage", "approver", name="uq_one_decision_each"),
)

# A typed node: data, feature_set, experiment, model_version or deployment.
nodes_t = sa.Table(
    "lineage_node",
    metadata,
    _id(),
    sa.Column("kind", _TEXT, nullable=False),
    sa.Column("key", _TEXT, nullable=False),
    sa.Column("version", _TEXT),
    sa.Column("attrs", sa.JSON, nullable=False),
    _at("created_at"),
    sa.UniqueConstraint("kind", "key", name="uq_lineage_node"),
)

edges_t = sa.Table(
    "lineage_edge",
    metadata,
    sa.Column("src_id", sa.Integer, sa.ForeignKey("lineage_node.id"), primary_key=True),
    sa.Column("dst_id", sa.Integer, sa.ForeignKey("lineage_node.id"), primary_key=True),
    sa.Column("relation", _TEXT, nullable=False),
    _at("created_at"),
)

experiments_t = sa.Table(
    "experiment",
    metadata,
    _id(),
    sa.Column("name", _TEXT, nullable=False),
    sa.Column("increment", _TEXT),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("status", _TEXT, nullable=False),
    sa.Column("actor", _TEXT, nullable=False),
    _at("started_at"),
    _at("ended_at", nullable=True),
)

# Auto-rollback triggers and tracked metrics; ``model_id`` NULL is the registry
# default. Newest row per level wins; ``triggers`` NULL: nothing set at this level.
auto_rollback_t = sa.Table(
    "auto_rollback_policy",
    metadata,
    _id(),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id")),
    sa.Column("triggers", sa.JSON),
    sa.Column("tracked", sa.JSON),
    sa.Column("actor", _TEXT, nullable=False),
    _at(),
    sa.Index("ix_auto_rollback_model", "model_id", "id"),
)
