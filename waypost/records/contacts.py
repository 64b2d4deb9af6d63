"""Contacts as records: create, find following merges, apply a data input, merge two.

These run inside the caller's write transaction; the writer and the services both use them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from waypost.domain.conditions import EVERYTHING, FIELDS_CHANGED
from waypost.domain.contact_fields import (
    CONTACT_FIELDS,
    MAX_ATTRIBUTES_BYTES,
    attributes_size,
    normalise_email,
)
from waypost.errors import ApiError
from waypost.ids import new_id, utcnow
from waypost.store import touch
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    consent_agreements,
    contact_external_ids,
    contact_merges,
    contacts,
)

FIELD_COLUMNS = tuple(CONTACT_FIELDS.values())


# Attributes that record what a visitor claimed without proof (``claimed_email``, …).
CLAIM_PREFIX = "claimed_"


def contact_not_found(contact_id: object) -> ApiError:
    return ApiError(
        404,
        "contact_not_found",
        f"No contact {contact_id}; create one with POST /tracking/contacts.",
        "contact",
    )


def require_contact(conn: Connection, contact_id: uuid.UUID) -> uuid.UUID:
    """The contact's id, following merges to the surviving contact; 404 if there is none."""
    for _ in range(8):
        row = conn.execute(
            sa.select(contacts.c.id, contacts.c.merged_into).where(contacts.c.id == contact_id)
        ).first()
        if row is None:
            raise contact_not_found(contact_id)
        if row.merged_into is None:
            return contact_id
        contact_id = row.merged_into
    raise contact_not_found(contact_id)


def email_owner(conn: Connection, key: str) -> uuid.UUID | None:
    """The contact an email (its key) identifies, following merges: a merged contact keeps
    its email, and the email then names the contact it was merged into."""
    owner = conn.execute(
        sa.select(contacts.c.id).where(contacts.c.email_key == key)
    ).scalar_one_or_none()
    return require_contact(conn, owner) if owner is not None else None


def email_key_of(conn: Connection, contact_id: uuid.UUID) -> str | None:
    key: str | None = conn.execute(
        sa.select(contacts.c.email_key).where(contacts.c.id == contact_id)
    ).scalar_one()
    return key


def insert_contact(conn: Connection, **fields: object) -> uuid.UUID:
    contact_id = new_id()
    now = utcnow()
    email = fields.get("email")
    conn.execute(
        contacts.insert().values(
            id=contact_id,
            email_key=normalise_email(email) if isinstance(email, str) else None,
            attributes={},
            created_at=now,
            updated_at=now,
            **fields,
        )
    )
    # A new contact may already meet a condition such as "no data input in 7 days".
    touch(conn, [contact_id], EVERYTHING)
    return contact_id


def set_fields(conn: Connection, contact_id: uuid.UUID, values: dict[str, object]) -> None:
    if values:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == contact_id)
            .values(**values, updated_at=utcnow())
        )
        touch(conn, [contact_id], FIELDS_CHANGED)


def apply_data_input(
    conn: Connection, contact_id: uuid.UUID, fields: dict[str, object]
) -> uuid.UUID:
    """Apply a data input's contact fields; the contact the activity belongs to.

    A data input never changes an existing email. If the contact has another email, or the
    email belongs to another contact, the activity and the field updates go to the contact
    with that email, found or created (Kentico's rule).
    """
    target = contact_id
    values = dict(fields)
    email = fields.get("email")
    if isinstance(email, str):
        key = normalise_email(email)
        current = email_key_of(conn, contact_id)
        if current != key:
            owner = email_owner(conn, key)
            if owner is not None:
                target = owner
            elif current is not None:
                return insert_contact(conn, **fields)
        # The email is set only on a contact without one: the same email in other letters
        # keeps the stored one as it is, and a contact the email's contact was merged into
        # keeps its own.
        del values["email"]
        if target == contact_id and current is None:
            values["email"], values["email_key"] = email, key
    if values:
        values["updated_at"] = utcnow()
        conn.execute(contacts.update().where(contacts.c.id == target).values(**values))
        touch(conn, [target], FIELDS_CHANGED)
    return target


def identity_hash(secret: str, email: str) -> str:
    """HMAC-SHA256 of the lower-cased email with the channel's identity secret, hex."""
    return hmac.new(secret.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


def _join_daily_contacts(
    conn: Connection, target: uuid.UUID, moved: list[tuple[uuid.UUID, dt.date]]
) -> None:
    """Where both contacts had activities of a type on a day, that day's distinct contacts
    lose one: the two rollup rows become one."""
    r, d = activity_rollups.c, activity_daily_counts
    days = {day for _, day in moved}
    held = {
        (row.type_id, row.day)
        for row in conn.execute(
            sa.select(r.type_id, r.day).where(r.contact_id == target, r.day.in_(days))
        )
    }
    # In key order, as the writer updates them, so that the two never wait for each other.
    for type_id, day in sorted(held & set(moved), key=lambda k: (k[0].int, k[1])):
        key = (d.c.type_id == type_id) & (d.c.day == day)
        conn.execute(d.update().where(key).values(contacts=d.c.contacts - 1))


def merge_contacts(
    conn: Connection,
    source: uuid.UUID,
    target: uuid.UUID,
    reason: str,
    channel_id: uuid.UUID | None = None,
) -> None:
    """Move everything of ``source`` to ``target`` and leave a merge record.

    Activities, consent agreements, daily counts and external ids move; fields and attributes
    the target lacks are taken from the source, except the source's unproven claims; the source
    is kept, marked as merged, so that requests naming it reach the target.
    """
    now = utcnow()
    conn.execute(
        activities.update().where(activities.c.contact_id == source).values(contact_id=target)
    )
    conn.execute(
        consent_agreements.update()
        .where(consent_agreements.c.contact_id == source)
        .values(contact_id=target)
    )
    conn.execute(
        contact_external_ids.update()
        .where(contact_external_ids.c.contact_id == source)
        .values(contact_id=target)
    )
    moved = conn.execute(
        sa.select(
            activity_rollups.c.type_id, activity_rollups.c.day, activity_rollups.c.count
        ).where(activity_rollups.c.contact_id == source)
    ).all()
    conn.execute(activity_rollups.delete().where(activity_rollups.c.contact_id == source))
    if moved:
        _join_daily_contacts(conn, target, [(r.type_id, r.day) for r in moved])
        insert = upsert_insert(conn)(activity_rollups)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["contact_id", "type_id", "day"],
                set_={"count": activity_rollups.c.count + insert.excluded.count},
            ),
            [
                {"contact_id": target, "type_id": r.type_id, "day": r.day, "count": r.count}
                for r in moved
            ],
        )
    source_row = conn.execute(sa.select(contacts).where(contacts.c.id == source)).one()
    target_row = conn.execute(sa.select(contacts).where(contacts.c.id == target)).one()
    fill = {
        name: source_row._mapping[name]
        for name in FIELD_COLUMNS
        if name != "email"
        and target_row._mapping[name] is None
        and source_row._mapping[name] is not None
    }
    # Claims were never proven: they stay on the merged contact and never reach the survivor.
    carried = {
        name: value
        for name, value in (source_row.attributes or {}).items()
        if not name.startswith(CLAIM_PREFIX)
    }
    attributes = _carry(carried, target_row.attributes or {})
    conn.execute(
        contacts.update()
        .where(contacts.c.id == target)
        .values(**fill, attributes=attributes, updated_at=now)
    )
    conn.execute(
        contacts.update()
        .where(sa.or_(contacts.c.id == source, contacts.c.merged_into == source))
        .values(merged_into=target, updated_at=now)
    )
    touch(conn, [source, target], EVERYTHING)
    conn.execute(
        contact_merges.insert().values(
            id=new_id(),
            source_id=source,
            target_id=target,
            reason=reason,
            channel_id=channel_id,
            created_at=now,
        )
    )


def _carry(carried: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The target's attributes with those of ``carried`` it lacks, as many as fit within
    MAX_ATTRIBUTES_BYTES (the merged contact keeps them all): merging many contacts into one
    cannot grow it without end."""
    attributes = {**carried, **target}
    if attributes_size(attributes) <= MAX_ATTRIBUTES_BYTES:
        return attributes
    attributes = dict(target)
    size = attributes_size(attributes)
    for name, value in carried.items():
        if name in attributes:
            continue
        # The pair's bytes and a comma: {"name": value} less its braces, plus one.
        extra = attributes_size({name: value}) - 1
        if size + extra <= MAX_ATTRIBUTES_BYTES:
            attributes[name] = value
            size += extra
    return attributes


def upsert_insert(conn: Connection) -> Any:
    """The dialect's INSERT that has ``on_conflict_do_update`` (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert
