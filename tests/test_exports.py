"""Exports through the admin API (waypost/services/exports.py, waypost/api/exports.py), on
SQLite and PostgreSQL: each format reads back as the lists show the same items."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.services import exports
from waypost.services.activity_types import ActivityType
from waypost.services.exports import ActivityExportQuery
from waypost.store.codec import Codec
from waypost.store.schema import activity_types

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import Groups, ago
else:
    from conftest import ErrorCheck, Tracker
    from group_support import Groups, ago

# Not any group's id, and the same in every test process (xdist compares the collections).
UNKNOWN_GROUP = "858b1cd9-950f-4fa3-970f-bd3a50669517"

FIELDS = [
    {"name": "amount", "type": "decimal", "primary": True},
    {"name": "years", "type": "integer"},
    {"name": "signed", "type": "boolean"},
    {"name": "due", "type": "datetime"},
    {"name": "note", "type": "text"},
]


@pytest.fixture
def loans(
    tracker: Tracker, make_type: Callable[..., ActivityType]
) -> tuple[ActivityType, list[str]]:
    """A type with a field of each kind, and activities of it and of other types for two
    contacts; the contacts."""
    kind = make_type(name="Loan calculator usage", fields=FIELDS)
    contacts = [tracker.new_contact(), tracker.new_contact()]
    for n, contact in enumerate(contacts):
        tracker.log(
            [
                {
                    "type": kind.code_name,
                    "value": f"v{i}",
                    "occurredAt": ago(i),
                    "fields": {
                        "amount": f"{1000 + i}.5{n}",
                        "years": i,
                        "signed": i % 2 == 0,
                        "due": "2027-01-31T12:00:00Z",
                        **({"note": 'a "quoted", text\nover lines'} if i == 1 else {}),
                    },
                }
                for i in range(4)
            ]
            + [{"type": "click", "value": "cta", "occurredAt": ago(0.5)}],
            contact,
        )
    return kind, contacts


def listed(client: TestClient, headers: dict[str, str], path: str, **params: Any) -> list[Any]:
    """Every item of a list, page after page."""
    items: list[Any] = []
    params = {**params, "limit": 2}
    while True:
        page = client.get(path, params=params, headers=headers).json()
        items += page["data"]
        if page["next"] is None:
            return items
        params["cursor"] = page["next"]


def download(
    client: TestClient, headers: dict[str, str], path: str, **params: Any
) -> tuple[bytes, dict[str, str]]:
    answer = client.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.content, dict(answer.headers)


def test_ndjson_lines_equal_the_activity_logs_items(
    client: TestClient, admin_headers: dict[str, str], loans: tuple[ActivityType, list[str]]
) -> None:
    kind, contacts = loans
    for params in [
        {},
        {"type": kind.code_name},
        {"type": kind.code_name, "field.years.gte": "2", "contact": contacts[1]},
        {"since": ago(1.5), "until": ago(0.25)},
    ]:
        body, headers = download(
            client, admin_headers, "/api/activities/export", format="ndjson", **params
        )
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert lines == listed(client, admin_headers, "/api/activities", **params), params
        assert lines
        assert headers["content-type"] == "application/x-ndjson"
        assert headers["content-disposition"].startswith("attachment; filename=")


def test_pages_of_the_export_follow_each_other(
    client: TestClient,
    admin_headers: dict[str, str],
    loans: tuple[ActivityType, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exports, "ACTIVITY_PAGE", 3)
    body, _ = download(client, admin_headers, "/api/activities/export")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == 10
    assert lines == listed(client, admin_headers, "/api/activities")


def test_csv_opens_with_a_header_and_a_column_per_field_of_one_type(
    client: TestClient, admin_headers: dict[str, str], loans: tuple[ActivityType, list[str]]
) -> None:
    kind, _ = loans
    body, headers = download(
        client, admin_headers, "/api/activities/export", format="csv", type=kind.code_name
    )
    assert headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    items = listed(client, admin_headers, "/api/activities", type=kind.code_name)
    assert len(rows) == len(items) == 8
    assert list(rows[0]) == [
        *("id", "type", "contact", "channel", "title", "value", "url", "referrer"),
        *("fields.amount", "fields.years", "fields.signed", "fields.due", "fields.note"),
        *("flags", "occurred_at", "received_at", "client_id", "consent_agreed"),
        "consent_version",
    ]
    for row, item in zip(rows, items, strict=True):
        assert row["id"] == item["id"]
        assert row["fields.amount"] == item["fields"]["amount"]
        assert row["fields.years"] == str(item["fields"]["years"])
        assert row["fields.signed"] == ("true" if item["fields"]["signed"] else "false")
        assert row["fields.note"] == item["fields"].get("note", "")
        assert row["url"] == ""
        assert dt.datetime.fromisoformat(row["occurred_at"]) == dt.datetime.fromisoformat(
            item["occurred_at"]
        )
    assert 'a "quoted", text\nover lines' in [row["fields.note"] for row in rows]
    # Without a type, the fields are one column of JSON.
    body, _ = download(client, admin_headers, "/api/activities/export", format="csv")
    mixed = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    assert len(mixed) == 10
    assert {json.dumps(json.loads(r["fields"])) if r["fields"] else "" for r in mixed} >= {""}
    assert json.loads(mixed[-1]["fields"])["amount"].startswith("100")


def test_parquet_reads_back_with_the_declared_column_types(
    client: TestClient, admin_headers: dict[str, str], loans: tuple[ActivityType, list[str]]
) -> None:
    kind, _ = loans
    body, headers = download(
        client, admin_headers, "/api/activities/export", format="parquet", type=kind.code_name
    )
    assert headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(body))
    types = {f.name: f.type for f in table.schema}
    moment = pa.timestamp("us", tz="UTC")
    assert types["id"] == pa.string()
    assert types["occurred_at"] == types["received_at"] == types["fields.due"] == moment
    assert types["fields.amount"] == pa.string()  # exact, as the API gives it
    assert types["fields.years"] == types["consent_version"] == pa.int64()
    assert types["fields.signed"] == types["consent_agreed"] == pa.bool_()
    items = listed(client, admin_headers, "/api/activities", type=kind.code_name)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [i["id"] for i in items]
    assert [r["fields.years"] for r in rows] == [i["fields"]["years"] for i in items]
    assert rows[0]["fields.due"] == dt.datetime(2027, 1, 31, 12, tzinfo=dt.UTC)
    assert rows[0]["occurred_at"] == dt.datetime.fromisoformat(items[0]["occurred_at"])
    # Without a type, fields are JSON text.
    body, _ = download(client, admin_headers, "/api/activities/export", format="parquet")
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == 10
    assert table.schema.field("fields").type == pa.string()


def test_contacts_export_as_the_contact_reads(
    client: TestClient, admin_headers: dict[str, str], tracker: Tracker
) -> None:
    for email in ("ann@example.com", "anna@example.com", "bob@example.com"):
        tracker.log([{"type": "datainput", "value": "f", "contactFields": {"ContactEmail": email}}])
    body, _ = download(client, admin_headers, "/api/contacts/export", q="ann")
    found = [json.loads(line) for line in body.decode().splitlines()]
    assert [c["email"] for c in found] == ["ann@example.com", "anna@example.com"]
    for contact in found:
        assert contact == client.get(f"/api/contacts/{contact['id']}", headers=admin_headers).json()
    body, _ = download(client, admin_headers, "/api/contacts/export", format="csv")
    rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    everyone = listed(client, admin_headers, "/api/contacts")
    assert [r["id"] for r in rows] == [c["id"] for c in everyone]
    assert {r["attributes"] for r in rows} == {"{}"}
    body, _ = download(client, admin_headers, "/api/contacts/export", format="parquet")
    table = pq.read_table(io.BytesIO(body))
    assert table.schema.field("birthday").type == pa.date32()
    assert table.num_rows == len(everyone)


def test_a_groups_members_export(
    client: TestClient, admin_headers: dict[str, str], loans: tuple[ActivityType, list[str]]
) -> None:
    kind, contacts = loans
    group = Groups(client, admin_headers).create({"activity": {"type": kind.code_name}})
    path = f"/api/groups/{group['id']}/members/export"
    body, _ = download(client, admin_headers, path)
    members = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(m["contact"] for m in members) == sorted(contacts)
    assert set(members[0]) == {"contact", "since", "email", "first_name", "last_name"}
    body, _ = download(client, admin_headers, path, format="csv")
    rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    assert [r["contact"] for r in rows] == [m["contact"] for m in members]
    body, _ = download(client, admin_headers, path, format="parquet")
    assert pq.read_table(io.BytesIO(body)).num_rows == 2


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "field"),
    [
        ("/api/activities/export", {"format": "xml"}, 400, "invalid_field", "format"),
        ("/api/activities/export", {"since": "2026-01-01T00:00:00"}, 400, "invalid_field", "since"),
        ("/api/activities/export", {"field.amount": "1"}, 400, "invalid_field", "type"),
        ("/api/activities/export", {"type": "no_such_type"}, 400, "invalid_field", "type"),
        ("/api/activities/export", {"contact": "not-a-uuid"}, 400, "invalid_field", "contact"),
        ("/api/activities/export", {"limit": "5"}, 400, "unknown_field", "limit"),
        ("/api/contacts/export", {"format": "PDF"}, 400, "invalid_field", "format"),
        ("/api/contacts/export", {"q": "x" * 300}, 400, "invalid_field", "q"),
        ("/api/groups/nope/members/export", {}, 404, "not_found", None),
        (f"/api/groups/{UNKNOWN_GROUP}/members/export", {}, 404, "not_found", None),
    ],
)
def test_bad_input_is_a_4xx_before_any_byte(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    answer = client.get(path, params=params, headers=admin_headers)
    expect_error(answer, status, code, field)


def test_parquet_without_pyarrow_is_a_clear_400(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    for path in ("/api/activities/export", "/api/contacts/export"):
        answer = client.get(path, params={"format": "parquet"}, headers=admin_headers)
        error = expect_error(answer, 400, "parquet_unavailable", "format")
        assert "pip install '.[parquet]'" in error["message"]
    assert client.get("/api/contacts/export", headers=admin_headers).status_code == 200


def test_exports_need_an_admin_key(client: TestClient, expect_error: ErrorCheck) -> None:
    expect_error(client.get("/api/activities/export"), 401, "unauthorized")


# -- memory ----------------------------------------------------------------------------------

ROWS = {"sqlite": 1_000_000, "postgresql": 200_000}
RSS_GROWTH_LIMIT = 100 * 1024 * 1024


def rss() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fill(hub: Hub, channel: uuid.UUID, total: int) -> dt.datetime:
    """``total`` clicks for 100 contacts, one a second from the moment returned, written
    straight into the table (the fastest way to make many rows; the writer is not what this
    test is about)."""
    contacts = [hub.contacts.create_anonymous().contact for _ in range(100)]
    with hub.store.read() as conn:
        click = conn.execute(
            sa.select(activity_types.c.id).where(activity_types.c.code_name == "click")
        ).scalar_one()
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=total)).replace(microsecond=0)
    sqlite = hub.store.dialect == "sqlite"
    codec = Codec(hub.store.dialect)
    columns = "id, type_id, contact_id, channel_id, title, value, fields, occurred_at, received_at"
    raw = hub.store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if sqlite:
            # Waypost's SQLite connections leave transactions to SQLAlchemy (autocommit in
            # the driver): without a BEGIN each row would be a transaction of its own.
            cursor.execute("BEGIN")
        for first in range(0, total, 50_000):
            rows = []
            for i in range(first, min(first + 50_000, total)):
                when = codec.timestamp(start + dt.timedelta(seconds=i))
                rows.append(
                    (
                        codec.ident(uuid.UUID(int=i + 1)), codec.ident(click),
                        codec.ident(contacts[i % 100]), codec.ident(channel), "Clicked 'cta'",
                        "cta", '{"n":1}', when, when,
                    )
                )  # fmt: skip
            if sqlite:
                cursor.executemany(
                    f"INSERT INTO activities ({columns}) VALUES ({', '.join('?' * 9)})", rows
                )
            else:
                with cursor.copy(f"COPY activities ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        raw.commit()
        if not sqlite:
            cursor.execute("ANALYZE activities")  # as autovacuum would, after a bulk load
            raw.commit()
    finally:
        raw.close()
    return start


@pytest.mark.slow
def test_an_export_of_a_million_activities_keeps_memory_flat(
    hub: Hub, make_channel: Callable[..., Any]
) -> None:
    """NDJSON over every activity (a million on SQLite); CSV and Parquet over the newest
    fifth, which is still several Parquet row groups: the run stays near a minute."""
    total = ROWS[hub.store.dialect]
    start = fill(hub, make_channel().id, total)
    gc.collect()
    fifth = start + dt.timedelta(seconds=total - total // 5)
    for fmt, since, expected in [
        ("ndjson", None, total),
        ("csv", fifth, total // 5),
        ("parquet", fifth, total // 5),
    ]:
        query = ActivityExportQuery(format=fmt, since=since)  # type: ignore[arg-type]
        export = hub.exports.activities_export(query)
        before = rss()
        highest, at_tenth, size = before, 0, 0
        started = time.perf_counter()
        for chunk in export.chunks():
            size += len(chunk)
            now = rss()
            highest = max(highest, now)
            if not at_tenth and export.rows >= expected // 10:
                at_tenth = now
        seconds = time.perf_counter() - started
        print(
            f"{hub.store.dialect} {fmt}: {export.rows:,} activities in {seconds:.1f} s "
            f"({export.rows / seconds:,.0f}/s), {size / 1e6:,.0f} MB; RSS {before / 1e6:,.0f} MB "
            f"before, {at_tenth / 1e6:,.0f} MB at a tenth, at most {highest / 1e6:,.0f} MB"
        )
        assert export.rows == expected
        assert highest - before < RSS_GROWTH_LIMIT, (fmt, before, highest)
        # Flat: what the first tenth took, the other nine tenths do not add to.
        assert highest - at_tenth < 30 * 1024 * 1024, (fmt, at_tenth, highest)
