"""The tables, as SQLAlchemy Core metadata.

Times are integer microseconds since the epoch (UTC). ``predictions`` is kept narrow (numbers
and short strings) so that windowed metrics scan little; the bulky features and the raw prediction
payload live beside it in ``prediction_payloads``. Class labels are stored once per model in
``labels`` and referred to by integer code.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("task", String(20)),
    Column("label_key", String(200)),
    Column("score_key", String(200)),
    Column("positive_label", Text),
    Column("primary_metric", String(40)),
    Column("created_at", BigInteger, nullable=False),
    # Retention: raw rows older than ``retention_us`` are dropped (NULL: kept for ever); every
    # hour before ``pruned_before`` has been pruned, and only its summaries answer for it.
    Column("retention_us", BigInteger),
    Column("pruned_before", BigInteger),
)

labels = Table(
    "labels",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("code", Integer, primary_key=True, autoincrement=False),
    Column("value", Text, nullable=False),
    UniqueConstraint("model_id", "value", name="uq_labels_model_value"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("prediction_id", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("version", String(100)),
    Column("tags", Text),
    Column("pred_code", Integer),
    Column("score", Float),
    Column("pred_value", Float),
    Column("latency_ms", Float),
    Column("actual_code", Integer),
    Column("actual_value", Float),
    Column("label_ts", BigInteger),
    Column("actual_ts", BigInteger),
    Column("ingested_at", BigInteger, nullable=False),
    UniqueConstraint("model_id", "prediction_id", name="uq_predictions_model_pid"),
    Index("ix_predictions_model_ts", "model_id", "ts"),
)

prediction_payloads = Table(
    "prediction_payloads",
    metadata,
    Column("id", RowId, ForeignKey("predictions.id"), primary_key=True, autoincrement=False),
    Column("features", Text),  # JSON: features that are not numeric columns
    Column("prediction", Text, nullable=False),
    Column("proba", LargeBinary),
    Column("schema_id", Integer, ForeignKey("feature_schemas.id")),
    Column("numeric", LargeBinary),  # float64 values of the schema's numeric features
)

# Feature columns of numbers and strings are stored as packed float64 rows (strings as codes into
# feature_values); a schema names the columns and their kinds once per model, as JSON
# [[name, kind], ...], so a window's features decode into a matrix without parsing text.
feature_schemas = Table(
    "feature_schemas",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("names", Text, nullable=False),
    UniqueConstraint("model_id", "names", name="uq_feature_schemas_model_names"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("prediction_id", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("source", String(20), nullable=False),
    Column("actual", Text),
    Column("actual_code", Integer),
    Column("actual_value", Float),
    Column("correct", Boolean),
    Column("matched", Boolean, nullable=False),
    Column("ingested_at", BigInteger, nullable=False),
    Index("ix_outcomes_model_pid", "model_id", "prediction_id"),
    Index("ix_outcomes_model_matched", "model_id", "matched"),
)

events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(60), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id")),
    Column("version", String(100)),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Index("ix_events_model_ts", "model_id", "ts"),
    Index("ix_events_kind_ts", "kind", "ts"),
)

# A cache of the prediction log, one row per (model, hour of prediction time, version): the
# labeled rows of that hour as packed arrays. Writers add their rows to a block (store/blocks.py)
# or mark it dirty (data NULL) when they relabel a prediction in it; readers rebuild dirty blocks.
# A window then costs a read of a few hundred blobs instead of a scan of millions of rows.
metric_blocks = Table(
    "metric_blocks",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("period", BigInteger, primary_key=True, autoincrement=False),
    Column("version", String(100), primary_key=True),
    Column("n_predictions", Integer, nullable=False),
    Column("data", LargeBinary),
)

# Drift summaries, one row per (model, reference cells, hour of prediction time, version): that
# hour's counts of features and predictions on a reference's cells (store/summaries.py), so a
# drift check merges blobs instead of decoding every logged feature. ``layout``, a digest of the
# cells, is part of the key; ``data`` is NULL when the hour changed since it was counted.
drift_summaries = Table(
    "drift_summaries",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("layout", String(64), primary_key=True),
    Column("period", BigInteger, primary_key=True, autoincrement=False),
    Column("version", String(100), primary_key=True),
    Column("data", LargeBinary),
    Index("ix_drift_summaries_hour", "model_id", "period", "version"),
)

# A model's reference for monitoring, summarised once: per-column profiles (quantile bins,
# category counts, a bounded sample) and a score calibrator, as JSON.
reference_profiles = Table(
    "reference_profiles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("model_id", "name", "version", name="uq_reference_profiles"),
)

# The string values of categorical feature columns, coded per model and feature.
feature_values = Table(
    "feature_values",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("feature", String(200), primary_key=True),
    Column("code", Integer, primary_key=True, autoincrement=False),
    Column("value", Text, nullable=False),
    UniqueConstraint("model_id", "feature", "value", name="uq_feature_values"),
)

# The registry: model versions with their hash-checked artifacts, and movable aliases.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("serializer", String(40), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("train_start", BigInteger),
    Column("train_end", BigInteger),
    Column("train_rows", Integer),
    Column("metrics", Text, nullable=False),
    Column("info", Text, nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version", Integer),
    Column("previous_version", Integer),
    Column("ts", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_alias_history_model", "model_id", "alias", "ts"),
)

# Training jobs, claimed by workers under a lease that heartbeats keep alive.
jobs = Table(
    "jobs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", BigInteger),
    Column("result", Text),
    Column("error", Text),
    Index("ix_jobs_status", "status", "created_at"),
)

# The HTTP server's API keys: only a hash of each key is kept (the key is shown once, when made);
# the prefix finds the row, the hash proves the key. Scopes and model limits are JSON lists.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(8), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("models", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
)

# Webhooks get the events of the kinds they ask for (JSON list) after ``after_event_id``, the
# newest event when they were added; the secret signs each body, so it is kept as given.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("kinds", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("after_event_id", BigInteger, nullable=False),
    # Whether this webhook may reach loopback and private addresses (the operator said so).
    Column("allow_private", Boolean, nullable=False, server_default=false()),
)

# One row per (webhook, event): an outbox the dispatcher works through, retrying with backoff.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id"), nullable=False),
    Column("event_id", BigInteger, ForeignKey("events.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("delivered_at", BigInteger),
    Column("next_attempt_at", BigInteger, nullable=False),
    UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# Dashboard sign-ins: the cookie holds a random id, this table only its SHA-256 (a database dump
# opens no session). A session ends at ``expires_at``, after an idle spell past ``last_seen_at``,
# when signed out (``revoked_at``) or when its key is revoked (read through ``key_id``).
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Index("ix_dashboard_sessions_expires", "expires_at"),
)
