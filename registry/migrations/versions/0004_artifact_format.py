"""Record how a model artifact was made: only registry-pickled objects are unpickled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Before this revision ``get_model`` decided by file name, so a file a caller
uploaded as ``model.pkl`` would have been unpickled on load. Existing rows are
left as ``NULL`` (unknown), which loads as a verified file path: never unpickled.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(sa.Column("artifact_format", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("artifact_format")
