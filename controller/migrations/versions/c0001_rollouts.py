"""Rollouts and their decisions.

Times are UNIX epoch seconds (float): identical on SQLite and PostgreSQL, and
exact enough for second-scale schedules. At most one active rollout per model is
enforced by a partial unique index; one rollout per (model, treatment) ever, so a
rolled-back or aborted candidate is never restarted by the staging watcher.

Revision ID: c0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None

_ACTIVE = "phase IN ('pending', 'progressing', 'paused', 'awaiting_approval')"


def upgrade() -> None:
    op.create_table(
        "controller_rollout",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("control", sa.String(64), nullable=False),
        sa.Column("treatment", sa.String(64), nullable=False),
        sa.Column("control_digest", sa.String(64), nullable=True),
        sa.Column("treatment_digest", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("step_started_at", sa.Float, nullable=False),
        sa.Column("next_eval_at", sa.Float, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("streaks", sa.Text, nullable=False),
        sa.Column("approved", sa.Boolean, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("intent", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.UniqueConstraint("model", "treatment", name="uq_controller_rollout_candidate"),
    )
    op.create_index(
        "uq_controller_rollout_active",
        "controller_rollout",
        ["model"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )
    op.create_table(
        "controller_decision",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "rollout_id",
            sa.Integer,
            sa.ForeignKey("controller_rollout.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("phase_from", sa.String(32), nullable=False),
        sa.Column("phase_to", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("numbers", sa.Text, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
    )
    op.create_index("ix_controller_decision_rollout", "controller_decision", ["rollout_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_controller_decision_rollout", table_name="controller_decision")
    op.drop_table("controller_decision")
    op.drop_index("uq_controller_rollout_active", table_name="controller_rollout")
    op.drop_table("controller_rollout")
