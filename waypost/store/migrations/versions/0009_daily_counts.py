"""Activities per type and day, and an index of contacts by creation time: the dashboard's
reports read these instead of a row per contact.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_daily_counts",
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["activity_types.id"],
            name=op.f("fk_activity_daily_counts_type_id_activity_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("type_id", "day", name=op.f("pk_activity_daily_counts")),
    )
    # The counts so far, from the per-contact rollups (written with every activity).
    op.execute(
        "INSERT INTO activity_daily_counts (type_id, day, count) "
        "SELECT type_id, day, sum(count) FROM activity_rollups GROUP BY type_id, day"
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_created", ["created_at", "merged_into"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_created")
    op.drop_table("activity_daily_counts")
