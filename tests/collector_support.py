"""What the collector tests (PostHog, Snowplow) share: a channel with its keys, and what the
database holds afterwards.

Imported by tests/test_transports_posthog.py and tests/test_transports_snowplow.py (pytest puts
tests/ on sys.path; mypy knows it as tests.collector_support).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services.channels import Channel
from waypost.store.schema import (
    activities,
    activity_types,
    contact_external_ids,
    contact_merges,
    contacts,
    rejected_activities,
)

ORIGIN = "https://shop.example"


@dataclass
class Collector:
    """A website channel with a tracking and a publishable key, and the database's rows."""

    client: TestClient
    hub: Hub
    channel: Channel
    tracking: str
    publishable: str

    def contact_of(self, kind: str, value: str) -> uuid.UUID:
        with self.hub.store.read() as conn:
            found: uuid.UUID = conn.execute(
                sa.select(contact_external_ids.c.contact_id).where(
                    contact_external_ids.c.kind == kind, contact_external_ids.c.value == value
                )
            ).scalar_one()
        return found

    def surviving(self, contact: uuid.UUID) -> uuid.UUID:
        """The contact ``contact`` was merged into, or itself."""
        with self.hub.store.read() as conn:
            for _ in range(8):
                merged = conn.execute(
                    sa.select(contacts.c.merged_into).where(contacts.c.id == contact)
                ).scalar_one()
                if merged is None:
                    return contact
                contact = merged
        return contact

    def external_ids(self, contact: uuid.UUID) -> set[tuple[str, str]]:
        with self.hub.store.read() as conn:
            rows = conn.execute(
                sa.select(contact_external_ids.c.kind, contact_external_ids.c.value).where(
                    contact_external_ids.c.contact_id == contact
                )
            ).all()
        return {(r.kind, r.value) for r in rows}

    def activities(self) -> list[sa.Row[Any]]:
        with self.hub.store.read() as conn:
            query = (
                sa.select(activities, activity_types.c.code_name.label("type"))
                .join(activity_types, activity_types.c.id == activities.c.type_id)
                .order_by(activities.c.id)
            )
            return list(conn.execute(query).all())

    def rejected(self) -> list[sa.Row[Any]]:
        with self.hub.store.read() as conn:
            query = sa.select(rejected_activities).order_by(rejected_activities.c.id)
            return list(conn.execute(query).all())

    def contact(self, contact_id: uuid.UUID) -> sa.Row[Any]:
        with self.hub.store.read() as conn:
            return conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).one()

    def merges(self) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        with self.hub.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    contact_merges.c.source_id, contact_merges.c.target_id, contact_merges.c.reason
                ).order_by(contact_merges.c.created_at)
            ).all()
        return [(r.source_id, r.target_id, r.reason) for r in rows]

    def count(self, table: sa.Table) -> int:
        with self.hub.store.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
