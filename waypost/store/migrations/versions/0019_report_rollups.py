"""Rollups for reports: the distinct contacts of each type and UTC day beside its activity
count, and a count per type, UTC day, integer or decimal field and value (docs/reports.md).
Both are filled from what is stored: the contacts from the per-contact rollups, the values
from the activities' fields (values of activities purged before this migration are not there
to count).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

COUNTED_TYPES = ("integer", "decimal")


def upgrade() -> None:
    op.add_column(
        "activity_daily_counts",
        sa.Column("contacts", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.execute(
        "UPDATE activity_daily_counts SET contacts = s.n FROM "
        "(SELECT type_id, day, count(*) AS n FROM activity_rollups GROUP BY type_id, day) AS s "
        "WHERE activity_daily_counts.type_id = s.type_id AND activity_daily_counts.day = s.day"
    )
    op.create_table(
        "activity_value_counts",
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("value", sa.String(length=48), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["activity_types.id"],
            name=op.f("fk_activity_value_counts_type_id_activity_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "type_id", "field", "day", "value", name=op.f("pk_activity_value_counts")
        ),
    )
    fill_value_counts(op.get_bind())


def fill_value_counts(conn: sa.Connection) -> None:
    """Count the stored values of every integer and decimal field, per type and UTC day."""
    fields = sa.table(
        "activity_type_fields", sa.column("type_id", sa.Uuid()), sa.column("name"),
        sa.column("data_type"),
    )  # fmt: skip
    counted = conn.execute(
        sa.select(fields.c.type_id, fields.c.name).where(fields.c.data_type.in_(COUNTED_TYPES))
    ).all()
    sqlite = conn.dialect.name == "sqlite"
    day = "substr(occurred_at, 1, 10)" if sqlite else "(occurred_at AT TIME ZONE 'UTC')::date"
    for type_id, name in counted:
        # The stored JSON: an integer as a number, a decimal as its string.
        path = '$."' + name.replace('"', '""') + '"'
        text = "CAST(json_extract(fields, :key) AS TEXT)" if sqlite else "fields ->> :key"
        conn.execute(
            sa.text(
                "INSERT INTO activity_value_counts (type_id, field, day, value, count) "  # noqa: S608
                "SELECT type_id, :field, day, v, count(*) FROM "
                f"(SELECT type_id, {day} AS day, {text} AS v FROM activities "
                "WHERE type_id = :type_id) AS found "
                "WHERE v IS NOT NULL AND length(v) <= 48 GROUP BY type_id, day, v"
            ).bindparams(
                sa.bindparam("type_id", type_=sa.Uuid()), sa.bindparam("field", type_=sa.String())
            ),
            {"type_id": type_id, "field": name, "key": path if sqlite else name},
        )


def downgrade() -> None:
    op.drop_table("activity_value_counts")
    with op.batch_alter_table("activity_daily_counts", schema=None) as batch_op:
        batch_op.drop_column("contacts")
