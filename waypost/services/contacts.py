"""Contacts: anonymous creation, lookup, and the data input rules for contact fields."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.contact_fields import normalise_email
from waypost.pagination import Page
from waypost.records.consents import carry_agreement, require_agreement
from waypost.records.contacts import (
    FIELD_COLUMNS,
    contact_not_found,
    email_key_of,
    email_owner,
    identity_hash,
    insert_contact,
    merge_contacts,
    require_contact,
    set_fields,
)
from waypost.services.contact_search import ContactSummary, search, summaries
from waypost.store import Store
from waypost.store.schema import (
    contact_external_ids,
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


def contacts_of(conn: Connection, ids: Sequence[uuid.UUID]) -> list[Contact]:
    """The contacts of ``ids`` that exist, in that order, with their external ids: one query
    for the contacts and one for the external ids, for a page of a list."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    external: dict[uuid.UUID, dict[str, list[str]]] = {}
    e = contact_external_ids
    for ext in conn.execute(
        sa.select(e.c.contact_id, e.c.kind, e.c.value)
        .where(e.c.contact_id.in_(wanted))
        .order_by(e.c.contact_id, e.c.created_at)
    ):
        external.setdefault(ext.contact_id, {}).setdefault(ext.kind, []).append(ext.value)
    found: dict[uuid.UUID, Contact] = {}
    for row in conn.execute(sa.select(contacts).where(contacts.c.id.in_(wanted))):
        m = row._mapping
        found[m["id"]] = Contact(
            id=m["id"],
            **{name: m[name] for name in FIELD_COLUMNS},
            attributes=dict(m["attributes"] or {}),
            external_ids=external.get(m["id"], {}),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            merged_into=m["merged_into"],
        )
    return [found[i] for i in wanted if i in found]


class ContactCreated(msgspec.Struct):
    """The answer of ``POST /tracking/contacts``: the new contact's GUID."""

    contact: uuid.UUID


class Identified(msgspec.Struct):
    """The answer of a browser identify: the contact the browser is from now on."""

    contact: uuid.UUID
    merged: bool
    created: bool = False


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

        def apply(conn: Connection) -> Identified:
            current = require_contact(conn, contact_id) if contact_id is not None else None
            version = None
            if tracking_consent is not None:
                version = require_agreement(conn, current, tracking_consent)
            owner = email_owner(conn, key)
            if owner is not None and owner == current:
                set_fields(conn, owner, names)
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
                set_fields(conn, owner, names)
                return Identified(owner, current is not None)
            if current is not None and email_key_of(conn, current) is None:
                set_fields(conn, current, {"email": email, "email_key": key, **names})
                return Identified(current, False)
            # A contact's email never changes (Kentico's rule): another person in this browser
            # is a new contact. The visitor agreed to tracking in this browser, so the new
            # contact may be tracked as the old one was; their other consents stay theirs.
            created = insert_contact(conn, email=email, **names)
            if tracking_consent is not None and version is not None:
                carry_agreement(conn, created, tracking_consent, version, channel_id)
            return Identified(created, False, True)

        # Two visitors naming one new email at once: the second to insert it conflicts, and
        # finds it when run again (it was a 500 on PostgreSQL).
        return self.store.write_retrying(apply, unique=True)

    def _record_claim(
        self, conn: Connection, contact_id: uuid.UUID, email: str, names: dict[str, object]
    ) -> None:
        attributes = conn.execute(
            sa.select(contacts.c.attributes).where(contacts.c.id == contact_id)
        ).scalar_one()
        claim = {"claimed_email": email, **{f"claimed_{k}": v for k, v in names.items()}}
        set_fields(conn, contact_id, {"attributes": {**(attributes or {}), **claim}})

    def resolve(self, contact_id: uuid.UUID) -> uuid.UUID:
        with self.store.read() as conn:
            return require_contact(conn, contact_id)
