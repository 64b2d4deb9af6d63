"""Contacts: anonymous creation, lookup, and the data input rules for contact fields."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from waypost.domain.conditions import EVERYTHING, FIELDS_CHANGED
from waypost.domain.contact_fields import CONTACT_FIELDS, normalise_email
from waypost.errors import ApiError
from waypost.ids import new_id, utcnow
from waypost.pagination import Page
from waypost.services.consents import carry_agreement, require_agreement
from waypost.services.contact_search import ContactSummary, search, summaries
from waypost.store import Store, touch
from waypost.store.schema import (
    activities,
    activity_rollups,
    consent_agreements,
    contact_external_ids,
    contact_merges,
    contacts,
)


class Contact(msgspec.Struct):
    """A contact with Kentico's contact fields, custom attributes and external ids."""

    id: uuid.UUID
    email: str | None
    first_name: str | None
    middle_name: str | None
    last_name: str | None
    birthday: dt.date | None
    mobile_phone: str | None
    business_phone: str | None
    company_name: str | None
    job_title: str | None
    address1: str | None
    city: str | None
    zip: str | None
    country: str | None
    state: str | None
    notes: str | None
    attributes: dict[str, Any]
    external_ids: dict[str, list[str]]
    created_at: dt.datetime
    updated_at: dt.datetime
    # Set when this contact was merged into another: requests naming it reach that one.
    merged_into: uuid.UUID | None = None


class ContactCreated(msgspec.Struct):
    """The answer of ``POST /tracking/contacts``: the new contact's GUID."""

    contact: uuid.UUID


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


def _email_key(conn: Connection, contact_id: uuid.UUID) -> str | None:
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


def _set(conn: Connection, contact_id: uuid.UUID, values: dict[str, object]) -> None:
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
        current = _email_key(conn, contact_id)
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


class Identified(msgspec.Struct):
    """The answer of a browser identify: the contact the browser is from now on."""

    contact: uuid.UUID
    merged: bool
    created: bool = False


def identity_hash(secret: str, email: str) -> str:
    """HMAC-SHA256 of the lower-cased email with the channel's identity secret, hex."""
    return hmac.new(secret.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


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
    attributes = {**carried, **(target_row.attributes or {})}
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


def upsert_insert(conn: Connection) -> Any:
    """The dialect's INSERT that has ``on_conflict_do_update`` (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


class ContactService:
    """Contacts on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_anonymous(self) -> ContactCreated:
        with self.store.write() as conn:
            return ContactCreated(insert_contact(conn))

    def get(self, contact_id: uuid.UUID) -> Contact:
        with self.store.read() as conn:
            row = conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).first()
            if row is None:
                raise contact_not_found(contact_id)
            external: dict[str, list[str]] = {}
            for ext in conn.execute(
                sa.select(contact_external_ids.c.kind, contact_external_ids.c.value).where(
                    contact_external_ids.c.contact_id == contact_id
                )
            ):
                external.setdefault(ext.kind, []).append(ext.value)
        m = row._mapping
        return Contact(
            id=m["id"],
            **{name: m[name] for name in FIELD_COLUMNS},
            attributes=dict(m["attributes"] or {}),
            external_ids=external,
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            merged_into=m["merged_into"],
        )

    def search(
        self, text: str = "", limit: int = 50, cursor: str | None = None
    ) -> Page[ContactSummary]:
        """Contacts by the start of their email, first or last name, a page at a time; all
        contacts, newest first, for an empty ``text`` (see :mod:`contact_search`)."""
        with self.store.read() as conn:
            return search(conn, text, limit, cursor)

    def summaries(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ContactSummary]:
        """The contacts of ``ids`` that exist, by id, as lists show them."""
        with self.store.read() as conn:
            return summaries(conn, ids)

    def identify(
        self,
        channel_id: uuid.UUID,
        identity_secret: str,
        contact_id: uuid.UUID | None,
        email: str,
        names: dict[str, object],
        given_hash: str | None,
        tracking_consent: str | None = None,
    ) -> Identified:
        """A browser names its visitor: see docs/browser-tracking.md#identifying-visitors.

        With the channel's ``tracking_consent``, the browser's contact must have a current
        agreement to it (403 ``consent_required`` otherwise, as for activities), and a new
        contact made for a new email gets that agreement too.
        """
        key = normalise_email(email)
        # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
        verified = given_hash is not None and hmac.compare_digest(
            given_hash.lower().encode(), identity_hash(identity_secret, email).encode()
        )
        with self.store.write() as conn:
            current = require_contact(conn, contact_id) if contact_id is not None else None
            version = None
            if tracking_consent is not None:
                version = require_agreement(conn, current, tracking_consent)
            owner = email_owner(conn, key)
            if owner is not None and owner == current:
                _set(conn, owner, names)
                return Identified(owner, False)
            if owner is not None:
                if not verified:
                    new = current is None
                    if current is None:
                        current = insert_contact(conn)
                    self._record_claim(conn, current, email, names)
                    return Identified(current, False, new)
                if current is not None:
                    merge_contacts(conn, current, owner, "identify", channel_id)
                _set(conn, owner, names)
                return Identified(owner, current is not None)
            if current is not None and _email_key(conn, current) is None:
                _set(conn, current, {"email": email, "email_key": key, **names})
                return Identified(current, False)
            # A contact's email never changes (Kentico's rule): another person in this browser
            # is a new contact. The visitor agreed to tracking in this browser, so the new
            # contact may be tracked as the old one was; their other consents stay theirs.
            created = insert_contact(conn, email=email, **names)
            if tracking_consent is not None and version is not None:
                carry_agreement(conn, created, tracking_consent, version, channel_id)
            return Identified(created, False, True)

    def _record_claim(
        self, conn: Connection, contact_id: uuid.UUID, email: str, names: dict[str, object]
    ) -> None:
        attributes = conn.execute(
            sa.select(contacts.c.attributes).where(contacts.c.id == contact_id)
        ).scalar_one()
        claim = {"claimed_email": email, **{f"claimed_{k}": v for k, v in names.items()}}
        _set(conn, contact_id, {"attributes": {**(attributes or {}), **claim}})

    def resolve(self, contact_id: uuid.UUID) -> uuid.UUID:
        with self.store.read() as conn:
            return require_contact(conn, contact_id)
