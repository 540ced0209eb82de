"""Job attempts: no schema change. ``jobs.attempts`` (since 0006) already counts the claims
of a job; the worker caps it (``--max-attempts``) and uses it as the lease's fencing token.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
