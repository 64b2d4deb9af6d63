"""Indexes for contact search: a case-insensitive prefix of an email, a first or a last name.

Each database gets the index its own comparison can use, so these are written per dialect and
are not in ``waypost.store.schema`` (see ``SEARCH_INDEXES`` there):

- SQLite: the names under ``COLLATE NOCASE`` (ASCII letters fold, as SQLite's ``lower()``
  does); emails use the unique index on ``email_key``, which holds them lower-cased already.
- PostgreSQL: ``lower(name) COLLATE "C"`` and ``email_key COLLATE "C"``: in the "C"
  collation text sorts by code point, so every value that starts with a prefix lies in one
  range of the index, whatever the database's own collation.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SQLITE = {
    "ix_contacts_search_first_name": "first_name COLLATE NOCASE, id",
    "ix_contacts_search_last_name": "last_name COLLATE NOCASE, id",
}
POSTGRESQL = {
    "ix_contacts_search_email": 'email_key COLLATE "C"',
    "ix_contacts_search_first_name": 'lower(first_name) COLLATE "C", id',
    "ix_contacts_search_last_name": 'lower(last_name) COLLATE "C", id',
}


def _indexes() -> dict[str, str]:
    return POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE


def upgrade() -> None:
    for name, columns in _indexes().items():
        op.execute(f"CREATE INDEX {name} ON contacts ({columns})")


def downgrade() -> None:
    for name in _indexes():
        op.execute(f"DROP INDEX {name}")
