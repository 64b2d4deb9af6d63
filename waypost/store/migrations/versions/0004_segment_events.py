"""Unknown Segment events: a channel setting, and draft activity types.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "unknown_events",
                sa.String(length=16),
                server_default=sa.text("'reject'"),
                nullable=False,
            )
        )
    with op.batch_alter_table("activity_types", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("draft", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("activity_types", schema=None) as batch_op:
        batch_op.drop_column("draft")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("unknown_events")
