"""Primary-field index for filters, and counts of flagged field violations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activities_type_primary", ["type_id", "primary_value"], unique=False
        )
    op.create_table(
        "field_violations",
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["activity_types.id"],
            name=op.f("fk_field_violations_type_id_activity_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("type_id", "field", "code", name=op.f("pk_field_violations")),
    )


def downgrade() -> None:
    op.drop_table("field_violations")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_type_primary")
