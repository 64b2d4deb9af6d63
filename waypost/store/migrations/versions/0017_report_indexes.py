"""Reports read the activities' contacts from their indexes: the index on type and time also
holds the contact, and the index on contact and time also holds the type, so that counting a
type's contacts, and following a contact from one funnel step to the next, need not read each
activity's row (docs/reports.md).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_activities_type_time", table_name="activities")
    op.create_index(
        "ix_activities_type_time", "activities", ["type_id", "occurred_at", "contact_id"]
    )
    op.drop_index("ix_activities_contact_time", table_name="activities")
    op.create_index(
        "ix_activities_contact_time", "activities", ["contact_id", "occurred_at", "id", "type_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_activities_contact_time", table_name="activities")
    op.create_index("ix_activities_contact_time", "activities", ["contact_id", "occurred_at", "id"])
    op.drop_index("ix_activities_type_time", table_name="activities")
    op.create_index("ix_activities_type_time", "activities", ["type_id", "occurred_at"])
