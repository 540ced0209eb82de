"""Hourly drift summaries: per reference, the counts a drift check needs.

Revision ID: 0010
Revises: 0009

The table starts empty: the first drift check over a window counts the hours it needs from the
log once and keeps them (``feedback_loop.store.summaries``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_summaries",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("layout", sa.String(64), primary_key=True),
        sa.Column("period", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.String(100), primary_key=True),
        sa.Column("data", sa.LargeBinary),
    )
    op.create_index("ix_drift_summaries_hour", "drift_summaries", ["model_id", "period", "version"])


def downgrade() -> None:
    op.drop_index("ix_drift_summaries_hour", table_name="drift_summaries")
    op.drop_table("drift_summaries")
