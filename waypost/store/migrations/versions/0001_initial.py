"""Initial schema, with the built-in activity types.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 08:58:21.803177
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from alembic import op

# (code name, name, description, client_side): data input changes contact fields, so browsers
# may not log it directly; they identify instead.
BUILTIN_TYPES = [
    ("pagevisit", "Page visit", "A visit of a page or screen; needs url.", True),
    ("click", "Click", "A click on an element; the value names the element.", True),
    (
        "datainput",
        "Data input",
        "Contact data submitted by the visitor; sets contact fields.",
        False,
    ),
]


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_types",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_name", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("client_side", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("rate_limits", sa.JSON(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("unknown_fields", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_types")),
        sa.UniqueConstraint("code_name", name=op.f("uq_activity_types_code_name")),
        sa.UniqueConstraint("name", name=op.f("uq_activity_types_name")),
    )
    _seed_builtin_types()
    op.create_table(
        "channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("default_language", sa.String(length=16), nullable=False),
        sa.Column("tracking_consent", sa.String(length=200), nullable=True),
        sa.Column("enforce_consent", sa.Boolean(), nullable=False),
        sa.Column("identity_secret", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_channels_name")),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("code_name", name=op.f("uq_consents_code_name")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("email_key", sa.String(length=254), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("middle_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("mobile_phone", sa.String(length=32), nullable=True),
        sa.Column("business_phone", sa.String(length=32), nullable=True),
        sa.Column("company_name", sa.String(length=200), nullable=True),
        sa.Column("job_title", sa.String(length=200), nullable=True),
        sa.Column("address1", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("zip", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=3), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("merged_into", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("email_key", name=op.f("uq_contacts_email_key")),
    )
    op.create_table(
        "rejected_activities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("type_code", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replay_outcome", sa.String(length=64), nullable=True),
        sa.Column("replayed_activity_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_activities")),
    )
    with op.batch_alter_table("rejected_activities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rejected_activities_reason_time", ["reason", "received_at"], unique=False
        )
        batch_op.create_index("ix_rejected_activities_time", ["received_at", "id"], unique=False)
        batch_op.create_index(
            "ix_rejected_activities_type_time", ["type_code", "received_at"], unique=False
        )

    op.create_table(
        "activities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=True),
        sa.Column("title", sa.String(length=600), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("referrer", sa.Text(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("primary_value", sa.String(length=200), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consent_agreed", sa.Boolean(), nullable=True),
        sa.Column("consent_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_activities_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_activities_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["activity_types.id"], name=op.f("fk_activities_type_id_activity_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activities_contact_time", ["contact_id", "occurred_at", "id"], unique=False
        )
        batch_op.create_index("ix_activities_time", ["occurred_at", "id"], unique=False)
        batch_op.create_index("ix_activities_type_time", ["type_id", "occurred_at"], unique=False)
        batch_op.create_index(
            "uq_activities_channel_client_id",
            ["channel_id", "client_id"],
            unique=True,
            sqlite_where=sa.text("client_id IS NOT NULL"),
            postgresql_where=sa.text("client_id IS NOT NULL"),
        )

    op.create_table(
        "activity_rollups",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_activity_rollups_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["activity_types.id"],
            name=op.f("fk_activity_rollups_type_id_activity_types"),
        ),
        sa.PrimaryKeyConstraint("contact_id", "type_id", "day", name=op.f("pk_activity_rollups")),
    )
    with op.batch_alter_table("activity_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_activity_rollups_type_day", ["type_id", "day"], unique=False)

    op.create_table(
        "activity_type_fields",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["activity_types.id"],
            name=op.f("fk_activity_type_fields_type_id_activity_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_type_fields")),
    )
    with op.batch_alter_table("activity_type_fields", schema=None) as batch_op:
        batch_op.create_index(
            "uq_activity_type_fields_type_id_name", ["type_id", "name"], unique=True
        )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("last_four", sa.String(length=4), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_api_keys_channel_id_channels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_channel_id"), ["channel_id"], unique=False)

    op.create_table(
        "consent_agreements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("agreed", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_consent_agreements_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name=op.f("fk_consent_agreements_consent_id_consents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_consent_agreements_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_agreements")),
    )
    with op.batch_alter_table("consent_agreements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_agreements_contact",
            ["contact_id", "consent_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "consent_texts",
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("short_text", sa.Text(), nullable=False),
        sa.Column("full_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name=op.f("fk_consent_texts_consent_id_consents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consent_id", "language", name=op.f("pk_consent_texts")),
    )
    op.create_table(
        "contact_external_ids",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_external_ids_contact_id_contacts"),
            ondelete="CASCADE",
        ),
    )
    with op.batch_alter_table("contact_external_ids", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_external_ids_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index("uq_contact_external_ids_kind_value", ["kind", "value"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("contact_external_ids", schema=None) as batch_op:
        batch_op.drop_index("uq_contact_external_ids_kind_value")
        batch_op.drop_index(batch_op.f("ix_contact_external_ids_contact_id"))

    op.drop_table("contact_external_ids")
    op.drop_table("consent_texts")
    with op.batch_alter_table("consent_agreements", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_agreements_contact")

    op.drop_table("consent_agreements")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_channel_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("activity_type_fields", schema=None) as batch_op:
        batch_op.drop_index("uq_activity_type_fields_type_id_name")

    op.drop_table("activity_type_fields")
    with op.batch_alter_table("activity_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_rollups_type_day")

    op.drop_table("activity_rollups")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("uq_activities_channel_client_id")
        batch_op.drop_index("ix_activities_type_time")
        batch_op.drop_index("ix_activities_time")
        batch_op.drop_index("ix_activities_contact_time")

    op.drop_table("activities")
    with op.batch_alter_table("rejected_activities", schema=None) as batch_op:
        batch_op.drop_index("ix_rejected_activities_type_time")
        batch_op.drop_index("ix_rejected_activities_time")
        batch_op.drop_index("ix_rejected_activities_reason_time")

    op.drop_table("rejected_activities")
    op.drop_table("contacts")
    op.drop_table("consents")
    op.drop_table("channels")
    op.drop_table("activity_types")


def _seed_builtin_types() -> None:
    table = sa.table(
        "activity_types",
        sa.column("id", sa.Uuid()),
        sa.column("code_name", sa.String()),
        sa.column("name", sa.String()),
        sa.column("description", sa.Text()),
        sa.column("enabled", sa.Boolean()),
        sa.column("client_side", sa.Boolean()),
        sa.column("builtin", sa.Boolean()),
        sa.column("aliases", sa.JSON()),
        sa.column("unknown_fields", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    # SQLite stores naive UTC (see waypost.store.schema.UtcDateTime); PostgreSQL timestamptz.
    now = dt.datetime.now(dt.UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(
        table,
        [
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"waypost:activity-type:{code}"),
                "code_name": code,
                "name": name,
                "description": description,
                "enabled": True,
                "client_side": client_side,
                "builtin": True,
                "aliases": [],
                "unknown_fields": "reject",
                "created_at": now,
                "updated_at": now,
            }
            for code, name, description, client_side in BUILTIN_TYPES
        ],
    )
