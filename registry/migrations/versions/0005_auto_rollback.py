"""Auto-rollback triggers and tracked metrics per model (or registry-wide).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

One row per change, newest wins per level (model, else registry-wide with
``model_id`` NULL), so reports can show what guarded a model at any time.
``triggers`` NULL means "nothing set at this level" (a model then falls back to
the registry-wide triggers); ``tracked`` lists the metrics ``ModelMonitor`` watches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_rollback_policy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_model.id")),
        sa.Column("triggers", sa.JSON),
        sa.Column("tracked", sa.JSON),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auto_rollback_model", "auto_rollback_policy", ["model_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_auto_rollback_model", "auto_rollback_policy")
    op.drop_table("auto_rollback_policy")
