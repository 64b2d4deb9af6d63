"""Replaying rejected activities once their cause is fixed.

A replay runs the activity through today's rules (the type may now exist, be enabled, have
the field; the contact may now have agreed). One that passes is stored under the rejected
activity's id, so it is stored once however often it is replayed; the rejected row records
when it was replayed and the outcome. Replays go through the writer like any request; a dry
run is decided by the writer and writes nothing, reporting how many would now pass.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import sqlalchemy as sa

from waypost.domain.marketo import UNKNOWN_TYPE
from waypost.domain.snowplow import schema_aliases
from waypost.errors import ApiError, conflict, not_found, with_offset
from waypost.ids import utcnow
from waypost.pipeline.catalog import Catalog, Snapshot
from waypost.pipeline.prepare import Accepted, prepare
from waypost.pipeline.writer import WriterFront
from waypost.pipeline.writer_decision import ActivityResult, Job
from waypost.services.collectors import find_type
from waypost.store import Store
from waypost.store.schema import rejected_activities

CHUNK = 500

# The sources whose events name their types by code name or alias.
ALIASED_SOURCES = ("segment", "posthog", "snowplow", "marketo", "import")


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Which rejected activities to replay: by ids, or by filters (at least one is needed).

    Activities already replayed and stored are skipped.
    """

    ids: list[uuid.UUID] | None = None
    reason: str | None = None
    type: str | None = None
    channel: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    dry_run: bool = False
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000


class ReplayQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``dry_run=true`` reports the outcome without storing anything."""

    dry_run: bool = False


class ReplayedItem(msgspec.Struct):
    """The outcome for one rejected activity: ``stored``, ``duplicate`` or an error code."""

    id: uuid.UUID
    outcome: str
    activity_id: uuid.UUID | None
    status: int


class ReplayReport(msgspec.Struct):
    """What a replay did (or, for a dry run, would do)."""

    dry_run: bool
    matched: int
    stored: int
    duplicates: int
    still_rejected: dict[str, int]
    items: list[ReplayedItem]


class ReplayService:
    """Replays rejected activities through the writer."""

    def __init__(
        self, store: Store, catalog: Catalog, writer: WriterFront, max_activity_bytes: int
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.writer = writer
        self.max_activity_bytes = max_activity_bytes

    def replay_one(self, rejected_id: uuid.UUID, dry_run: bool) -> ReplayReport:
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(rejected_activities).where(rejected_activities.c.id == rejected_id)
            ).first()
        if row is None:
            raise not_found("rejected activity")
        if row.replayed_activity_id is not None:
            raise conflict(
                f"This activity was replayed already and stored as {row.replayed_activity_id}."
            )
        return self._replay([row], dry_run)

    def replay_many(self, request: ReplayRequest) -> ReplayReport:
        r = rejected_activities
        conditions: list[sa.ColumnElement[bool]] = []
        if request.ids is not None:
            conditions.append(r.c.id.in_(request.ids))
        if request.reason is not None:
            conditions.append(r.c.reason == request.reason)
        if request.type is not None:
            conditions.append(r.c.type_code == request.type)
        if request.channel is not None:
            conditions.append(r.c.channel_id == request.channel)
        if not conditions:
            raise ApiError(
                400,
                "missing_field",
                "Name what to replay: ids, reason, type or channel.",
                "reason",
            )
        if request.since is not None:
            conditions.append(r.c.received_at >= with_offset(request.since, "since"))
        if request.until is not None:
            conditions.append(r.c.received_at < with_offset(request.until, "until"))
        conditions.append(r.c.replayed_activity_id.is_(None))
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(r)
                .where(*conditions)
                .order_by(r.c.received_at, r.c.id)
                .limit(request.limit)
            ).all()
        return self._replay(rows, request.dry_run)

    def _replay(self, rows: Sequence[sa.Row[Any]], dry_run: bool) -> ReplayReport:
        snapshot = self.catalog.get()
        now = utcnow()
        items: list[ReplayedItem] = []
        for start in range(0, len(rows), CHUNK):
            jobs: list[Job] = []
            for row in rows[start : start + CHUNK]:
                channel = snapshot.channels.get(row.channel_id) if row.channel_id else None
                if channel is None or row.contact_id is None:
                    items.append(ReplayedItem(row.id, "channel_not_found", None, 404))
                    continue
                raw = msgspec.json.encode(_by_code_name(row.payload, row.source, snapshot))
                item = prepare(raw, snapshot, row.received_at, self.max_activity_bytes)
                if isinstance(item, Accepted):
                    item.id = row.id
                jobs.append(
                    Job(
                        channel,
                        row.contact_id,
                        [item],
                        now,
                        row.source,
                        replay_of=row.id,
                        dry_run=dry_run,
                    )
                )
            # A replay racing this one and storing first makes it a duplicate: the writer
            # checks again when an insert conflicts.
            for job, [result] in zip(jobs, self.writer.submit_and_wait(jobs), strict=True):
                assert job.replay_of is not None
                items.append(_item(job.replay_of, result))
        outcomes = Counter(item.outcome for item in items)
        return ReplayReport(
            dry_run=dry_run,
            matched=len(rows),
            stored=outcomes.pop("stored", 0),
            duplicates=outcomes.pop("duplicate", 0),
            still_rejected=dict(outcomes),
            items=items,
        )


def _item(rejected_id: uuid.UUID, result: ActivityResult) -> ReplayedItem:
    if result.status == 202:
        return ReplayedItem(rejected_id, "stored", result.id, 202)
    if result.status == 208:
        return ReplayedItem(rejected_id, "duplicate", result.id, 208)
    assert result.error is not None
    return ReplayedItem(rejected_id, result.error.code, None, result.status)


def _by_code_name(payload: Any, source: str, snapshot: Snapshot) -> Any:
    """An event of a collector kept under its event name replays under the type that now has
    that name as an alias (docs/segment.md, docs/collectors.md: a Snowplow schema URI within
    its major version); the headless API itself takes code names only."""
    if source not in ALIASED_SOURCES or not isinstance(payload, dict):
        return payload
    name = payload.get("type")
    if not isinstance(name, str) or name in snapshot.types:
        return payload
    if source == "marketo":
        # Kept under marketo:<activityTypeId> when no type had the number.
        number = name.removeprefix(UNKNOWN_TYPE.format(number=""))
        found = snapshot.numbers.get(int(number)) if number.isdigit() else None
        return payload if found is None else {**payload, "type": found.code_name}
    names = schema_aliases(name) if source == "snowplow" else (name,)
    found = find_type(snapshot, names)
    return payload if found is None else {**payload, "type": found.code_name}
