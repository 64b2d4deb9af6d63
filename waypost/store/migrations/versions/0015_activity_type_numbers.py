"""Activity type numbers (Marketo's activityTypeId): a stable integer on every type, and the
numbers ever given, so that none is given twice.

The built-in types get the numbers of Marketo's matching activities (1 Visit Webpage, 2 Fill
Out Form, 3 Click Link); the other types, in the order they were made, 100001 and on, as
Marketo numbers custom activity types.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BUILTIN_NUMBERS = {"pagevisit": 1, "datainput": 2, "click": 3}
FIRST_CUSTOM = 100001


def upgrade() -> None:
    numbers = op.create_table(
        "activity_type_numbers",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_activity_type_numbers")),
    )
    with op.batch_alter_table("activity_types", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
    types = sa.table(
        "activity_types",
        sa.column("id", sa.Uuid()),
        sa.column("code_name", sa.String()),
        sa.column("builtin", sa.Boolean()),
        sa.column("created_at", sa.DateTime()),
        sa.column("number", sa.Integer()),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(types.c.id, types.c.code_name, types.c.builtin).order_by(
            types.c.created_at, types.c.id
        )
    ).all()
    issued = []
    following = FIRST_CUSTOM
    for row in rows:
        number = BUILTIN_NUMBERS.get(row.code_name) if row.builtin else None
        if number is None:
            number, following = following, following + 1
        conn.execute(types.update().where(types.c.id == row.id).values(number=number))
        issued.append({"number": number, "issued_at": dt.datetime.now(dt.UTC)})
    if issued:
        op.bulk_insert(numbers, issued)
    with op.batch_alter_table("activity_types", schema=None) as batch_op:
        batch_op.alter_column("number", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_activity_types_number"), ["number"])


def downgrade() -> None:
    with op.batch_alter_table("activity_types", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_activity_types_number"), type_="unique")
        batch_op.drop_column("number")
    op.drop_table("activity_type_numbers")
