"""Faster contact groups: a covering rollup index per type and contact, and membership events
numbered by a sequence so that a full computation writes them with one INSERT ... SELECT.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _events(name: str, key: sa.Column[object]) -> None:
    op.create_table(
        name,
        key,
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("entered", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["contact_groups.id"],
            name=op.f(f"fk_{name}_group_id_contact_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(key.name, name=op.f(f"pk_{name}")),
    )


def _swap_events(key: sa.Column[object], copy_key: str) -> None:
    """Rebuild the events table with another key, keeping every event in its order."""
    _events("group_membership_events_new", key)
    columns = "group_id, contact_id, entered, at"
    target = f"{key.name}, " if copy_key else ""
    op.execute(
        f"INSERT INTO group_membership_events_new ({target}{columns}) "  # noqa: S608
        f"SELECT {copy_key}{columns} FROM group_membership_events ORDER BY at, contact_id"
    )
    op.drop_table("group_membership_events")
    op.rename_table("group_membership_events_new", "group_membership_events")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Constraint names follow the table's name, as a fresh migration would make them.
        for kind in ("pk", "fk"):
            suffix = "_group_id_contact_groups" if kind == "fk" else ""
            op.execute(
                f"ALTER TABLE group_membership_events RENAME CONSTRAINT "
                f"{kind}_group_membership_events_new{suffix} "
                f"TO {kind}_group_membership_events{suffix}"
            )
    with op.batch_alter_table("group_membership_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_group_membership_events_lookup", ["group_id", "contact_id", "at"], unique=False
        )
        batch_op.create_index("ix_group_membership_events_time", ["group_id", "at"], unique=False)


def upgrade() -> None:
    with op.batch_alter_table("activity_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_rollups_type_day")
        batch_op.create_index(
            "ix_activity_rollups_type_contact",
            ["type_id", "contact_id", "day", "count"],
            unique=False,
        )
    _swap_events(sa.Column("seq", SEQ, primary_key=True, autoincrement=True), "")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    new_id = "gen_random_uuid(), " if postgresql else "lower(hex(randomblob(16))), "
    _swap_events(sa.Column("id", sa.Uuid(), nullable=False), new_id)
    with op.batch_alter_table("activity_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_rollups_type_contact")
        batch_op.create_index("ix_activity_rollups_type_day", ["type_id", "day"], unique=False)
