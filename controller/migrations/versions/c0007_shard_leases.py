"""Sharded ownership for several daemons on one database: a lease per shard and a row
per member.

``controller_shard_lease``: one row per shard (created on first use), its ``owner``
(a member id, NULL when free), the fencing ``token`` (incremented by every
acquisition) and ``expires_at``, in epoch seconds on the database's clock (never a
daemon's). ``controller_member``: each daemon's heartbeat, so that every member
computes the same assignment from the same live members.

Revision ID: c0007
Revises: c0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0007"
down_revision = "c0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_shard_lease",
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("renewed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "controller_member",
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("renewed_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("controller_member")
    op.drop_table("controller_shard_lease")
