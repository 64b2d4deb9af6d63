"""Purge runs (what each purge of expired data deleted) and the leases of background work.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "purge_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("started_at"),
        _at("finished_at", nullable=True),
        sa.Column("activities", sa.JSON(), nullable=False),
        _count("activities_deleted"),
        _count("rejected_deleted"),
        _count("rollups_deleted"),
        _count("daily_counts_deleted"),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purge_runs")),
    )
    op.create_index("ix_purge_runs_started_at", "purge_runs", ["started_at"])
    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        _at("expires_at", nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_leases")),
    )


def downgrade() -> None:
    op.drop_table("worker_leases")
    op.drop_table("purge_runs")
