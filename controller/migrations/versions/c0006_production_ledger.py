"""One ledger of production rollbacks, whoever asked: the guard's action table becomes
``controller_production_action`` with the request's typed ``cause`` (``guard`` for the
rows written so far, ``alert``), the alert ``instance`` it answers
(``fingerprint@startsAt``) and the ``actor`` the registry recorded. Alerts used to find
their own earlier rollback by matching the instance in the registry's reason text; the
ledger row, written before the registry call, is that memory now.

Revision ID: c0006
Revises: c0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0006"
down_revision = "c0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_controller_guard_action_model", table_name="controller_guard_action")
    op.rename_table("controller_guard_action", "controller_production_action")
    with op.batch_alter_table("controller_production_action") as batch:
        batch.add_column(sa.Column("cause", sa.String(32), nullable=False, server_default="guard"))
        batch.add_column(sa.Column("instance", sa.Text, nullable=True))
        batch.add_column(sa.Column("actor", sa.String(128), nullable=False, server_default=""))
    op.create_index(
        "ix_controller_production_action_model", "controller_production_action", ["model", "id"]
    )


def downgrade() -> None:
    # The previous release's guard reads every row as its own action: an alert's row
    # would end a guard cooldown early. Alert rows are dropped (their dedup is lost).
    op.execute("DELETE FROM controller_production_action WHERE cause <> 'guard'")
    op.drop_index(
        "ix_controller_production_action_model", table_name="controller_production_action"
    )
    with op.batch_alter_table("controller_production_action") as batch:
        batch.drop_column("actor")
        batch.drop_column("instance")
        batch.drop_column("cause")
    op.rename_table("controller_production_action", "controller_guard_action")
    op.create_index("ix_controller_guard_action_model", "controller_guard_action", ["model", "id"])
