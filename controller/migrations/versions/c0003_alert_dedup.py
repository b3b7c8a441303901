"""Alert instances already acted on, so that repeats act once across restarts too.

One row per alert instance (Alertmanager's fingerprint and ``startsAt``), with when
it was first seen, so that old rows can be pruned. ``key`` is a SHA-256 of both,
keeping the primary key short whatever length a sender gives its fingerprints.

Revision ID: c0003
Revises: c0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_alert_seen",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("starts_at", sa.String(40), nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
    )
    op.create_index("ix_controller_alert_seen_first", "controller_alert_seen", ["first_seen"])


def downgrade() -> None:
    op.drop_index("ix_controller_alert_seen_first", table_name="controller_alert_seen")
    op.drop_table("controller_alert_seen")
