"""Ingest tables: raw prediction events and late ground-truth labels.

Timestamps are UNIX epoch seconds (float): window filters are range scans on one
numeric column, identical on SQLite and PostgreSQL, and inserts stay cheap.

Revision ID: m0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_event",
        sa.Column("prediction_id", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(256), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("error", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.Float, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
    )
    op.create_index("ix_ingest_event_model_ts", "ingest_event", ["model", "ts"])
    op.create_table(
        "ingest_label",
        sa.Column("prediction_id", sa.String(128), primary_key=True),
        sa.Column("label", sa.Float, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_ingest_label_ts", "ingest_label", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_ingest_label_ts", table_name="ingest_label")
    op.drop_table("ingest_label")
    op.drop_index("ix_ingest_event_model_ts", table_name="ingest_event")
    op.drop_table("ingest_event")
