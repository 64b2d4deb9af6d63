"""Data for the tests of the contacts, activities and rejected activities pages.

Imported by tests/test_admin_contacts.py, test_admin_activities.py, test_admin_rejected.py and
the browser tests of those pages. Contacts and their fields go straight to the store (the UI
only reads them); activities and rejected activities come through the tracking API.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.records.contacts import insert_contact
from waypost.services.activity_types import ActivityType
from waypost.services.consents import ConsentCreate, ConsentText
from waypost.services.groups import GroupCreate
from waypost.store.schema import contact_external_ids, contacts, rejected_activities

if TYPE_CHECKING:
    from tests.conftest import Tracker

DEPOSIT_FIELDS = [
    {"name": "amount", "type": "decimal", "primary": True},
    {"name": "currency", "type": "text"},
]


def at(day: int, hour: int = 10) -> str:
    """A fixed time in January 2026, as the tracking API takes it."""
    return f"2026-01-{day:02d}T{hour:02d}:00:00Z"


@dataclass
class Seeded:
    """Two named contacts with activities, an anonymous one, and rejected activities."""

    jane: uuid.UUID
    john: uuid.UUID
    deposit: ActivityType
    tracker: Tracker
    rejected: list[uuid.UUID]


def add_contact(hub: Hub, **fields: Any) -> uuid.UUID:
    with hub.store.write() as conn:
        return insert_contact(conn, **fields)


def seed(hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]) -> Seeded:
    """Jane (fields, attributes, external ids, consents, a group, 4 activities), John (1
    activity), and 3 rejected activities (2 of an unknown type, 1 with a bad field value)."""
    deposit = make_type(name="Deposit made", fields=DEPOSIT_FIELDS)
    jane = add_contact(
        hub,
        email="Jane.Doe@example.com",
        first_name="Jane",
        last_name="Doe",
        company_name="ACME <Bank>",
        city="Brno",
    )
    john = add_contact(hub, email="john@example.org", first_name="John", last_name="Smith")
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == jane)
            .values(attributes={"plan": "gold", "score": 7})
        )
        conn.execute(
            contact_external_ids.insert().values(
                contact_id=jane, kind="crm", value="CRM-1", created_at=utcnow()
            )
        )
    tracker.log(
        [
            {"type": "click", "value": "cta-1", "occurredAt": at(1)},
            {"type": "pagevisit", "url": "https://bank.example/loans", "occurredAt": at(2)},
            {
                "type": deposit.code_name,
                "fields": {"amount": "100.50", "currency": "EUR"},
                "occurredAt": at(3),
            },
            {
                "type": deposit.code_name,
                "fields": {"amount": "20", "currency": "CZK"},
                "occurredAt": at(4),
            },
        ],
        str(jane),
    )
    tracker.log([{"type": "click", "value": "john-cta", "occurredAt": at(5)}], str(john))
    answer = tracker.post(
        [
            {"type": "webinar_signup", "value": "w1", "occurredAt": at(6)},
            {"type": "webinar_signup", "value": "w2", "occurredAt": at(6, 11)},
            {"type": deposit.code_name, "fields": {"amount": "lots"}, "occurredAt": at(7)},
        ],
        str(jane),
    )
    assert [r["status"] for r in answer.json()["results"]] == [404, 404, 400], answer.text
    consent = hub.consents.create(
        ConsentCreate(
            code_name="Newsletter",
            display_name="Newsletter",
            texts={"en": ConsentText("News once a month.", "<p>Once a month.</p>")},
        )
    )
    hub.consents.agree(jane, consent.code_name, True, tracker.channel.id)
    hub.consents.agree(jane, consent.code_name, False, tracker.channel.id)
    hub.consents.agree(jane, consent.code_name, True, None)
    hub.groups.create(
        GroupCreate(name="Brno people", condition={"contact": {"field": "city", "equals": "Brno"}})
    )
    r = rejected_activities
    with hub.store.read() as conn:
        rejected = list(conn.execute(sa.select(r.c.id).order_by(r.c.received_at, r.c.id)).scalars())
    return Seeded(jane, john, deposit, tracker, rejected)


def ids_in(html: str, prefix: str) -> list[str]:
    """The ids of the table rows ``<tr id="<prefix>-<id>">``, in the page's order."""
    return re.findall(rf'<tr id="{re.escape(prefix)}-([^"]+)"', html)


def link_of(html: str, rel: str = "next") -> str | None:
    """The paging link with ``rel`` (the next page), unescaped."""
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return match.group(1).replace("&amp;", "&") if match else None


def since(days: int) -> dt.datetime:
    return dt.datetime(2026, 1, days, tzinfo=dt.UTC)
