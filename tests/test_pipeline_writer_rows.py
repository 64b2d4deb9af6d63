"""The writer's rows: their one encoding, and that nothing else in waypost/ inserts activities
or rejected activities (docs/configuration.md, "Group commit")."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path

import pytest

from waypost.errors import ErrorDetail
from waypost.ids import new_id
from waypost.pipeline import writer_rows
from waypost.pipeline.catalog import TypeInfo
from waypost.pipeline.prepare import Accepted, Rejected
from waypost.pipeline.writer_rows import (
    ACTIVITY_COLUMNS,
    MAX_VIOLATION_NAMES,
    OTHER_FIELDS,
    REJECTED_COLUMNS,
    Statements,
    ViolationKey,
    activity_row,
    counted_names,
    rejected_row,
    replay_mark,
)
from waypost.store.codec import Codec

PACKAGE = Path(writer_rows.__file__).parents[1]
INSERTS = re.compile(
    r"\b(rejected_)?activities\.insert\b"
    r"|\binsert\(\s*(rejected_)?activities\b"
    r"|\b(INSERT\s+INTO|COPY)\s+[\"']?(rejected_)?activities\b",
    re.IGNORECASE,
)
WHEN = dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
CLICK = TypeInfo(new_id(), "click", "Click", True, True, (), "reject", None, None)


def test_only_the_writers_row_module_inserts_activities_or_rejected_activities() -> None:
    inserting = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if INSERTS.search(path.read_text(encoding="utf-8"))
    )
    assert inserting == ["waypost/pipeline/writer_rows.py"]


@pytest.mark.parametrize(
    "text",
    [
        "conn.execute(activities.insert().values(id=x))",
        "conn.execute(rejected_activities.insert().values(id=x))",
        "sa.insert(activities).values()",
        'f"INSERT INTO rejected_activities ({columns}) VALUES ..."',
        "COPY activities (id) FROM STDIN",
    ],
)
def test_the_check_finds_every_way_of_inserting(text: str) -> None:
    assert INSERTS.search(text)


def test_the_check_passes_other_tables() -> None:
    assert not INSERTS.search("activity_types.insert() INSERT INTO activity_rollups")


def accepted() -> Accepted:
    return Accepted(
        id=new_id(),
        type=CLICK,
        client_id="c-1",
        title="Click",
        value="v",
        url="https://e.example/",
        referrer=None,
        fields={"n": 1},
        primary_value=None,
        flags=None,
        occurred_at=WHEN,
        contact_fields=None,
        payload=b"{}",
    )


def test_an_activity_row_in_sqlite_storage_form() -> None:
    item, contact, channel = accepted(), new_id(), new_id()
    row = dict(
        zip(
            ACTIVITY_COLUMNS,
            activity_row(Codec("sqlite"), item, contact, channel, WHEN, True, 2),
            strict=True,
        )
    )
    assert row["id"] == item.id.hex
    assert (row["contact_id"], row["channel_id"]) == (contact.hex, channel.hex)
    assert row["fields"] == '{"n":1}'
    assert row["flags"] is None
    assert row["occurred_at"] == row["received_at"] == "2026-03-01 10:00:00.000000"
    assert (row["consent_agreed"], row["consent_version"]) == (1, 2)


def test_a_rejected_row_keeps_the_payload_as_sent() -> None:
    item = Rejected(400, ErrorDetail("missing_field", "Send one.", "type"), b'{"a" : 1}', None)
    row = dict(
        zip(
            REJECTED_COLUMNS,
            rejected_row(Codec("postgresql"), item, new_id(), None, "segment", WHEN),
            strict=True,
        )
    )
    assert row["payload"] == '{"a" : 1}'
    assert (row["reason"], row["status"], row["message"], row["field"]) == (
        "missing_field",
        400,
        "Send one.",
        "type",
    )
    assert (row["contact_id"], row["type_code"], row["source"]) == (None, None, "segment")
    assert row["received_at"] is WHEN


def test_a_replay_mark_and_the_statements_per_dialect() -> None:
    rejected = new_id()
    assert replay_mark(Codec("sqlite"), WHEN, "duplicate", None, rejected) == (
        "2026-03-01 10:00:00.000000",
        "duplicate",
        None,
        rejected.hex,
    )
    sqlite, postgres = Statements(Codec("sqlite")), Statements(Codec("postgresql"))
    assert sqlite.insert_activity.endswith(f"VALUES ({', '.join('?' * 16)})")
    assert postgres.insert_rejected.endswith(f"VALUES ({', '.join(['%s'] * 11)})")
    assert postgres.mark_replayed.count("%s") == 4


def test_violations_are_counted_under_at_most_100_names_a_type() -> None:
    """Names new to a type take the room left, in name order; past it they are counted
    together as OTHER_FIELDS, per code; names counted already, and other types, are not."""
    other = new_id()
    known = {CLICK.id: {f"k{n:02}" for n in range(MAX_VIOLATION_NAMES - 2)}, other: {"x"}}
    violations: Counter[ViolationKey] = Counter(
        {
            (CLICK.id, "k00", "unknown_field"): 3,
            (CLICK.id, "b", "unknown_field"): 1,
            (CLICK.id, "a", "invalid_field"): 1,
            (CLICK.id, "c", "unknown_field"): 2,
            (CLICK.id, "d", "invalid_field"): 1,
            (CLICK.id, OTHER_FIELDS, "unknown_field"): 1,
            (other, "y", "unknown_field"): 1,
        }
    )
    assert counted_names(violations, known) == {
        (CLICK.id, "k00", "unknown_field"): 3,
        (CLICK.id, "a", "invalid_field"): 1,
        (CLICK.id, "b", "unknown_field"): 1,
        (CLICK.id, OTHER_FIELDS, "unknown_field"): 3,
        (CLICK.id, OTHER_FIELDS, "invalid_field"): 1,
        (other, "y", "unknown_field"): 1,
    }
    assert len(known[CLICK.id]) == MAX_VIOLATION_NAMES - 2  # left as it was
