"""Webhook secrets encrypted at rest; webhooks allowed to reach private addresses.

Revision ID: 0009
Revises: 0008

Existing secrets are encrypted with the secret key (``feedback_loop.core.secretbox``: made on
first use when there is none); the key is only looked for when there is a secret to encrypt.
Existing webhooks are not allowed private addresses: one that posts to a local receiver needs
``FEEDBACK_LOOP_WEBHOOK_ALLOW_PRIVATE=1`` for the server, or to be added again with
``--allow-private``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_webhooks = sa.table("webhooks", sa.column("id", sa.Integer), sa.column("secret", sa.Text))


def _rewrite_secrets(encrypting: bool) -> None:
    """Encrypt clear-text secrets (or, going down, decrypt them); the key is only needed, and
    ``cryptography`` only imported, when a webhook exists."""
    conn = op.get_bind()
    rows = conn.execute(sa.select(_webhooks.c.id, _webhooks.c.secret)).all()
    if not rows:
        return
    from feedback_loop.core.secretbox import decrypt, encrypt, is_encrypted

    for row in rows:
        if is_encrypted(row.secret) == encrypting:
            continue
        stored = encrypt(row.secret) if encrypting else decrypt(row.secret)
        conn.execute(sa.update(_webhooks).where(_webhooks.c.id == row.id).values(secret=stored))


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(
            sa.Column("allow_private", sa.Boolean, nullable=False, server_default=sa.false())
        )
    _rewrite_secrets(encrypting=True)


def downgrade() -> None:
    _rewrite_secrets(encrypting=False)
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("allow_private")
