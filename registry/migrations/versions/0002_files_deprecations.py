"""Per-version files (model file by digest; small files inline) and deprecations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_file",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        # Small files (metadata.json, features.yaml, ...) live here, committed with
        # their version; the model file lives in the artifact store (content NULL).
        sa.Column("content", sa.LargeBinary),
    )
    op.create_index("ix_version_file_digest", "version_file", ["digest"])
    op.create_table(
        "deprecation",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_version.id"), primary_key=True),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("end_of_life", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deprecation")
    op.drop_index("ix_version_file_digest", "version_file")
    op.drop_table("version_file")
