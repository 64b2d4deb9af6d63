"""``waypost import`` through click's runner, on SQLite and PostgreSQL:
docs/data-lifecycle.md#import."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from waypost.cli import main
from waypost.hub import Hub
from waypost.services.activities import ActivityQuery
from waypost.services.activity_types import ActivityType, ActivityTypeCreate
from waypost.services.channels import ChannelCreate
from waypost.settings import load_settings
from waypost.store import make_engine, migrate
from waypost.store.schema import activities, contacts, rejected_activities

if TYPE_CHECKING:
    from tests.conftest import POSTGRES_ADMIN_URL, Tracker
    from tests.group_support import ago
else:
    from conftest import POSTGRES_ADMIN_URL, Tracker
    from group_support import ago

Invoke = Callable[..., Result]
# What an activity is, byte for byte, wherever it is stored: everything but the columns the
# installation decides (its channel, when it received it, the consent state it found).
SAME = ("id", "type", "contact", "title", "value", "url", "referrer", "fields", "occurred_at",
        "client_id")  # fmt: skip
TYPE = {
    "name": "Loan calculator",
    "code_name": "loan_calc",
    "fields": [
        {"name": "amount", "type": "decimal", "primary": True},
        {"name": "months", "type": "integer"},
        {"name": "fixed", "type": "boolean"},
        {"name": "start", "type": "datetime"},
        {"name": "note", "type": "text"},
    ],
}


def invoker(database_url: str) -> Invoke:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": database_url})

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    return run


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    return invoker(database_url)


@pytest.fixture
def fresh_url(database_url: str, sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """Another migrated, empty database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "fresh.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    name = f"waypost_fresh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}), poolclass=sa.NullPool)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def rows(hub: Hub, table: sa.Table) -> list[Any]:
    with hub.store.read() as conn:
        return list(conn.execute(sa.select(table)))


def stored(hub: Hub) -> list[dict[str, Any]]:
    """Every activity as the export shows it, in id order."""
    page = hub.activities.log(ActivityQuery(limit=1000))
    return sorted((msgspec.to_builtins(a) for a in page.data), key=lambda a: a["id"])


def test_export_then_import_into_a_fresh_database_gives_the_same_activities(
    client: TestClient,
    hub: Hub,
    tracker: Tracker,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    fresh_url: str,
    tmp_path: Path,
) -> None:
    make_type(**TYPE)
    contact = tracker.new_contact()
    other = tracker.new_contact()
    logged = [
        {"type": "pagevisit", "url": "https://bank.example/loans?a=1", "referrer": "https://s.example/"},
        {"type": "click", "value": "btnCTA", "id": "click-1", "occurredAt": ago(3)},
        {"type": "loan_calc", "title": "Custom title", "fields": {
            "amount": "50000.10", "months": 36, "fixed": True,
            "start": "2026-01-31T09:30:00.123456+01:00", "note": "Ünïcode \u2603 \"quoted\""}},
        {"type": "loan_calc", "value": "x", "fields": {"amount": "1.5"}, "occurredAt": ago(400)},
        {"type": "datainput", "value": "form", "contactFields": {"ContactFirstName": "Ann"}},
    ]  # fmt: skip
    assert all(r["status"] == 202 for r in tracker.log(logged, contact))
    assert tracker.log([{"type": "click", "value": "other"}], other)[0]["status"] == 202
    answer = client.get("/api/activities/export?format=ndjson", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    export = tmp_path / "activities.ndjson"
    export.write_bytes(answer.content)
    assert len(answer.content.splitlines()) == 6

    fresh = Hub(load_settings({"WAYPOST_DATABASE_URL": fresh_url}))
    try:
        fresh.types.create(msgspec.convert(TYPE, ActivityTypeCreate))
        channel = fresh.channels.create(ChannelCreate(name="Moved", kind="headless"))
        run = invoker(fresh_url)
        result = run("import", str(export), "--channel", str(channel.id), "--create-contacts")
        assert "stored" in result.output
        assert "Importing" in result.output
        before, after = stored(hub), stored(fresh)
        assert [[a[k] for k in SAME] for a in after] == [[a[k] for k in SAME] for a in before]
        assert msgspec.json.encode([[a[k] for k in SAME] for a in after]) == msgspec.json.encode(
            [[a[k] for k in SAME] for a in before]
        )
        assert {a["channel"] for a in after} == {str(channel.id)}
        assert len(rows(fresh, contacts)) == 2
        # Again: every activity is one it has (by its id), nothing is stored twice.
        again = run("import", str(export), "--channel", str(channel.id), "--json")
        summary = _json(again)
        assert (summary["stored"], summary["duplicates"]) == (0, 6)
        assert stored(fresh) == after
    finally:
        fresh.close()


def test_import_is_idempotent_by_id_keeps_occurred_at_and_rejects_with_source_import(
    invoke: Invoke, hub: Hub, tracker: Tracker, tmp_path: Path
) -> None:
    contact = tracker.new_contact()
    when = "2025-06-01T10:00:00Z"
    lines = [
        {"type": "click", "value": "a", "id": "c-1", "occurredAt": when, "contact": contact},
        {"type": "click", "value": "b", "id": "c-2", "contact": contact},
        {"type": "click", "value": "c", "contact": contact},
        {"type": "nope", "id": "c-3", "contact": contact},
        {"type": "click", "value": "d", "occurredAt": ago(-2), "contact": contact},
        {"type": "click", "value": "e", "contact": str(uuid.uuid4())},
    ]
    path = write_lines(tmp_path / "a.ndjson", lines)
    channel = str(tracker.channel.id)
    first = _json(invoke("import", str(path), "--channel", channel, "--json"))
    assert first == {
        "lines": 6, "stored": 3, "duplicates": 0, "erased": 0, "applied": 0,
        "rejected": {"activity_type_not_found": 1, "contact_not_found": 1, "invalid_field": 1},
        "contacts_created": 0, "without_id": 3,
    }  # fmt: skip
    second = _json(invoke("import", str(path), "--channel", channel, "--json"))
    # The two with ids are known; the one without is stored again.
    assert (second["stored"], second["duplicates"]) == (1, 2)
    kept = rows(hub, rejected_activities)
    assert {r.source for r in kept} == {"import"}
    assert len(kept) == 6
    [dated] = [r for r in rows(hub, activities) if r.value == "a"]
    assert dated.occurred_at.isoformat() == "2025-06-01T10:00:00+00:00"


def _json(result: Result) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return found


def count(hub: Hub, table: sa.Table) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"type": "click", "value": "a", "contact": "C"}\nnot json\n', "line 2: not JSON"),
        ('{"type": "click", "value": "a", "contact": "C"}\n[1, 2]\n', "line 2: not a JSON object"),
        ('\n\n{"type": "click", "value": "a"}\n', "line 3: no contact"),
        ('{"type": "click", "contact": "nope"}\n', "line 1: contact 'nope' is not a UUID"),
        ('{"type": "click", "contact": 42}\n', "line 1: contact must be a UUID string"),
        ('{"id": "x", "received_at": "2026-01-01T00:00:00Z", "contact": "C", "type": "click"}\n',
         "line 1: id (an exported activity keeps its id) 'x' is not a UUID"),
        ('{"type": "click", "contact": "C"}\n{"a": 1' + "\n", "line 2: not JSON"),
        ("\udcff\udcfe\n", "line 1: not JSON"),
        ('{"type": "click", "value": "\udcff", "contact": "C"}\n', "Invalid UTF-8"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_read_is_refused_naming_the_line_and_nothing_is_imported(
    invoke: Invoke, hub: Hub, tracker: Tracker, tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(content.replace("C", tracker.new_contact()).encode("utf-8", "surrogateescape"))
    result = invoke("import", str(path), "--channel", str(tracker.channel.id), code=1)
    assert says in result.output
    assert "nothing was imported" in result.output
    assert (count(hub, activities), count(hub, rejected_activities)) == (0, 0)


def test_many_bad_lines_are_counted_and_the_first_ones_named(
    invoke: Invoke, hub: Hub, tracker: Tracker, tmp_path: Path
) -> None:
    good = json.dumps({"type": "click", "value": "a", "contact": tracker.new_contact()})
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join([good] + ["{"] * 25) + "\n")
    result = invoke("import", str(path), "--channel", str(tracker.channel.id), code=1)
    assert "25 lines of the file cannot be imported" in result.output
    assert "line 11: not JSON" in result.output
    assert "line 12" not in result.output
    assert "and 15 more" in result.output
    assert count(hub, activities) == 0


def test_channels_and_formats_are_checked_first(
    invoke: Invoke, hub: Hub, tracker: Tracker, tmp_path: Path
) -> None:
    contact = tracker.new_contact()
    path = write_lines(tmp_path / "a.ndjson", [{"type": "click", "value": "a", "contact": contact}])
    assert "no channel: give one with --channel" in invoke("import", str(path), code=1).output
    assert (
        "No channel has the id"
        in invoke("import", str(path), "--channel", str(uuid.uuid4()), code=1).output
    )
    assert (
        "Invalid value for '--format'"
        in invoke("import", str(path), "--format", "csv", code=2).output
    )
    assert (
        "Invalid value for '--channel'"
        in invoke("import", str(path), "--channel", "nope", code=2).output
    )
    assert "does not exist" in invoke("import", str(tmp_path / "missing.ndjson"), code=2).output
    assert "needs --channel" in invoke("import", str(path), "--format", "segment", code=1).output
    unknown = write_lines(
        tmp_path / "b.ndjson",
        [{"type": "click", "value": "a", "contact": contact, "channel": str(uuid.uuid4())}],
    )
    assert "line 1: no channel has the id" in invoke("import", str(unknown), code=1).output
    own = write_lines(
        tmp_path / "c.ndjson",
        [{"type": "click", "value": "a", "contact": contact, "channel": str(tracker.channel.id)}],
    )
    assert _json(invoke("import", str(own), "--json"))["stored"] == 1
    assert count(hub, activities) == 1


def test_a_line_too_long_is_refused_without_reading_it_whole(
    invoke: Invoke, hub: Hub, tracker: Tracker, tmp_path: Path
) -> None:
    path = tmp_path / "long.ndjson"
    path.write_text('{"type": "click", "value": "' + "x" * 300_000 + '"}\n')
    result = invoke("import", str(path), "--channel", str(tracker.channel.id), code=1)
    assert "line 1: the line is longer than 65,536 bytes" in result.output


def test_segment_messages_go_through_the_segment_service(
    invoke: Invoke, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType],
    tmp_path: Path,
) -> None:  # fmt: skip
    make_type(name="Order completed", code_name="order_completed", aliases=["Order Completed"])
    lines = [
        {"type": "identify", "userId": "u-1", "traits": {"email": "u1@example.com"}},
        {"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "m-1",
         "timestamp": "2025-05-05T05:05:05Z"},
        {"type": "track", "userId": "u-1", "event": "Unknown Thing", "messageId": "m-2"},
        {"type": "track", "userId": "u-1"},
        {"type": "page", "anonymousId": "a-1", "properties": {"url": "https://bank.example/"},
         "messageId": "m-3"},
    ]  # fmt: skip
    path = write_lines(tmp_path / "segment.ndjson", lines)
    channel = str(tracker.channel.id)
    first = _json(
        invoke("import", str(path), "--format", "segment", "--channel", channel, "--json")
    )
    assert first == {
        "lines": 5, "stored": 2, "duplicates": 0, "erased": 0, "applied": 1,
        "rejected": {"activity_type_not_found": 1, "missing_field": 1},
        "contacts_created": 0, "without_id": 2,
    }  # fmt: skip
    again = _json(
        invoke("import", str(path), "--format", "segment", "--channel", channel, "--json")
    )
    assert (again["stored"], again["duplicates"]) == (0, 2)
    [order] = [r for r in rows(hub, activities) if r.client_id == "m-1"]
    assert order.occurred_at.isoformat() == "2025-05-05T05:05:05+00:00"
    assert {r.source for r in rows(hub, rejected_activities)} == {"import"}


def test_an_import_naming_an_erased_contact_stores_nothing_of_it(
    invoke: Invoke, hub: Hub, tracker: Tracker, tmp_path: Path
) -> None:
    from waypost.services.erasure import Actor

    erased = tracker.new_contact()
    data = {
        "type": "datainput",
        "value": "f",
        "contactFields": {"ContactEmail": "gone@example.com"},
    }
    assert tracker.log([data], erased)[0]["status"] == 202
    hub.erasure.erase(uuid.UUID(erased), Actor("key", None))
    before = (count(hub, activities), count(hub, rejected_activities), count(hub, contacts))
    lines = [
        {"type": "click", "value": "a", "contact": erased},
        {**data, "contact": str(uuid.uuid4())},
    ]
    path = write_lines(tmp_path / "a.ndjson", lines)
    channel = str(tracker.channel.id)
    summary = _json(
        invoke("import", str(path), "--channel", channel, "--create-contacts", "--json")
    )
    assert (summary["erased"], summary["stored"], summary["contacts_created"]) == (2, 0, 1)
    after = (count(hub, activities), count(hub, rejected_activities), count(hub, contacts))
    assert after == (before[0], before[1], before[2] + 1)
