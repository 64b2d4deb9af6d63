"""Activities for report tests, stored as the writer stores them: the activity rows, the
rollups per contact, type and UTC day, and the counts per type and day."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from waypost.hub import Hub
from waypost.ids import new_id
from waypost.services.groups import GroupCreate
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    activity_types,
    contact_groups,
    contacts,
    group_members,
    group_membership_events,
)

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
        rows_found = conn.execute(sa.select(activity_types.c.code_name, activity_types.c.id))
        type_ids = {row.code_name: row.id for row in rows_found}
    rollups: Counter[tuple[uuid.UUID, uuid.UUID, dt.date]] = Counter()
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
        rollups[(act.contact, type_id, act.at.astimezone(UTC).date())] += 1
    daily: Counter[tuple[uuid.UUID, dt.date]] = Counter()
    for (_, type_id, day), n in rollups.items():
        daily[(type_id, day)] += n
    with hub.store.write() as conn:
        conn.execute(activities.insert(), rows)
        conn.execute(
            activity_rollups.insert(),
            [
                {"contact_id": c, "type_id": t, "day": d, "count": n}
                for (c, t, d), n in rollups.items()
            ],
        )
        conn.execute(
            activity_daily_counts.insert(),
            [{"type_id": t, "day": d, "count": n} for (t, d), n in daily.items()],
        )


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
