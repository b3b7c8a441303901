"""Governance: approval policies and decisions, lineage graph, experiments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "approval_policy",
        sa.Column("id", sa.Integer, primary_key=True),
        # NULL model_id: the registry-wide default for that stage.
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id")),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("approvers", sa.JSON, nullable=False),
        sa.Column("min_approvals", sa.Integer, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_policy_model_stage", "approval_policy", ["model_id", "stage"])
    op.create_table(
        "approval",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("approver", sa.String, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("comments", sa.String),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("version_id", "stage", "approver", name="uq_one_decision_each"),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_approval_decision"),
    )
    op.create_table(
        "lineage_node",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("attrs", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_lineage_node"),
    )
    op.create_table(
        "lineage_edge",
        sa.Column("src_id", sa.Integer, sa.ForeignKey("lineage_node.id"), primary_key=True),
        sa.Column("dst_id", sa.Integer, sa.ForeignKey("lineage_node.id"), primary_key=True),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_lineage_edge_dst", "lineage_edge", ["dst_id"])
    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("increment", sa.String(64)),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
    )
    op.create_index("ix_experiment_increment", "experiment", ["increment"])
    op.create_index("ix_version_increment", "model_version", ["increment"])


def downgrade() -> None:
    op.drop_index("ix_version_increment", "model_version")
    for table in ("experiment", "lineage_edge", "lineage_node", "approval", "approval_policy"):
        op.drop_table(table)
