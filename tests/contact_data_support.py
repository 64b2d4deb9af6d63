"""A person with data in every table that can hold some, for the tests of a contact's export
and erasure, and the scan that finds any row still naming them.

The person is made through the public APIs where there is one (Segment identify and track,
the tracking API, consents, a contact group) and written directly where the feature lives on
another branch (playbook runs, webhook messages and attempts, a browser consent request).

Imported by tests/test_erasure.py, tests/test_contact_export.py and
tests/test_api_personal_data.py (pytest puts tests/ on sys.path; mypy knows it as
tests.contact_data_support).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.ids import new_id
from waypost.records.outbox import DELIVERED, OutboxMessage, enqueue
from waypost.services.activity_types import ActivityTypeCreate
from waypost.services.channels import ChannelCreate
from waypost.services.consents import ConsentCreate, ConsentText
from waypost.services.keys import KeyCreate
from waypost.store.schema import (
    browser_consent_requests,
    contact_external_ids,
    metadata,
    playbook_runs,
    playbooks,
    webhook_attempts,
    webhook_endpoints,
)

CONSENT = "Newsletter"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@dataclass
class World:
    """A headless channel, its tracking key, a custom type and a consent, for many people."""

    client: TestClient
    hub: Hub
    admin: dict[str, str]
    channel: uuid.UUID
    key: str
    type_code: str = "loan_calc"

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def segment(self, path: str, body: dict[str, Any]) -> int:
        answer = self.client.post(f"/v1/{path}", json=body, headers=basic(self.key))
        return answer.status_code

    def log(self, contact: uuid.UUID, activities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = {"channel": str(self.channel), "contact": str(contact), "activities": activities}
        answer = self.client.post("/tracking/activities", json=body, headers=self.bearer)
        assert answer.status_code == 207, answer.text
        results: list[dict[str, Any]] = answer.json()["results"]
        return results

    def contact_of(self, kind: str, value: str) -> uuid.UUID:
        with self.hub.store.read() as conn:
            found = conn.execute(
                sa.select(contact_external_ids.c.contact_id).where(
                    contact_external_ids.c.kind == kind, contact_external_ids.c.value == value
                )
            ).scalar_one()
        return uuid.UUID(str(found))

    def new_contact(self) -> uuid.UUID:
        return self.hub.contacts.create_anonymous().contact


def make_world(client: TestClient, hub: Hub) -> World:
    channel = hub.channels.create(ChannelCreate(name=f"App {time.monotonic_ns()}", kind="headless"))
    key = hub.keys.create(KeyCreate(access="tracking", channel=channel.id)).key
    admin = hub.keys.create(KeyCreate(access="admin")).key
    hub.types.create(
        msgspec.convert(
            {
                "name": "Loan calculator",
                "code_name": "loan_calc",
                "fields": [{"name": "amount", "type": "decimal"}],
            },
            ActivityTypeCreate,
        )
    )
    hub.consents.create(
        ConsentCreate(
            code_name=CONSENT,
            display_name="Newsletter",
            texts={"en": ConsentText("Short", "<p>Full</p>")},
        )
    )
    return World(client, hub, {"Authorization": f"Bearer {admin}"}, channel.id, key)


@dataclass
class Person:
    """Someone with data everywhere: ``contact`` holds it, ``merged`` were merged into it,
    ``claimant`` is another person's contact that claimed this one's email; ``activities``
    counts the activities stored for them."""

    email: str
    user_id: str
    anonymous_ids: list[str]
    contact: uuid.UUID
    merged: list[uuid.UUID]
    claimant: uuid.UUID
    activities: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[uuid.UUID]:
        return [self.contact, *self.merged]

    def needles(self) -> list[str]:
        """What no row may hold once the person is erased, in lower case."""
        words = [self.email.lower(), self.user_id.lower(), *(a.lower() for a in self.anonymous_ids)]
        for contact in self.ids:
            words += [str(contact), contact.hex]
        return words


def make_person(world: World, name: str, activities: int = 3) -> Person:
    """A person: a Segment user with an email, an anonymous visitor merged into them, custom
    activities and a data input, rejected activities (one of no contact, naming the user),
    a consent given and revoked, a group membership, a playbook run with a delivered webhook,
    a browser consent request, and another contact claiming their email."""
    email = f"{name}.Erased@Example.com"
    user_id, anonymous, visitor = f"user-{name}-42", f"anon-{name}-7", f"visit-{name}-9"
    traits = {"email": email, "firstName": name}
    identify = {"userId": user_id, "anonymousId": anonymous, "traits": traits}
    assert world.segment("identify", identify) == 200
    contact = world.contact_of("user_id", user_id)
    # An anonymous visitor with history of its own, merged into the user by an identify.
    page = {"anonymousId": visitor, "properties": {"url": "https://bank.example/a"}}
    assert world.segment("page", page) == 200
    merged = world.contact_of("anonymous_id", visitor)
    assert world.segment("identify", {"userId": user_id, "anonymousId": visitor}) == 200
    assert world.contact_of("anonymous_id", visitor) == contact
    results = world.log(
        contact,
        [
            {"type": "loan_calc", "value": str(n), "fields": {"amount": f"{n}.50"}}
            for n in range(activities)
        ]
        + [{"type": "datainput", "value": "form", "contactFields": {"ContactEmail": email}}],
    )
    assert all(r["status"] == 202 for r in results), results
    # Rejected: an unknown type (of the contact), a track without an event (of no contact).
    assert world.log(contact, [{"type": "nope"}])[0]["status"] == 404
    assert world.segment("track", {"userId": user_id}) == 200
    for agree in (True, False, True):
        answer = world.client.post(
            f"/tracking/contacts/{contact}/consents/{CONSENT}",
            json={"agree": agree},
            headers=world.bearer,
        )
        assert answer.status_code == 200, answer.text
    group = {"name": f"Loan users {name}", "condition": {"activity": {"type": "loan_calc"}}}
    answer = world.client.post("/api/groups", json=group, headers=world.admin)
    assert answer.status_code == 201, answer.text
    # Another person claims the email from their own Segment identity.
    other_user = f"other-of-{name}"
    assert world.segment("identify", {"userId": other_user, "traits": {"email": email}}) == 200
    claimant = world.contact_of("user_id", other_user)
    _playbook_run(world.hub, contact)
    with world.hub.store.write() as conn:
        conn.execute(
            browser_consent_requests.insert().values(
                channel_id=world.channel,
                request_id=f"request-{contact}",
                contact_id=contact,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return Person(email, user_id, [anonymous, visitor], contact, [merged], claimant, activities + 2)


def _playbook_run(hub: Hub, contact: uuid.UUID) -> None:
    now = dt.datetime.now(dt.UTC)
    endpoint, playbook, run, message = new_id(), new_id(), new_id(), new_id()
    with hub.store.write() as conn:
        conn.execute(
            webhook_endpoints.insert().values(
                id=endpoint,
                url="https://hooks.example/in",
                description="",
                enabled=True,
                secret="whsec_x",
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            playbooks.insert().values(
                id=playbook,
                name=f"Playbook {playbook}",
                description="",
                enabled=True,
                trigger={"event": "activity", "type": "loan_calc"},
                cadence={"mode": "every_time"},
                actions=[{"kind": "webhook", "endpoint": str(endpoint)}],
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            playbook_runs.insert().values(
                id=run,
                playbook_id=playbook,
                contact_id=contact,
                event="activity",
                subject=None,
                at=now,
            )
        )
        body = json.dumps({"type": "activity.performed", "data": {"contact": str(contact)}})
        enqueue(
            conn,
            [
                # Delivered already (the attempt below), so the dispatcher, which a message
                # written wakes, has nothing of it to claim while the test looks at its rows.
                OutboxMessage(
                    message,
                    endpoint,
                    "activity.logged",
                    body,
                    now,
                    playbook,
                    run,
                    contact,
                    status=DELIVERED,
                )
            ],
        )
        conn.execute(
            webhook_attempts.insert().values(
                id=new_id(),
                message_id=message,
                attempt=1,
                at=now,
                http_status=200,
                duration_ms=3,
                error=None,
                response="ok",
            )
        )


def rows_naming(hub: Hub, person: Person) -> Iterator[str]:
    """Every value of every row of every table that names the person: a UUID column equal to
    one of their contact ids, or text or JSON holding their id, email or an external id."""
    ids = set(person.ids)
    needles = person.needles()
    with hub.store.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    if value is None:
                        continue
                    if isinstance(value, uuid.UUID):
                        if value in ids:
                            yield f"{table.name}.{column} = {value}"
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    text = text.lower()
                    for needle in needles:
                        if needle in text:
                            yield f"{table.name}.{column} holds {needle!r}"
