"""The last route pushed to each model's router (recorded before the push), so that a
changed route goes above it when the router cannot say what serving holds
(``Router.read`` is None, e.g. after a restart) or a push's answer was lost.

Revision ID: c0004
Revises: c0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_pushed_route",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("route", sa.Text, nullable=False),
        sa.Column("pushed_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("controller_pushed_route")
