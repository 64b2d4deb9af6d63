"""The index the webhook dispatcher claims an endpoint's due messages by, so that an
endpoint's backlog is found without reading any other endpoint's messages.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_messages_endpoint_due",
        "webhook_messages",
        ["endpoint_id", "status", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_messages_endpoint_due", table_name="webhook_messages")
