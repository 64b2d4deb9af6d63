"""Suppressions of erased identities, the erasure log, the installation's secrets; website
channels with a tracking consent enforce it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("erasure_id", sa.Uuid(), nullable=True),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    op.create_index("uq_suppressions_digest", "suppressions", ["digest"], unique=True)
    op.create_index("ix_suppressions_erasure", "suppressions", ["erasure_id"])
    op.create_table(
        "erasures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        _at("erased_at"),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.JSON(), nullable=False),
        sa.Column("suppressions", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index("ix_erasures_erased_at", "erasures", ["erased_at"])
    op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_installation_secrets")),
    )
    # Server-side logging on a website channel follows Kentico's rule: nothing is stored for
    # a contact without the channel's tracking consent, unless the channel opts out
    # (docs/tracking-api.md#consent). Until now enforcing was off unless asked for, so no
    # website channel can have opted out yet.
    channels = sa.table(
        "channels",
        sa.column("kind", sa.String()),
        sa.column("tracking_consent", sa.String()),
        sa.column("enforce_consent", sa.Boolean()),
    )
    op.execute(
        channels.update()
        .where(channels.c.kind == "website", channels.c.tracking_consent.is_not(None))
        .values(enforce_consent=True)
    )


def downgrade() -> None:
    op.drop_table("installation_secrets")
    op.drop_table("erasures")
    op.drop_table("suppressions")
