"""Guarding production: each trigger's remembered streak, and the guard's actions.

``controller_guard_trigger`` holds one row per (model, trigger): the production
version it belongs to, the breaches in a row and the last firing, plus the last
result for people. ``controller_guard_action`` is the guard's log of rollbacks
(``pending`` is written before the registry call, so a crash in between is seen
and repaired), whose ``cooldown_until`` keeps the guard from flapping after a
restart. Times are UNIX epoch seconds, as in c0001.

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_guard_trigger",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("trigger", sa.String(128), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("streak", sa.Integer, nullable=False),
        sa.Column("last_fired_at", sa.Float, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "controller_guard_action",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("from_version", sa.String(64), nullable=False),
        sa.Column("to_version", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("cooldown_until", sa.Float, nullable=False),
    )
    op.create_index("ix_controller_guard_action_model", "controller_guard_action", ["model", "id"])


def downgrade() -> None:
    op.drop_index("ix_controller_guard_action_model", table_name="controller_guard_action")
    op.drop_table("controller_guard_action")
    op.drop_table("controller_guard_trigger")
