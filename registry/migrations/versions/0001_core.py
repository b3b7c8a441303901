"""Core registry: models, versions, stage transitions, hash-chained audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.String),
        sa.Column("owner", sa.String),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id"), nullable=False),
        sa.Column("major", sa.Integer, nullable=False),
        sa.Column("minor", sa.Integer, nullable=False),
        sa.Column("patch", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("artifact_digest", sa.String(64)),
        sa.Column("artifact_size", sa.BigInteger),
        sa.Column("artifact_name", sa.String),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("signature", sa.JSON),
        sa.Column("features", sa.JSON),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("owner", sa.String),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_version.id")),
        sa.Column("increment", sa.String),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("model_id", "major", "minor", "patch", name="uq_version_number"),
        sa.CheckConstraint(
            "stage IN ('dev', 'staging', 'production', 'archived')", name="ck_version_stage"
        ),
    )
    op.create_index("ix_version_model_stage", "model_version", ["model_id", "stage"])
    # The invariant "at most one production version per model" lives in the database.
    op.create_index(
        "uq_one_production_per_model",
        "model_version",
        ["model_id"],
        unique=True,
        sqlite_where=sa.text("stage = 'production'"),
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.create_table(
        "stage_transition",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id"), nullable=False),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), nullable=False),
        sa.Column("from_stage", sa.String),
        sa.Column("to_stage", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_transition_model_at", "stage_transition", ["model_id", "id"])
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
        sa.Column("reason", sa.String),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": "0" * 64}])


def downgrade() -> None:
    for table in ("audit_head", "audit_event", "stage_transition", "model_version"):
        op.drop_table(table)
    op.drop_table("registered_model")
