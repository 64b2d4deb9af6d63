"""Contacts: anonymous creation, lookup, and the data input rules for contact fields."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.contact_fields import CONTACT_FIELDS, normalise_email
from waypost.errors import ApiError
from waypost.ids import new_id, utcnow
from waypost.store import Store
from waypost.store.schema import contact_external_ids, contacts


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


class ContactCreated(msgspec.Struct):
    """The answer of ``POST /tracking/contacts``: the new contact's GUID."""

    contact: uuid.UUID


FIELD_COLUMNS = tuple(CONTACT_FIELDS.values())


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
    return contact_id


def apply_data_input(
    conn: Connection, contact_id: uuid.UUID, fields: dict[str, object]
) -> uuid.UUID:
    """Apply a data input's contact fields; the contact the activity belongs to.

    A data input never changes an existing email. If the contact has another email, or the
    email belongs to another contact, the activity and the field updates go to the contact
    with that email, found or created (Kentico's rule).
    """
    target = contact_id
    email = fields.get("email")
    if isinstance(email, str):
        key = normalise_email(email)
        current = conn.execute(
            sa.select(contacts.c.email_key).where(contacts.c.id == contact_id)
        ).scalar_one()
        if current != key:
            owner = conn.execute(
                sa.select(contacts.c.id).where(contacts.c.email_key == key)
            ).scalar_one_or_none()
            if owner is not None:
                target = owner
            elif current is not None:
                return insert_contact(conn, **fields)
    values = dict(fields)
    if isinstance(email, str):
        values["email_key"] = normalise_email(email)
    if values:
        values["updated_at"] = utcnow()
        conn.execute(contacts.update().where(contacts.c.id == target).values(**values))
    return target


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
        )

    def resolve(self, contact_id: uuid.UUID) -> uuid.UUID:
        with self.store.read() as conn:
            return require_contact(conn, contact_id)
