"""The prediction log, outcomes, labels, models and events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task", sa.String(20)),
        sa.Column("label_key", sa.String(200)),
        sa.Column("score_key", sa.String(200)),
        sa.Column("positive_label", sa.Text),
        sa.Column("primary_metric", sa.String(40)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "labels",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("code", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.UniqueConstraint("model_id", "value", name="uq_labels_model_value"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("prediction_id", sa.String(200), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("version", sa.String(100)),
        sa.Column("tags", sa.Text),
        sa.Column("pred_code", sa.Integer),
        sa.Column("score", sa.Float),
        sa.Column("pred_value", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("actual_code", sa.Integer),
        sa.Column("actual_value", sa.Float),
        sa.Column("label_ts", sa.BigInteger),
        sa.Column("actual_ts", sa.BigInteger),
        sa.Column("ingested_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("model_id", "prediction_id", name="uq_predictions_model_pid"),
    )
    op.create_index("ix_predictions_model_ts", "predictions", ["model_id", "ts"])
    op.create_table(
        "prediction_payloads",
        sa.Column(
            "id", row_id, sa.ForeignKey("predictions.id"), primary_key=True, autoincrement=False
        ),
        sa.Column("features", sa.Text),
        sa.Column("prediction", sa.Text, nullable=False),
        sa.Column("proba", sa.LargeBinary),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("prediction_id", sa.String(200), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("actual", sa.Text),
        sa.Column("actual_code", sa.Integer),
        sa.Column("actual_value", sa.Float),
        sa.Column("correct", sa.Boolean),
        sa.Column("matched", sa.Boolean, nullable=False),
        sa.Column("ingested_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_outcomes_model_pid", "outcomes", ["model_id", "prediction_id"])
    op.create_index("ix_outcomes_model_matched", "outcomes", ["model_id", "matched"])
    op.create_table(
        "events",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id")),
        sa.Column("version", sa.String(100)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
    )
    op.create_index("ix_events_model_ts", "events", ["model_id", "ts"])
    op.create_index("ix_events_kind_ts", "events", ["kind", "ts"])


def downgrade() -> None:
    for table in ("events", "outcomes", "prediction_payloads", "predictions", "labels", "models"):
        op.drop_table(table)
