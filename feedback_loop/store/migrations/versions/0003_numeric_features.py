"""Numeric features as packed float64 rows, named by a per-model schema.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_schemas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("names", sa.Text, nullable=False),
        sa.UniqueConstraint("model_id", "names", name="uq_feature_schemas_model_names"),
    )
    with op.batch_alter_table("prediction_payloads") as batch:
        batch.add_column(sa.Column("schema_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("numeric", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_payloads") as batch:
        batch.drop_column("numeric")
        batch.drop_column("schema_id")
    op.drop_table("feature_schemas")
