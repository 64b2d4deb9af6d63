"""The index on type and primary value holds only the activities that have a primary value.

Most activities have none (page visits, clicks, form submissions, and since this change a
decimal primary: see pipeline/prepare.py), yet every insert wrote an entry for them. Filtering
on a primary field compares ``primary_value`` with a value, which implies it is not null, so
both databases still use the index for it (docs/performance.md, figures of 2026-12-05).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

HAS_PRIMARY = sa.text("primary_value IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_activities_type_primary", table_name="activities")
    op.create_index(
        "ix_activities_type_primary",
        "activities",
        ["type_id", "primary_value"],
        sqlite_where=HAS_PRIMARY,
        postgresql_where=HAS_PRIMARY,
    )


def downgrade() -> None:
    op.drop_index("ix_activities_type_primary", table_name="activities")
    op.create_index("ix_activities_type_primary", "activities", ["type_id", "primary_value"])
