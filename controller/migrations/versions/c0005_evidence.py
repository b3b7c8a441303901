"""The analysis state each rollout carries between looks (``abtest.AnalysisState`` as
JSON: running p-values and bounds, mixture scales, the group-sequential spending state
and the closed canary steps), so that a restarted daemon continues the same tests
instead of starting them again and spending their alpha twice.

Revision ID: c0005
Revises: c0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0005"
down_revision = "c0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("controller_rollout") as batch:
        batch.add_column(sa.Column("evidence", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("controller_rollout") as batch:
        batch.drop_column("evidence")
