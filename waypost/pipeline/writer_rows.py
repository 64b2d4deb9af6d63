"""The writer's rows: the one encoding of activity and rejected-activity rows, and the
statements that write a batch's rows in its transaction.

Every activity and every rejected activity is stored through these functions, on the writer's
thread (docs/configuration.md, "Group commit"): live traffic, replays and every collector. The
values are in each database's storage form (:mod:`waypost.store.codec`), for driver-level
``executemany``; on PostgreSQL a batch of at least ``COPY_MIN_ROWS`` activities (or rejected
activities) is written with ``COPY ... FROM STDIN`` instead, which is faster from there on
(docs/performance.md). Either way the rows are the same, and so are the answers: the writer has
decided every duplicate before it writes, and a conflict it could not see (another node's
insert) fails the statement, ``COPY`` or ``INSERT``, with the same IntegrityError.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from waypost.domain.conditions import Changes
from waypost.domain.keys import hide_keys
from waypost.domain.triggers import ActivityStored
from waypost.ids import new_id
from waypost.pipeline.prepare import Accepted, Rejected
from waypost.records.contacts import apply_data_input
from waypost.store import emit, touch
from waypost.store.codec import Codec
from waypost.store.driver import execute_many, fetch_all

ACTIVITY_COLUMNS = (
    "id",
    "type_id",
    "contact_id",
    "channel_id",
    "client_id",
    "title",
    "value",
    "url",
    "referrer",
    "fields",
    "primary_value",
    "flags",
    "occurred_at",
    "received_at",
    "consent_agreed",
    "consent_version",
)
REJECTED_COLUMNS = (
    "id",
    "channel_id",
    "contact_id",
    "type_code",
    "reason",
    "status",
    "message",
    "field",
    "source",
    "payload",
    "received_at",
)
# From this many rows a COPY beats executemany on PostgreSQL (docs/performance.md).
COPY_MIN_ROWS = 16
# The position of contact_id in an activity row, which a data input may move to another contact.
CONTACT_COLUMN = ACTIVITY_COLUMNS.index("contact_id")

Row = tuple[object, ...]
RollupKey = tuple[uuid.UUID, uuid.UUID, dt.date]
ValueKey = tuple[uuid.UUID, str, dt.date, str]
# Rollup rows per upsert statement: 4 parameters each, within every driver's limit.
ROLLUP_CHUNK = 1000
# (type, field name, code): what a field violation is counted by.
ViolationKey = tuple[uuid.UUID, str, str]
# The most field names a type's violations are counted by, each its own (docs/activity-fields.md):
# the names of unknown fields are the client's, and each new one was a row of its own. The
# violations of further names are counted together, under OTHER_FIELDS.
MAX_VIOLATION_NAMES = 100
OTHER_FIELDS = "(other fields)"
# PostgreSQL: the advisory lock a batch adding names holds (any constant, the same on every node).
VIOLATION_NAMES_LOCK = 0x77617970_6E616D65


@dataclass
class DataInput:
    """An activity row whose contact fields are applied before it is written; the contact it
    then belongs to (a data input may move to the contact that holds the email) is known only
    once they are."""

    row: int
    contact: uuid.UUID
    fields: dict[str, object]
    type_id: uuid.UUID
    day: dt.date


@dataclass
class BatchRows:
    """What one batch writes, in storage form, and the counters that go with it."""

    latest: dt.datetime
    activities: list[Row] = field(default_factory=list)
    rejected: list[Row] = field(default_factory=list)
    replay_marks: list[Row] = field(default_factory=list)
    # Per contact, type and UTC day; data inputs are counted once their contact is known.
    rollups: Counter[RollupKey] = field(default_factory=Counter)
    # Per type, field, UTC day and value, for the counted fields (waypost.domain.value_counts).
    values: Counter[ValueKey] = field(default_factory=Counter)
    violations: Counter[ViolationKey] = field(default_factory=Counter)
    data_inputs: list[DataInput] = field(default_factory=list)
    # The contacts whose activities changed, and their types, for the contact groups.
    touched: set[uuid.UUID] = field(default_factory=set)
    touched_types: set[uuid.UUID] = field(default_factory=set)
    # The stored activities of the types a playbook listens to, to emit once written.
    listened: list[Listened] = field(default_factory=list)
    # What the batch answered besides 202s, for the metrics: 208s, and errors by code.
    duplicates: int = 0
    rejections: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Listened:
    """A stored activity some playbook may fire on: its row (whose contact a data input may
    still move), the item as validated, and where and when it was received."""

    row: int
    item: Accepted
    contact: uuid.UUID
    channel_id: uuid.UUID
    received_at: dt.datetime
    consent_agreed: bool | None = None
    consent_version: int | None = None


def activity_row(
    c: Codec,
    item: Accepted,
    contact: uuid.UUID,
    channel_id: uuid.UUID,
    received_at: dt.datetime,
    agreed: bool | None,
    version: int | None,
) -> Row:
    """An ``activities`` row, in ACTIVITY_COLUMNS order."""
    return (
        c.ident(item.id),
        c.known(item.type.id),
        c.known(contact),
        c.known(channel_id),
        item.client_id,
        item.title,
        item.value,
        item.url,
        item.referrer,
        c.json(item.fields),
        item.primary_value,
        c.json(item.flags),
        c.timestamp(item.occurred_at),
        c.timestamp(received_at),
        c.boolean(agreed),
        version,
    )


def rejected_row(
    c: Codec,
    item: Rejected,
    channel_id: uuid.UUID,
    contact: uuid.UUID | None,
    source: str,
    received_at: dt.datetime,
) -> Row:
    """A ``rejected_activities`` row, in REJECTED_COLUMNS order; the payload as sent."""
    return (
        c.ident(new_id()),
        c.ident(channel_id),
        c.ident(contact),
        item.type_code,
        item.error.code,
        item.status,
        item.error.message,
        item.error.field,
        source,
        c.json_bytes(hide_keys(item.payload)),
        c.timestamp(received_at),
    )


def replay_mark(
    c: Codec,
    replayed_at: dt.datetime,
    outcome: str,
    activity_id: uuid.UUID | None,
    rejected_id: uuid.UUID,
) -> Row:
    """The parameters of :attr:`Statements.mark_replayed` for one replayed rejected activity."""
    return (c.timestamp(replayed_at), outcome, c.ident(activity_id), c.ident(rejected_id))


class Statements:
    """The writer's statements for one dialect, built once from constant column names."""

    def __init__(self, c: Codec) -> None:
        mark = c.placeholders
        self.insert_activity = (
            f"INSERT INTO activities ({', '.join(ACTIVITY_COLUMNS)}) "  # noqa: S608
            f"VALUES ({mark(len(ACTIVITY_COLUMNS))})"
        )
        self.insert_rejected = (
            f"INSERT INTO rejected_activities ({', '.join(REJECTED_COLUMNS)}) "  # noqa: S608
            f"VALUES ({mark(len(REJECTED_COLUMNS))})"
        )
        self.upsert_violation = (
            "INSERT INTO field_violations (type_id, field, code, count, last_seen_at) "  # noqa: S608
            f"VALUES ({mark(5)}) ON CONFLICT (type_id, field, code) "
            "DO UPDATE SET count = field_violations.count + excluded.count, "
            "last_seen_at = excluded.last_seen_at"
        )
        # PostgreSQL only: the same rows in COPY's text format (None: always executemany).
        self.copy_activity: str | None = None
        self.copy_rejected: str | None = None
        self.copy_min_rows = COPY_MIN_ROWS
        if not c.sqlite:
            self.copy_activity = f"COPY activities ({', '.join(ACTIVITY_COLUMNS)}) FROM STDIN"
            self.copy_rejected = (
                f"COPY rejected_activities ({', '.join(REJECTED_COLUMNS)}) FROM STDIN"
            )
        m = c.mark
        self.mark_replayed = (
            f"UPDATE rejected_activities SET replayed_at = {m}, replay_outcome = {m}, "  # noqa: S608
            f"replayed_activity_id = {m} WHERE id = {m}"
        )
        self.sqlite = c.sqlite
        self.upsert_rollup = (
            "INSERT INTO activity_rollups (contact_id, type_id, day, count) "  # noqa: S608
            f"VALUES ({mark(4)}) ON CONFLICT (contact_id, type_id, day) "
            "DO UPDATE SET count = activity_rollups.count + excluded.count"
        )
        self._rollup_row = f"({mark(4)})"
        self._upsert_rollups: dict[int, str] = {}
        self.upsert_daily = (
            "INSERT INTO activity_daily_counts (type_id, day, count, contacts) "  # noqa: S608
            f"VALUES ({mark(4)}) ON CONFLICT (type_id, day) "
            "DO UPDATE SET count = activity_daily_counts.count + excluded.count, "
            "contacts = activity_daily_counts.contacts + excluded.contacts"
        )
        self.upsert_value = (
            "INSERT INTO activity_value_counts (type_id, field, day, value, count) "  # noqa: S608
            f"VALUES ({mark(5)}) ON CONFLICT (type_id, field, day, value) "
            "DO UPDATE SET count = activity_value_counts.count + excluded.count"
        )

    def upsert_rollups(self, rows: int) -> str:
        """PostgreSQL: one statement upserting ``rows`` rollup rows and returning each row's
        count after it; a count equal to the one added is a row the statement created, a
        contact new to that type and day. (executemany would drop what RETURNING returns.)"""
        statement = self._upsert_rollups.get(rows)
        if statement is None:
            statement = self._upsert_rollups[rows] = (
                "INSERT INTO activity_rollups (contact_id, type_id, day, count) "  # noqa: S608
                f"VALUES {', '.join([self._rollup_row] * rows)} "
                "ON CONFLICT (contact_id, type_id, day) "
                "DO UPDATE SET count = activity_rollups.count + excluded.count "
                "RETURNING contact_id, type_id, day, count"
            )
        return statement


def write_rows(conn: Connection, s: Statements, c: Codec, rows: BatchRows) -> None:
    """Execute a batch's rows in ``conn``'s transaction: data inputs first, as their activity
    rows and rollups need the contact they end up with. The activities some playbook listens
    to are emitted as ActivityStored events once written."""
    if rows.violations:
        # Before any row is written: a batch that waits here for another's names holds none
        # that the other may wait for.
        rows.violations = bound_violations(conn, c, rows.violations)
    moved = _apply_data_inputs(conn, c, rows)
    if rows.activities:
        _insert(conn, s.insert_activity, s.copy_activity, s.copy_min_rows, rows.activities)
        changes = Changes(frozenset(rows.touched_types), contact_fields=bool(rows.data_inputs))
        touch(conn, rows.touched, changes)
        if rows.listened:
            _emit_stored(conn, rows.listened, moved)
    if rows.rejected:
        _insert(conn, s.insert_rejected, s.copy_rejected, s.copy_min_rows, rows.rejected)
    if rows.replay_marks:
        execute_many(conn, s.mark_replayed, rows.replay_marks)
    write_counters(conn, s, c, rows)


def _insert(
    conn: Connection, insert: str, copy: str | None, copy_min_rows: int, rows: list[Row]
) -> None:
    """``rows`` with ``insert`` (executemany), or with ``copy`` when there are enough of them."""
    if copy is None or len(rows) < copy_min_rows:
        execute_many(conn, insert, rows)
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(copy) as writing:
            for row in rows:
                writing.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would have raised it from executemany: IntegrityError for a duplicate,
        # OperationalError for a lost connection (the store turns that into a 503).
        raise DBAPIError.instance(
            copy, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from exc


def _apply_data_inputs(conn: Connection, c: Codec, rows: BatchRows) -> dict[int, uuid.UUID]:
    """Apply the data inputs; the rows that moved to another contact, and to which."""
    moved: dict[int, uuid.UUID] = {}
    for data in rows.data_inputs:
        owner = apply_data_input(conn, data.contact, data.fields)
        if owner != data.contact:
            row = rows.activities[data.row]
            rows.activities[data.row] = (
                *row[:CONTACT_COLUMN],
                c.ident(owner),
                *row[CONTACT_COLUMN + 1 :],
            )
            moved[data.row] = owner
        rows.rollups[(owner, data.type_id, data.day)] += 1
        rows.touched.add(owner)
    return moved


def _emit_stored(conn: Connection, listened: list[Listened], moved: dict[int, uuid.UUID]) -> None:
    for entry in listened:
        item = entry.item
        emit(
            conn,
            ActivityStored(
                id=item.id,
                type_id=item.type.id,
                type_code=item.type.code_name,
                contact_id=moved.get(entry.row, entry.contact),
                channel_id=entry.channel_id,
                title=item.title,
                value=item.value,
                url=item.url,
                referrer=item.referrer,
                fields=item.fields or {},
                occurred_at=item.occurred_at,
                received_at=entry.received_at,
                flags=item.flags or None,
                client_id=item.client_id,
                consent_agreed=entry.consent_agreed,
                consent_version=entry.consent_version,
            ),
        )


def write_counters(conn: Connection, s: Statements, c: Codec, rows: BatchRows) -> None:
    """The batch's counters: field violations, rollups per contact, type and day, counts per
    type and day (activities and distinct contacts), counts per field value."""
    # These are rows that other nodes' writers add to as well (every writer adds to today's
    # count of a type): each batch takes them in key order, so that two batches never each
    # hold a row the other waits for.
    if rows.violations:
        execute_many(
            conn,
            s.upsert_violation,
            [
                (c.ident(type_id), name, code, count, c.timestamp(rows.latest))
                for (type_id, name, code), count in sorted(rows.violations.items())
            ],
        )
    if rows.rollups:
        _write_rollups(conn, s, c, rows.rollups)
    if rows.values:
        execute_many(
            conn,
            s.upsert_value,
            [
                (c.known(type_id), name, c.date(day), value, count)
                for (type_id, name, day, value), count in sorted(
                    rows.values.items(), key=_value_key
                )
            ],
        )


def counted_names(
    violations: Counter[ViolationKey], known: Mapping[uuid.UUID, AbstractSet[str]]
) -> Counter[ViolationKey]:
    """``violations`` as they are counted: under their own names while their type counts
    fewer than MAX_VIOLATION_NAMES (``known``, each type's names so far, OTHER_FIELDS aside;
    a new name takes what room is left, in name order), the rest under OTHER_FIELDS."""
    names = {type_id: set(found) for type_id, found in known.items()}
    counted: Counter[ViolationKey] = Counter()
    for (type_id, name, code), count in sorted(violations.items()):
        taken = names.setdefault(type_id, set())
        if name not in taken:
            if len(taken) < MAX_VIOLATION_NAMES and name != OTHER_FIELDS:
                taken.add(name)
            else:
                name = OTHER_FIELDS
        counted[(type_id, name, code)] += count
    return counted


def bound_violations(
    conn: Connection, c: Codec, violations: Counter[ViolationKey]
) -> Counter[ViolationKey]:
    """:func:`counted_names` of ``violations``, after the names their types count so far. On
    PostgreSQL, a batch that adds names waits for the other nodes' batches that do (an
    advisory lock, to its transaction's end) and reads the names again once it is its turn:
    two batches never both take a type's last room."""
    known = _violation_names(conn, c, {type_id for type_id, _, _ in violations})
    if not c.sqlite and _adds_names(violations, known):
        fetch_all(conn, f"SELECT pg_advisory_xact_lock({c.mark})", (VIOLATION_NAMES_LOCK,))
        known = _violation_names(conn, c, set(known))
    return counted_names(violations, known)


def _violation_names(
    conn: Connection, c: Codec, type_ids: set[uuid.UUID]
) -> dict[uuid.UUID, set[str]]:
    ordered = sorted(type_ids, key=lambda type_id: type_id.int)
    rows = fetch_all(
        conn,
        "SELECT type_id, field FROM field_violations "  # noqa: S608
        f"WHERE type_id IN ({c.placeholders(len(ordered))})",
        tuple(c.ident(type_id) for type_id in ordered),
    )
    known: dict[uuid.UUID, set[str]] = {type_id: set() for type_id in ordered}
    for type_id, name in rows:
        if name != OTHER_FIELDS:
            known[uuid.UUID(str(type_id))].add(name)
    return known


def _adds_names(
    violations: Counter[ViolationKey], known: Mapping[uuid.UUID, AbstractSet[str]]
) -> bool:
    return any(
        name not in known[type_id]
        and name != OTHER_FIELDS
        and len(known[type_id]) < MAX_VIOLATION_NAMES
        for type_id, name, _ in violations
    )


def _write_rollups(conn: Connection, s: Statements, c: Codec, rollups: Counter[RollupKey]) -> None:
    """The rollups per contact, type and day, then the counts per type and day with the
    contacts the rollups gained (a row created is a contact new to its type and day)."""
    params = [
        (c.known(contact), c.known(type_id), c.date(day), count)
        for (contact, type_id, day), count in sorted(rollups.items(), key=_rollup_key)
    ]
    new: Counter[tuple[object, object]] = Counter()
    if s.sqlite:
        # The writer holds SQLite's write lock: the rows created are those with a rowid past
        # the largest before (SQLite gives a new row the largest rowid plus one), which costs
        # two index lookups rather than a lookup per row.
        ((last,),) = fetch_all(conn, "SELECT max(rowid) FROM activity_rollups")
        execute_many(conn, s.upsert_rollup, params)
        # (No GROUP BY: SQLite would walk the whole type-and-contact index for it.)
        new.update(
            fetch_all(
                conn, "SELECT type_id, day FROM activity_rollups WHERE rowid > ?", (last or 0,)
            )
        )
    else:
        added = {row[:3]: row[3] for row in params}
        for first in range(0, len(params), ROLLUP_CHUNK):
            chunk = params[first : first + ROLLUP_CHUNK]
            flat = tuple(value for row in chunk for value in row)
            for contact, type_id, day, count in conn.exec_driver_sql(
                s.upsert_rollups(len(chunk)), flat
            ):
                if added[(contact, type_id, day)] == count:
                    new[(type_id, day)] += 1
    daily: Counter[tuple[uuid.UUID, dt.date]] = Counter()
    for (_, type_id, day), count in rollups.items():
        daily[(type_id, day)] += count
    execute_many(
        conn,
        s.upsert_daily,
        [
            (c.ident(type_id), c.date(day), count, new[(c.ident(type_id), c.date(day))])
            for (type_id, day), count in sorted(daily.items())
        ],
    )


def _rollup_key(item: tuple[RollupKey, int]) -> tuple[int, int, dt.date]:
    # UUIDs compare through a Python method: their integers sort the same, and faster.
    (contact, type_id, day), _ = item
    return contact.int, type_id.int, day


def _value_key(item: tuple[ValueKey, int]) -> tuple[int, str, dt.date, str]:
    (type_id, name, day, value), _ = item
    return type_id.int, name, day, value
