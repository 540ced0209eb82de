"""Hourly blocks of the prediction log for fast windowed metrics.

Revision ID: 0002
Revises: 0001
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
        "metric_blocks",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("period", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.String(100), primary_key=True),
        sa.Column("n_predictions", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary),
    )


def downgrade() -> None:
    op.drop_table("metric_blocks")
