"""Retention: how long a model's raw rows are kept, and up to where they were dropped.

Revision ID: 0011
Revises: 0010

Two nullable columns on ``models``, so every existing row stays as it is: ``retention_us`` (no
retention: rows are kept for ever, as before) and ``pruned_before`` (nothing dropped yet).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("models", sa.Column("retention_us", sa.BigInteger, nullable=True))
    op.add_column("models", sa.Column("pruned_before", sa.BigInteger, nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy would drop ``models``,
    # which every other table's foreign keys name
    op.drop_column("models", "pruned_before")
    op.drop_column("models", "retention_us")
