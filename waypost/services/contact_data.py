"""What belongs to one contact: the contact and the contacts merged into it, the identities
that name them, and how to find the rows about them that hold no contact id of their own.

The export of a contact's data (:mod:`waypost.services.contact_export`) and its erasure
(:mod:`waypost.services.erasure`) read the same rows through this module, so that what is
erased is what an export shows (docs/data-lifecycle.md#a-contacts-data).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.suppressions import ANONYMOUS_ID, CONTACT, EMAIL, USER_ID
from waypost.errors import conflict
from waypost.records.contacts import contact_not_found
from waypost.store.schema import contact_external_ids, contacts, rejected_activities

# How a Segment message names an external id of each kind (property names lower-cased, as
# payloads are compared in lower case); ``previousId`` names either kind in an alias.
SEGMENT_NAMES = {USER_ID: ("userid", "previousid"), ANONYMOUS_ID: ("anonymousid", "previousid")}
# Merges are flattened (a contact merged into one that is merged later follows it), so one
# step finds them all; a few more cover rows written before that rule.
MERGE_DEPTH = 8


@dataclass(frozen=True)
class Family:
    """A contact, the contacts merged into it (``ids`` begins with the contact), and the
    identities that name any of them: email keys and ``(kind, value)`` external ids."""

    contact: uuid.UUID
    ids: tuple[uuid.UUID, ...]
    emails: tuple[str, ...]
    external_ids: tuple[tuple[str, str], ...]

    def identities(self) -> list[tuple[str, str]]:
        """Every ``(kind, value)`` an erasure suppresses."""
        return [
            *((EMAIL, email) for email in self.emails),
            *self.external_ids,
            *((CONTACT, str(contact)) for contact in self.ids),
        ]


def family(conn: Connection, contact_id: uuid.UUID) -> Family:
    """The family of ``contact_id``: 404 ``contact_not_found`` if there is no such contact,
    409 ``conflict`` if it was merged into another (whose data it is now)."""
    row = conn.execute(sa.select(contacts.c.merged_into).where(contacts.c.id == contact_id)).first()
    if row is None:
        raise contact_not_found(contact_id)
    if row.merged_into is not None:
        raise conflict(
            f"This contact was merged into {row.merged_into}, which holds its data now: export "
            "or erase that contact (its merged contacts go with it)."
        )
    ids = [contact_id]
    frontier = [contact_id]
    for _ in range(MERGE_DEPTH):
        found = [
            merged
            for merged in conn.execute(
                sa.select(contacts.c.id)
                .where(contacts.c.merged_into.in_(frontier))
                .order_by(contacts.c.id)
            ).scalars()
            if merged not in ids
        ]
        if not found:
            break
        ids += found
        frontier = found
    emails = conn.execute(
        sa.select(contacts.c.email_key)
        .where(contacts.c.id.in_(ids), contacts.c.email_key.is_not(None))
        .order_by(contacts.c.email_key)
    ).scalars()
    external = conn.execute(
        sa.select(contact_external_ids.c.kind, contact_external_ids.c.value)
        .where(contact_external_ids.c.contact_id.in_(ids))
        .order_by(contact_external_ids.c.kind, contact_external_ids.c.value)
    ).all()
    return Family(
        contact=contact_id,
        ids=tuple(ids),
        emails=tuple(dict.fromkeys(emails)),
        external_ids=tuple((row.kind, row.value) for row in external),
    )


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern with ``escape='\\'``: its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json_text(value: str) -> str:
    return msgspec.json.encode(value).decode()


def payload_patterns(f: Family) -> list[str]:
    """LIKE patterns (lower case, backslash escapes) that find the family in a JSON payload
    that holds no contact id column of its own: its contact ids (in either form), its emails
    as JSON strings, and its external ids under the Segment property that names them. An
    external id is matched with its property name, since a short one ("42") would otherwise
    match unrelated payloads."""
    patterns: list[str] = []
    for contact in f.ids:
        patterns += [f"%{contact}%", f"%{contact.hex}%"]
    for email in f.emails:
        patterns.append(f"%{like_escaped(_json_text(email.lower()))}%")
    for kind, value in f.external_ids:
        quoted = like_escaped(_json_text(value.lower()))
        for name in SEGMENT_NAMES.get(kind, ()):
            patterns += [f'%"{name}":{quoted}%', f'%"{name}": {quoted}%']
        if kind not in SEGMENT_NAMES:
            patterns.append(f"%{quoted}%")
    return patterns


def rejected_naming(f: Family) -> sa.ColumnElement[bool]:
    """The rejected activities naming the family: by their contact, or in their payload (a
    Segment message that could not be mapped belongs to no contact, yet names the user)."""
    r = rejected_activities
    payload = sa.func.lower(sa.cast(r.c.payload, sa.Text))
    return sa.or_(
        r.c.contact_id.in_(f.ids),
        *(payload.like(pattern, escape="\\") for pattern in payload_patterns(f)),
    )
