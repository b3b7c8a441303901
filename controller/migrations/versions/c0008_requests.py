"""Durable requests for several daemons, and who wrote each decision.

``controller_request``: an operator action, a rollout start or an alert's action
received by any member, kept until the member owning the model's shard applies it
(exactly once per ``key``: an alert instance, or the caller's idempotency key); its
``status`` (pending, applying, done, expired), the claim (member and fencing token)
and the outcome the receiving member answers with. ``controller_decision.member``:
the member that recorded the decision (NULL for a single daemon and older rows).

Revision ID: c0008
Revises: c0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0008"
down_revision = "c0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_request",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claim_token", sa.BigInteger, nullable=True),
        sa.Column("applied_at", sa.Float, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
    )
    op.create_index("ix_controller_request_open", "controller_request", ["status", "shard"])
    with op.batch_alter_table("controller_decision") as batch:
        batch.add_column(sa.Column("member", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("controller_decision") as batch:
        batch.drop_column("member")
    op.drop_index("ix_controller_request_open", table_name="controller_request")
    op.drop_table("controller_request")
