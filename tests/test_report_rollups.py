"""The rollups reports read (distinct contacts per type and UTC day beside its activity count,
and counts per type, UTC day, field and value) stay equal to recounting the stored activities
after ingest through the writer, a merge of contacts, an erasure and a purge of the rollups;
and a report answers the same from them as from the activities. On both databases."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
import sqlalchemy as sa

from waypost.domain.report_definitions import ReportDefinition, ReportResult
from waypost.domain.value_counts import counted_values
from waypost.hub import Hub
from waypost.records.contacts import merge_contacts
from waypost.services.activity_types import ActivityType
from waypost.services.erasure import Actor
from waypost.services.retention import RetentionService
from waypost.settings import Settings
from waypost.store.schema import (
    activities,
    activity_daily_counts,
    activity_rollups,
    activity_value_counts,
)

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import ago
else:
    from conftest import Tracker
    from group_support import ago

ADMIN = Actor("key", uuid.UUID(int=7))
Counts = dict[tuple[Any, ...], int]


def stored(hub: Hub) -> tuple[Counts, Counts, Counts]:
    """(activities, contacts) per type and day, and counts per field value, as stored."""
    with hub.store.read() as conn:
        d = activity_daily_counts.c
        v = activity_value_counts.c
        daily = conn.execute(sa.select(d.type_id, d.day, d["count"], d.contacts)).all()
        values = conn.execute(sa.select(v.type_id, v.field, v.day, v.value, v["count"])).all()
    return (
        {(t, day): n for t, day, n, _ in daily},
        {(t, day): c for t, day, _, c in daily if c},
        {(t, f, day, value): n for t, f, day, value, n in values},
    )


def recounted(hub: Hub, counted: dict[uuid.UUID, tuple[str, ...]], since: dt.date) -> Any:
    """The same, recounted: activity counts and contacts from the per-contact rollups (which
    the purge of activities leaves), values from the activities (from ``since`` on)."""
    with hub.store.read() as conn:
        r = activity_rollups.c
        rollups = conn.execute(sa.select(r.contact_id, r.type_id, r.day, r["count"])).all()
        rows = conn.execute(
            sa.select(activities.c.type_id, activities.c.occurred_at, activities.c.fields)
        ).all()
    n: Counter[tuple[Any, ...]] = Counter()
    who: Counter[tuple[Any, ...]] = Counter()
    for _, t, day, count in rollups:
        n[(t, day)] += count
        who[(t, day)] += 1
    values: Counter[tuple[Any, ...]] = Counter()
    for t, at, fields in rows:
        day = at.astimezone(dt.UTC).date()
        if day >= since:
            for name, value in counted_values(counted.get(t, ()), fields):
                values[(t, name, day, value)] += 1
    return dict(n), dict(who), dict(values)


def activity_counts(hub: Hub) -> Counter[tuple[Any, ...]]:
    """Activities per type and UTC day, and contacts, from the activities themselves."""
    with hub.store.read() as conn:
        a = activities.c
        rows = conn.execute(sa.select(a.type_id, a.occurred_at, a.contact_id)).all()
    return Counter((t, at.astimezone(dt.UTC).date()) for t, at, _ in rows)


def run(hub: Hub, **definition: Any) -> ReportResult:
    return hub.reports.run(msgspec.convert(definition, ReportDefinition))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_a_recount_after_ingest_merge_erasure_and_purge(
    seed: int,
    hub: Hub,
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
    make_settings: Callable[..., Settings],
) -> None:
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    calc = make_type(
        name="Calc",
        fields=[
            {"name": "amount", "type": "decimal"},
            {"name": "term", "type": "integer"},
            {"name": "product", "type": "text"},
            {"name": "approved", "type": "boolean"},
        ],
    )
    visit = make_type(name="Visit")
    counted: dict[uuid.UUID, tuple[str, ...]] = {calc.id: ("amount", "term")}
    people = [tracker.new_contact() for _ in range(5)]
    for _ in range(6):
        batch: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 8)):
            when = ago(rng.choice([0.1, 1.2, 3.5, 12.3, 25.7, 26.1]))
            if rng.random() < 0.3:
                batch.append({"type": visit.code_name, "value": "v", "occurredAt": when})
                continue
            fields: dict[str, Any] = {"term": rng.choice([12, 24, 36]), "product": "car"}
            if rng.random() < 0.8:
                fields["amount"] = rng.choice(["1000.10", "2000", "0.5", "-3", "1000.1"])
            if rng.random() < 0.5:
                fields["approved"] = rng.random() < 0.5
            batch.append({"type": calc.code_name, "occurredAt": when, "fields": fields})
        results = tracker.log(batch, rng.choice(people))
        assert {r["status"] for r in results} == {202}, results
    first = dt.date.min

    def check() -> None:
        daily, contacts, values = stored(hub)
        want = recounted(hub, counted, first)
        assert daily == want[0]
        assert contacts == want[1]
        assert values == want[2]

    check()
    assert stored(hub)[0] == dict(activity_counts(hub))
    with hub.store.write() as conn:
        merge_contacts(conn, uuid.UUID(people[0]), uuid.UUID(people[1]), "test")
    check()
    hub.erasure.erase(uuid.UUID(people[2]), ADMIN)
    check()
    assert stored(hub)[0] == dict(activity_counts(hub))
    # Every report reads the rollups in UTC without channels and the activities with every
    # channel named: the same answer.
    today = dt.datetime.now(dt.UTC).date()
    span = {"since": (today - dt.timedelta(days=30)).isoformat(), "until": today.isoformat()}
    channel = {"channels": [str(tracker.channel.id)]}
    for definition in (
        {"kind": "counts", **span},
        {"kind": "counts", "types": [calc.code_name], **span},
        {"kind": "numeric", "types": [calc.code_name], "field": "amount", **span},
        {"kind": "numeric", "types": [calc.code_name], "field": "term", **span},
        {"kind": "numeric", "types": [calc.code_name], "field": "amount", "granularity": "week"}
        | span,
    ):
        fast, slow = run(hub, **definition), run(hub, **definition, **channel)
        assert (fast.source, slow.source) == ("rollups", "activities")
        assert fast.rows == slow.rows
    settings = make_settings(rollup_retention_days=20, purge_batch_size=3)
    purged = RetentionService(hub.store, settings, hub.clock).purge()
    assert purged is not None
    first = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).date()
    check()
    assert all(day >= first for _, day in stored(hub)[0])
