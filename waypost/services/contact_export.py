"""A contact's data as one JSON document, for the person it is about
(docs/data-lifecycle.md#a-contacts-data).

The document holds the contact as ``GET /api/contacts/{id}`` shows it, the contacts merged
into it, its consent agreements and revocations (the whole history, oldest first), its
current group memberships and their entries and exits, the merge records, the playbook runs,
then its activities and the rejected activities naming it, the two lists that may be long.
Those two are read in keyset pages, each a short read of its own, and encoded as they come,
so a contact with millions of activities is streamed in constant memory. The contact is
looked up before the first byte: an unknown or merged contact is a 404 or a 409, not a
broken download.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa

from waypost.domain.activity import Activity
from waypost.ids import utcnow
from waypost.records.consents import Agreement
from waypost.services.activities import (
    ActivityQuery,
    ActivityService,
    RejectedActivity,
    activity_of,
    before_in_log,
    rejected_of,
)
from waypost.services.contact_data import Family, family, rejected_naming
from waypost.services.contacts import Contact, contacts_of
from waypost.store import Store
from waypost.store.schema import (
    activities,
    consent_agreements,
    consents,
    contact_groups,
    contact_merges,
    group_members,
    group_membership_events,
    playbook_runs,
    playbooks,
    rejected_activities,
)

PAGE = 2_000

_encode = msgspec.json.Encoder().encode


class GroupMembership(msgspec.Struct):
    """A group the contact is in now, and since when."""

    group: uuid.UUID
    name: str
    since: dt.datetime


class GroupEvent(msgspec.Struct):
    """The contact entered (``entered`` true) or left a group, at a time."""

    group: uuid.UUID
    name: str
    entered: bool
    at: dt.datetime


class Merge(msgspec.Struct):
    """A contact (``source``) merged into another (``target``), why and when."""

    id: uuid.UUID
    source: uuid.UUID
    target: uuid.UUID
    reason: str
    channel: uuid.UUID | None
    created_at: dt.datetime


class PlaybookRun(msgspec.Struct):
    """A playbook ran its actions for the contact: on what (``event`` and ``subject``), when."""

    id: uuid.UUID
    playbook: uuid.UUID
    playbook_name: str
    event: str
    subject: str | None
    at: dt.datetime


class ContactData(msgspec.Struct):
    """The head of the document (its two long lists, ``activities`` and
    ``rejected_activities``, follow it in the same object)."""

    exported_at: dt.datetime
    contact: Contact
    merged_contacts: list[Contact]
    consents: list[Agreement]
    group_memberships: list[GroupMembership]
    group_history: list[GroupEvent]
    merges: list[Merge]
    playbook_runs: list[PlaybookRun]


class ContactDataDocument(ContactData):
    """The whole document: the head, then the contact's activities (newest first, as the
    activity log shows them) and the rejected activities naming it (newest first)."""

    activities: list[Activity]
    rejected_activities: list[RejectedActivity]


@dataclass
class ContactDocument:
    """A contact's document, ready to be sent: :meth:`chunks` gives its bytes."""

    contact: uuid.UUID
    head: ContactData
    family: Family
    service: ContactExportService

    @property
    def filename(self) -> str:
        return f"contact-{self.contact}.json"

    def chunks(self) -> Iterator[bytes]:
        head = _encode(self.head)
        yield head[:-1] + b',"activities":['
        yield from _joined(self.service.activity_pages(self.family))
        yield b'],"rejected_activities":['
        yield from _joined(self.service.rejected_pages(self.family))
        yield b"]}"


def _joined(pages: Iterator[Sequence[Any]]) -> Iterator[bytes]:
    first = True
    for page in pages:
        if not page:
            continue
        body = b",".join(_encode(item) for item in page)
        yield body if first else b"," + body
        first = False


class ContactExportService:
    """Contact documents on the store."""

    def __init__(self, store: Store, activities: ActivityService) -> None:
        self.store = store
        self.activities = activities

    def document(self, contact_id: uuid.UUID) -> ContactDocument:
        """The document of ``contact_id``: 404 ``contact_not_found`` when there is no such
        contact, 409 ``conflict`` when it was merged into another (export that one)."""
        with self.store.read() as conn:
            found = family(conn, contact_id)
            people = contacts_of(conn, found.ids)
            ids = list(found.ids)
            agreements = [
                Agreement(
                    id=r.id,
                    contact=r.contact_id,
                    consent=r.code_name,
                    agreed=r.agreed,
                    version=r.version,
                    channel=r.channel_id,
                    created_at=r.created_at,
                )
                for r in conn.execute(
                    sa.select(consent_agreements, consents.c.code_name)
                    .join(consents, consents.c.id == consent_agreements.c.consent_id)
                    .where(consent_agreements.c.contact_id.in_(ids))
                    .order_by(consent_agreements.c.id)
                )
            ]
            g, m, e = contact_groups, group_members, group_membership_events
            memberships = [
                GroupMembership(r.id, r.name, r.since)
                for r in conn.execute(
                    sa.select(g.c.id, g.c.name, m.c.since)
                    .join(m, m.c.group_id == g.c.id)
                    .where(m.c.contact_id.in_(ids))
                    .order_by(g.c.id)
                )
            ]
            history = [
                GroupEvent(r.group_id, r.name, r.entered, r.at)
                for r in conn.execute(
                    sa.select(e.c.group_id, g.c.name, e.c.entered, e.c.at)
                    .join(g, g.c.id == e.c.group_id)
                    .where(e.c.contact_id.in_(ids))
                    .order_by(e.c.at, e.c.seq)
                )
            ]
            cm = contact_merges
            merges = [
                Merge(r.id, r.source_id, r.target_id, r.reason, r.channel_id, r.created_at)
                for r in conn.execute(
                    sa.select(cm)
                    .where(cm.c.source_id.in_(ids) | cm.c.target_id.in_(ids))
                    .order_by(cm.c.created_at, cm.c.id)
                )
            ]
            runs = [
                PlaybookRun(r.id, r.playbook_id, r.name, r.event, r.subject, r.at)
                for r in conn.execute(
                    sa.select(playbook_runs, playbooks.c.name)
                    .join(playbooks, playbooks.c.id == playbook_runs.c.playbook_id)
                    .where(playbook_runs.c.contact_id.in_(ids))
                    .order_by(playbook_runs.c.at, playbook_runs.c.id)
                )
            ]
        head = ContactData(
            exported_at=utcnow(),
            contact=people[0],
            merged_contacts=people[1:],
            consents=agreements,
            group_memberships=memberships,
            group_history=history,
            merges=merges,
            playbook_runs=runs,
        )
        return ContactDocument(contact_id, head, found, self)

    def activity_pages(self, f: Family) -> Iterator[list[Any]]:
        """The family's activities, newest first, as the activity log shows them."""
        stmt = self.activities.log_select(ActivityQuery()).where(activities.c.contact_id.in_(f.ids))
        after: tuple[dt.datetime, uuid.UUID] | None = None
        while True:
            page = stmt.limit(PAGE)
            if after is not None:
                page = page.where(before_in_log(*after))
            with self.store.read() as conn:
                items = [activity_of(row) for row in conn.execute(page)]
            yield items
            if len(items) < PAGE:
                return
            after = (items[-1].occurred_at, items[-1].id)

    def rejected_pages(self, f: Family) -> Iterator[list[Any]]:
        """The rejected activities naming the family, newest first."""
        r = rejected_activities
        stmt = (
            sa.select(r).where(rejected_naming(f)).order_by(r.c.received_at.desc(), r.c.id.desc())
        )
        after: tuple[dt.datetime, uuid.UUID] | None = None
        while True:
            page = stmt.limit(PAGE)
            if after is not None:
                stamp, ident = after
                page = page.where(
                    sa.or_(r.c.received_at < stamp, (r.c.received_at == stamp) & (r.c.id < ident))
                )
            with self.store.read() as conn:
                items = [rejected_of(row) for row in conn.execute(page)]
            yield items
            if len(items) < PAGE:
                return
            after = (items[-1].received_at, items[-1].id)
