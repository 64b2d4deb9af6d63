"""Activities for report tests, stored as the writer stores them: the activity rows, then the
writer's own counters (rollups per contact, type and UTC day, counts per type and day, counts
per field value)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from waypost.domain.value_counts import counted_fields, counted_values
from waypost.hub import Hub
from waypost.ids import new_id
from waypost.pipeline.writer_rows import BatchRows, Statements, write_counters
from waypost.services.groups import GroupCreate
from waypost.store.codec import Codec
from waypost.store.schema import (
    activities,
    activity_types,
    contact_groups,
    contacts,
    group_members,
    group_membership_events,
)
from waypost.store.type_fields import load_type_fields

UTC = dt.UTC


@dataclass(frozen=True)
class Act:
    """One activity: its type code name, contact, time, channel id and field values."""

    type: str
    contact: uuid.UUID
    at: dt.datetime
    channel: uuid.UUID
    fields: dict[str, Any] = field(default_factory=dict)


def add_contacts(hub: Hub, n: int) -> list[uuid.UUID]:
    ids = [new_id() for _ in range(n)]
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with hub.store.write() as conn:
        conn.execute(
            contacts.insert(),
            [{"id": i, "attributes": {}, "created_at": now, "updated_at": now} for i in ids],
        )
    return ids


def store_activities(hub: Hub, acts: Sequence[Act]) -> None:
    if not acts:
        return
    with hub.store.read() as conn:
        found = conn.execute(sa.select(activity_types.c.code_name, activity_types.c.id))
        type_ids = {row.code_name: row.id for row in found}
        fields = load_type_fields(conn, list(type_ids.values()))
    counted = {ident: counted_fields(fields.get(ident, [])) for ident in type_ids.values()}
    batch = BatchRows(latest=max(act.at for act in acts))
    rows = []
    for act in acts:
        type_id = type_ids[act.type]
        rows.append(
            {
                "id": new_id(),
                "type_id": type_id,
                "contact_id": act.contact,
                "channel_id": act.channel,
                "title": act.type,
                "fields": act.fields or None,
                "occurred_at": act.at,
                "received_at": act.at,
            }
        )
        day = act.at.astimezone(UTC).date()
        batch.rollups[(act.contact, type_id, day)] += 1
        for name, value in counted_values(counted[type_id], act.fields):
            batch.values[(type_id, name, day, value)] += 1
    with hub.store.write() as conn:
        conn.execute(activities.insert(), rows)
        codec = Codec(conn.dialect.name)
        write_counters(conn, Statements(codec), codec, batch)


def make_group(
    hub: Hub,
    name: str,
    members: Sequence[uuid.UUID],
    events: Sequence[tuple[uuid.UUID, bool, dt.datetime]] = (),
) -> uuid.UUID:
    """A group whose condition nobody meets, then given ``members`` now and ``events`` (entries
    and exits) in its past, as the group computation records them."""
    group = hub.groups.create(
        GroupCreate(name=name, condition={"activity": {"type": "click", "at_least": 1000}})
    )
    with hub.store.write() as conn:
        if members:
            conn.execute(
                group_members.insert(),
                [
                    {"group_id": group.id, "contact_id": c, "since": dt.datetime.now(UTC)}
                    for c in members
                ],
            )
        if events:
            conn.execute(
                group_membership_events.insert(),
                [
                    {"group_id": group.id, "contact_id": c, "entered": entered, "at": at}
                    for c, entered, at in events
                ],
            )
        conn.execute(
            contact_groups.update()
            .where(contact_groups.c.id == group.id)
            .values(member_count=len(members))
        )
    return group.id
