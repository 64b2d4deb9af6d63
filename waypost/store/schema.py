"""The tables, in SQLAlchemy Core. One schema serves SQLite and PostgreSQL.

Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares the
migrated database with this metadata so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy import false as sa_false

# Stable constraint names, so that migrations can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that always comes back timezone-aware in UTC, on both databases.

    SQLite has no timezone type, so values are stored as naive UTC there; PostgreSQL keeps
    ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a timezone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _now_column(name: str) -> Column[dt.datetime]:
    return Column(name, UtcDateTime(), nullable=False)


channels = Table(
    "channels",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("allowed_origins", JSON(), nullable=False),
    Column("default_language", String(16), nullable=False),
    Column("tracking_consent", String(200), nullable=True),
    Column("enforce_consent", Boolean(), nullable=False),
    Column("identity_secret", String(100), nullable=False),
    # Segment events without a matching type: "reject" them, or store them under a "draft" type.
    Column("unknown_events", String(16), nullable=False, server_default=text("'reject'")),
    _now_column("created_at"),
    _now_column("updated_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("channel_id", Uuid(), ForeignKey("channels.id"), nullable=True, index=True),
    Column("access", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("last_four", String(4), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("enabled", Boolean(), nullable=False),
    _now_column("created_at"),
    Column("disabled_at", UtcDateTime(), nullable=True),
    # Written by a periodic flush, not on each request: at most a minute behind.
    Column("last_used_at", UtcDateTime(), nullable=True),
)

activity_types = Table(
    "activity_types",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("code_name", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text(), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    Column("client_side", Boolean(), nullable=False),
    Column("builtin", Boolean(), nullable=False),
    Column("aliases", JSON(), nullable=False),
    Column("rate_limits", JSON(), nullable=True),
    Column("retention_days", Integer(), nullable=True),
    Column("unknown_fields", String(20), nullable=False),
    # Created from an unknown Segment event; a marketer approves it by clearing the flag.
    Column("draft", Boolean(), nullable=False, server_default=sa_false()),
    _now_column("created_at"),
    _now_column("updated_at"),
    # Marketo's activityTypeId: a stable integer given at creation, never given again (every
    # number ever given is in activity_type_numbers, which outlives deleted types).
    Column("number", Integer(), nullable=False, unique=True),
)

activity_type_numbers = Table(
    "activity_type_numbers",
    metadata,
    Column("number", Integer(), primary_key=True, autoincrement=False),
    _now_column("issued_at"),
)

activity_type_fields = Table(
    "activity_type_fields",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "type_id",
        Uuid(),
        ForeignKey("activity_types.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer(), nullable=False),
    Column("name", String(100), nullable=False),
    Column("data_type", String(16), nullable=False),
    Column("required", Boolean(), nullable=False),
    Column("is_primary", Boolean(), nullable=False),
    Column("description", Text(), nullable=False),
    Column("max_length", Integer(), nullable=True),
    Index("uq_activity_type_fields_type_id_name", "type_id", "name", unique=True),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("email", String(254), nullable=True),
    # Lower-cased email: the one contact an email identifies.
    Column("email_key", String(254), nullable=True, unique=True),
    Column("first_name", String(100), nullable=True),
    Column("middle_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("birthday", Date(), nullable=True),
    Column("mobile_phone", String(32), nullable=True),
    Column("business_phone", String(32), nullable=True),
    Column("company_name", String(200), nullable=True),
    Column("job_title", String(200), nullable=True),
    Column("address1", String(200), nullable=True),
    Column("city", String(100), nullable=True),
    Column("zip", String(20), nullable=True),
    Column("country", String(3), nullable=True),
    Column("state", String(2), nullable=True),
    Column("notes", Text(), nullable=True),
    Column("attributes", JSON(), nullable=False),
    Column("merged_into", Uuid(), nullable=True),
    _now_column("created_at"),
    _now_column("updated_at"),
    # New contacts per day (the dashboard), without reading the table.
    Index("ix_contacts_created", "created_at", "merged_into"),
)

# Contact search indexes differ per database (an expression index on PostgreSQL, a collation
# on SQLite), so migration 0008 creates them and they are not declared here; the migration
# test leaves them out of its comparison and checks them on their own.
SEARCH_INDEXES = frozenset(
    {
        "ix_contacts_search_email",
        "ix_contacts_search_first_name",
        "ix_contacts_search_last_name",
    }
)

contact_external_ids = Table(
    "contact_external_ids",
    metadata,
    Column(
        "contact_id",
        Uuid(),
        ForeignKey("contacts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(32), nullable=False),
    Column("value", String(200), nullable=False),
    _now_column("created_at"),
    Index("uq_contact_external_ids_kind_value", "kind", "value", unique=True),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("code_name", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("version", Integer(), nullable=False),
    _now_column("created_at"),
    _now_column("updated_at"),
)

consent_texts = Table(
    "consent_texts",
    metadata,
    Column(
        "consent_id",
        Uuid(),
        ForeignKey("consents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("language", String(16), primary_key=True),
    Column("short_text", Text(), nullable=False),
    Column("full_text", Text(), nullable=False),
)

consent_agreements = Table(
    "consent_agreements",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("contact_id", Uuid(), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("consent_id", Uuid(), ForeignKey("consents.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Uuid(), ForeignKey("channels.id"), nullable=True),
    Column("agreed", Boolean(), nullable=False),
    Column("version", Integer(), nullable=False),
    _now_column("created_at"),
    Index("ix_consent_agreements_contact", "contact_id", "consent_id", "created_at"),
)

# The first agreements browsers sent with a request id (docs/browser-tracking.md): the same id
# from the same channel, sent again within a day (a resend after the page went away before the
# answer came), gets the contact the first one made. ``contact_id`` is null when the request
# was a revocation that arrived first: then no contact is ever made for it.
browser_consent_requests = Table(
    "browser_consent_requests",
    metadata,
    Column("channel_id", Uuid(), ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    Column("request_id", String(100), primary_key=True),
    Column("contact_id", Uuid(), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=True),
    _now_column("created_at"),
    Index("ix_browser_consent_requests_created_at", "created_at"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("type_id", Uuid(), ForeignKey("activity_types.id"), nullable=False),
    Column("contact_id", Uuid(), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Uuid(), ForeignKey("channels.id"), nullable=False),
    Column("client_id", String(100), nullable=True),
    Column("title", String(600), nullable=False),
    Column("value", Text(), nullable=True),
    Column("url", Text(), nullable=True),
    Column("referrer", Text(), nullable=True),
    Column("fields", JSON(), nullable=True),
    Column("primary_value", String(200), nullable=True),
    Column("flags", JSON(), nullable=True),
    _now_column("occurred_at"),
    _now_column("received_at"),
    Column("consent_agreed", Boolean(), nullable=True),
    Column("consent_version", Integer(), nullable=True),
    # The last columns let reports count contacts and follow funnels from the indexes alone.
    Index("ix_activities_contact_time", "contact_id", "occurred_at", "id", "type_id"),
    Index("ix_activities_type_time", "type_id", "occurred_at", "contact_id"),
    Index("ix_activities_time", "occurred_at", "id"),
    # Filters on a primary field compare it with a value; most activities have none.
    Index(
        "ix_activities_type_primary",
        "type_id",
        "primary_value",
        sqlite_where=text("primary_value IS NOT NULL"),
        postgresql_where=text("primary_value IS NOT NULL"),
    ),
    # Only activities sent with an idempotency key carry a client id; most have none.
    Index(
        "uq_activities_channel_client_id",
        "channel_id",
        "client_id",
        unique=True,
        sqlite_where=text("client_id IS NOT NULL"),
        postgresql_where=text("client_id IS NOT NULL"),
    ),
)

rejected_activities = Table(
    "rejected_activities",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("channel_id", Uuid(), nullable=True),
    Column("contact_id", Uuid(), nullable=True),
    Column("type_code", String(200), nullable=True),
    Column("reason", String(64), nullable=False),
    Column("status", Integer(), nullable=False),
    Column("message", Text(), nullable=False),
    Column("field", String(200), nullable=True),
    Column("source", String(32), nullable=False),
    Column("payload", JSON(), nullable=False),
    _now_column("received_at"),
    Column("replayed_at", UtcDateTime(), nullable=True),
    Column("replay_outcome", String(64), nullable=True),
    Column("replayed_activity_id", Uuid(), nullable=True),
    Index("ix_rejected_activities_reason_time", "reason", "received_at"),
    Index("ix_rejected_activities_type_time", "type_code", "received_at"),
    Index("ix_rejected_activities_time", "received_at", "id"),
)

activity_rollups = Table(
    "activity_rollups",
    metadata,
    Column("contact_id", Uuid(), ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("type_id", Uuid(), ForeignKey("activity_types.id"), primary_key=True),
    Column("day", Date(), primary_key=True),
    Column("count", BigInteger(), nullable=False, server_default=text("0")),
    # Groups read the rollups of one type, per contact: this index answers without the table.
    Index("ix_activity_rollups_type_contact", "type_id", "contact_id", "day", "count"),
)

# Activities per type and UTC day, written with the activities: what the dashboard and the
# types page count, without reading a row per contact.
activity_daily_counts = Table(
    "activity_daily_counts",
    metadata,
    Column(
        "type_id", Uuid(), ForeignKey("activity_types.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("day", Date(), primary_key=True),
    Column("count", BigInteger(), nullable=False, server_default=text("0")),
    # Distinct contacts of the type that day: its rows in activity_rollups (reports).
    Column("contacts", BigInteger(), nullable=False, server_default=text("0")),
)

# Activities per type, UTC day, field and value, for the integer and decimal fields
# (waypost.domain.value_counts), written with the activities: numeric reports read these.
activity_value_counts = Table(
    "activity_value_counts",
    metadata,
    Column(
        "type_id", Uuid(), ForeignKey("activity_types.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("field", String(100), primary_key=True),
    Column("day", Date(), primary_key=True),
    Column("value", String(48), primary_key=True),
    Column("count", BigInteger(), nullable=False, server_default=text("0")),
)

# Activities of ``accept_and_flag`` types stored despite a field violation, counted per field.
field_violations = Table(
    "field_violations",
    metadata,
    Column(
        "type_id", Uuid(), ForeignKey("activity_types.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("field", String(200), primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("count", BigInteger(), nullable=False, server_default=text("0")),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)

# A browser contact merged into the contact that owns an email (identify with a valid hash).
contact_merges = Table(
    "contact_merges",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("source_id", Uuid(), nullable=False, index=True),
    Column("target_id", Uuid(), nullable=False, index=True),
    Column("reason", String(64), nullable=False),
    Column("channel_id", Uuid(), nullable=True),
    _now_column("created_at"),
)

contact_groups = Table(
    "contact_groups",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text(), nullable=False),
    Column("condition", JSON(), nullable=False),
    Column("member_count", BigInteger(), nullable=False, server_default=text("0")),
    # The UTC day the last full computation was for: windows slide once a day, and the node
    # that moves this column forward is the one that recomputes (no work done twice).
    Column("computed_day", Date(), nullable=True),
    Column("computed_at", UtcDateTime(), nullable=True),
    _now_column("created_at"),
    _now_column("updated_at"),
)

group_members = Table(
    "group_members",
    metadata,
    Column(
        "group_id",
        Uuid(),
        ForeignKey("contact_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("contact_id", Uuid(), primary_key=True),
    _now_column("since"),
    Index("ix_group_members_contact", "contact_id"),
)

# Entries and exits, so that "was this contact in the group at time T" has an answer.
group_membership_events = Table(
    "group_membership_events",
    metadata,
    # A sequence, not a UUID: a full computation writes its events with one INSERT ... SELECT.
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column(
        "group_id",
        Uuid(),
        ForeignKey("contact_groups.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("contact_id", Uuid(), nullable=False),
    Column("entered", Boolean(), nullable=False),
    _now_column("at"),
    Index("ix_group_membership_events_lookup", "group_id", "contact_id", "at"),
    Index("ix_group_membership_events_time", "group_id", "at"),
)

# People who log in to the admin UI. ``email`` is stored lower-cased: it is the login.
users = Table(
    "users",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("disabled", Boolean(), nullable=False),
    _now_column("created_at"),
    _now_column("updated_at"),
    Column("last_login_at", UtcDateTime(), nullable=True),
)

# Admin UI sessions. Only the SHA-256 of the cookie's token is kept, so a copy of the database
# opens no session; the CSRF token is the synchronizer token of the session's forms.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("csrf_token", String(64), nullable=False),
    _now_column("created_at"),
    _now_column("last_seen_at"),
    _now_column("expires_at"),
    # A secret to show once on the next page (a key just created), sealed with the session's
    # cookie token, which only the browser holds.
    Column("reveal", String(400), nullable=True),
    Index("ix_user_sessions_expires_at", "expires_at"),
)

# Where playbooks send their webhooks (docs/playbooks.md). The secret signs every message, so it
# is kept as it was shown; after a rotation the previous one signs too until it expires.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("description", Text(), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_expires_at", UtcDateTime(), nullable=True),
    # Why Waypost disabled it ("gone": a 410 answer, "failing": no success for days); null
    # when enabled or disabled by a person.
    Column("disabled_reason", String(32), nullable=True),
    # The first failure since the last success: the endpoint is disabled once it is too old.
    Column("failing_since", UtcDateTime(), nullable=True),
    _now_column("created_at"),
    _now_column("updated_at"),
)

playbooks = Table(
    "playbooks",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text(), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    Column("trigger", JSON(), nullable=False),
    Column("audience", JSON(), nullable=True),
    Column("cadence", JSON(), nullable=False),
    Column("actions", JSON(), nullable=False),
    _now_column("created_at"),
    _now_column("updated_at"),
)

# One row each time a playbook ran its actions for a contact: the cadence reads them.
playbook_runs = Table(
    "playbook_runs",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("playbook_id", Uuid(), ForeignKey("playbooks.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", Uuid(), nullable=False),
    # What fired: "activity", "group_entered", "group_exited", "consent_agreed" or
    # "consent_revoked", and the activity id, group id or consent code name it fired on.
    Column("event", String(32), nullable=False),
    Column("subject", String(200), nullable=True),
    _now_column("at"),
    Index("ix_playbook_runs_cadence", "playbook_id", "contact_id", "at"),
    Index("ix_playbook_runs_playbook", "playbook_id", "at"),
    Index("ix_playbook_runs_contact", "contact_id", "at"),
)

# The outbox and the delivery log in one: a message is written in the transaction of what
# triggered it, and the dispatcher takes due messages (next_attempt_at) under a lease.
webhook_messages = Table(
    "webhook_messages",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "endpoint_id",
        Uuid(),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("playbook_id", Uuid(), nullable=True),
    Column("run_id", Uuid(), nullable=True),
    Column("contact_id", Uuid(), nullable=True),
    Column("event_type", String(32), nullable=False),
    # The JSON body exactly as it is sent and signed, on every attempt.
    Column("body", Text(), nullable=False),
    # "pending" (to be sent at next_attempt_at), "delivered" or "failed" (given up).
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False, server_default=text("0")),
    # While a dispatcher holds the lease, next_attempt_at is the lease's end: the message is
    # due again then if no answer was recorded (services/webhook_claims.py).
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_status", Integer(), nullable=True),
    Column("last_error", String(200), nullable=True),
    _now_column("created_at"),
    _now_column("updated_at"),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Index("ix_webhook_messages_due", "status", "next_attempt_at"),
    Index("ix_webhook_messages_endpoint", "endpoint_id", "created_at"),
    # The dispatcher claims each endpoint's due messages through this one.
    Index("ix_webhook_messages_endpoint_due", "endpoint_id", "status", "next_attempt_at"),
    Index("ix_webhook_messages_contact", "contact_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "message_id",
        Uuid(),
        ForeignKey("webhook_messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer(), nullable=False),
    _now_column("at"),
    # Null when no answer came (a timeout, a refused connection, a refused address).
    Column("http_status", Integer(), nullable=True),
    Column("duration_ms", Integer(), nullable=False),
    Column("error", String(200), nullable=True),
    # The first 1 KB of the answer's body.
    Column("response", Text(), nullable=False),
    Index("ix_webhook_attempts_message", "message_id", "at"),
)

# Each purge of expired data (docs/data-lifecycle.md): when, on which node, and what it deleted.
# A purge is written when it starts ("running") and again when it ends; a node that dies
# mid-purge leaves "running", which the next purge marks "interrupted".
purge_runs = Table(
    "purge_runs",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("node", String(200), nullable=False),
    # "schedule" (the server's hourly purge) or "command" (`waypost purge`).
    Column("trigger", String(16), nullable=False),
    # "running", "finished", "failed", "stopped" (the node shut down) or "interrupted".
    Column("status", String(16), nullable=False),
    _now_column("started_at"),
    Column("finished_at", UtcDateTime(), nullable=True),
    # Activities deleted per type code name.
    Column("activities", JSON(), nullable=False),
    Column("activities_deleted", BigInteger(), nullable=False, server_default=text("0")),
    Column("rejected_deleted", BigInteger(), nullable=False, server_default=text("0")),
    Column("rollups_deleted", BigInteger(), nullable=False, server_default=text("0")),
    Column("daily_counts_deleted", BigInteger(), nullable=False, server_default=text("0")),
    Column("duration_ms", BigInteger(), nullable=True),
    Column("error", String(200), nullable=True),
    Index("ix_purge_runs_started_at", "started_at"),
)

# Named leases on background work that one node at a time does (the purge): a node holds a
# lease until ``expires_at`` and renews it while it works; one that dies lets it expire.
worker_leases = Table(
    "worker_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
)

# The identities of erased contacts (docs/data-lifecycle.md#a-contacts-data): an activity,
# identify or Segment message naming one is refused (403 contact_erased) and stored nowhere.
# Only a keyed hash is kept (HMAC-SHA256 of the kind and the value with the installation's
# ``suppressions`` secret), never the email, the external id or the contact id itself.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("digest", String(64), nullable=False),
    # "email", "contact" (an erased contact's id) or an external id's kind ("user_id", ...).
    Column("kind", String(32), nullable=False),
    # The erasure that added it; null once that erasure's record is gone.
    Column("erasure_id", Uuid(), nullable=True),
    _now_column("created_at"),
    Index("uq_suppressions_digest", "digest", unique=True),
    Index("ix_suppressions_erasure", "erasure_id"),
)

# Each erasure of a contact's data: who asked (an admin key or a user of the admin UI, by id),
# when, and how many rows of each kind went, without any personal data (no contact id, no
# email: the record must not name what it erased).
erasures = Table(
    "erasures",
    metadata,
    Column("id", Uuid(), primary_key=True),
    # "key" or "user"; ``actor_id`` is the key's or the user's id.
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", Uuid(), nullable=True),
    _now_column("erased_at"),
    # The contact and the contacts merged into it.
    Column("contacts", Integer(), nullable=False),
    # Rows deleted per kind ("activities", "consent_agreements", ...).
    Column("deleted", JSON(), nullable=False),
    Column("suppressions", Integer(), nullable=False),
    Column("duration_ms", BigInteger(), nullable=False),
    Index("ix_erasures_erased_at", "erased_at"),
)

# Secrets of this installation, made at random the first time one is needed and kept in the
# database (not a setting with a default that every installation would share): every node of
# an installation reads the same one.
installation_secrets = Table(
    "installation_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("secret", String(200), nullable=False),
    _now_column("created_at"),
)

# Reports saved by name (docs/admin-ui.md#reports), shared by every user: a report definition
# as the report API takes it (docs/reports.md), who saved it first (an admin key or a user of
# the admin UI, by id: "key" or "user"), and its place among the reports pinned to the
# dashboard (null: not pinned; the lowest first).
saved_reports = Table(
    "saved_reports",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("definition", JSON(), nullable=False),
    # Whether each run moves the range to end on the day it runs, its length kept.
    Column("rolling", Boolean(), nullable=False),
    Column("created_by_kind", String(16), nullable=False),
    Column("created_by_id", Uuid(), nullable=True),
    Column("dashboard_position", Integer(), nullable=True),
    _now_column("created_at"),
    _now_column("updated_at"),
)
