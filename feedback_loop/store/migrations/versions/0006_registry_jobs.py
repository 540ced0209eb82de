"""Model registry (versions, aliases and their history) and the jobs table.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("serializer", sa.String(40), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("train_start", sa.BigInteger),
        sa.Column("train_end", sa.BigInteger),
        sa.Column("train_rows", sa.Integer),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("info", sa.Text, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions"),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("previous_version", sa.Integer),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_alias_history_model", "alias_history", ["model_id", "alias", "ts"])
    op.create_table(
        "jobs",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_jobs_status", "jobs", ["status", "created_at"])


def downgrade() -> None:
    for table in ("jobs", "alias_history", "aliases", "model_versions"):
        op.drop_table(table)
