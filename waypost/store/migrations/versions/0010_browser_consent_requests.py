"""The request ids of browsers' first consent agreements, so that a resent one makes no second
contact.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 10:00:00
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
        "browser_consent_requests",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_browser_consent_requests_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_browser_consent_requests_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "channel_id", "request_id", name=op.f("pk_browser_consent_requests")
        ),
    )
    with op.batch_alter_table("browser_consent_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_browser_consent_requests_created_at", ["created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("browser_consent_requests")
