"""``waypost purge`` and ``waypost export`` through click's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from waypost.cli import main
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.store.schema import activities

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import Groups, ago
else:
    from conftest import Tracker
    from group_support import Groups, ago

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": database_url})

    def run(*args: str, code: int | None = 0) -> Result:
        """Run ``waypost args``; ``code`` None: any failure (1 or 2)."""
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if code is None:
            assert result.exit_code in (1, 2), (args, result.output)
        else:
            assert result.exit_code == code, (args, result.output)
        return result

    return run


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the exports go (the test's SQLite database is in tmp_path)."""
    made = tmp_path / "exports"
    made.mkdir()
    return made


def stored(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(activities)).scalar_one())


def test_purge_dry_run_prints_what_expired_and_deletes_nothing(
    invoke: Invoke, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Quote", retention_days=7)
    tracker.log([{"type": kind.code_name, "occurredAt": ago(d)} for d in (1, 8, 9)])
    result = invoke("purge", "--dry-run")
    assert "Expired now:" in result.stdout
    line = next(ln for ln in result.stdout.splitlines() if kind.code_name in ln)
    assert line.split()[-3:] == ["7", "days", "2"]
    assert "Dry run: nothing was deleted." in result.stdout
    assert stored(hub) == 3
    assert hub.retention.last_run() is None


def test_purge_deletes_and_prints_what_it_deleted(
    invoke: Invoke, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Quote", retention_days=365)
    tracker.log([{"type": kind.code_name, "occurredAt": ago(d)} for d in (1, 400, 500)])
    result = invoke("purge")
    deleted = result.stdout.split("Deleted (finished")[1]
    line = next(ln for ln in deleted.splitlines() if kind.code_name in ln)
    assert line.split()[-3:] == ["1", "year", "2"]
    assert stored(hub) == 1
    run = hub.retention.last_run()
    assert run is not None
    assert (run.trigger, run.activities) == ("command", {kind.code_name: 2})


def test_purge_while_another_purge_runs_is_a_clean_error(invoke: Invoke, hub: Hub) -> None:
    other = hub.retention
    other.lease.owner = "elsewhere:1"
    assert other.lease.acquire()
    result = invoke("purge", code=1)
    assert "A purge is running already (elsewhere:1)" in result.output


def test_export_activities_to_a_file_with_filters(
    invoke: Invoke,
    client: TestClient,
    admin_headers: dict[str, str],
    tracker: Tracker,
    make_type: Callable[..., ActivityType],
    folder: Path,
) -> None:
    kind = make_type(name="Quote", fields=[{"name": "amount", "type": "integer"}])
    tracker.log([{"type": kind.code_name, "fields": {"amount": n}} for n in (5, 50, 500)])
    tracker.log([{"type": "click", "value": "cta"}])
    out = folder / "quotes.ndjson"
    result = invoke(
        "export", "activities", "--type", kind.code_name, "--field", "amount.gte=50",
        "--output", str(out),
    )  # fmt: skip
    assert "Wrote 2 to" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    api = client.get(
        "/api/activities",
        params={"type": kind.code_name, "field.amount.gte": "50"},
        headers=admin_headers,
    ).json()["data"]
    assert lines == api
    csv_out = folder / "all.csv"
    invoke("export", "activities", "--format", "csv", "-o", str(csv_out))
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text(), newline="")))
    assert len(rows) == 4
    parquet_out = folder / "all.parquet"
    invoke("export", "activities", "--format", "parquet", "-o", str(parquet_out))
    assert pq.read_table(parquet_out).num_rows == 4
    assert sorted(p.name for p in folder.iterdir()) == ["all.csv", "all.parquet", "quotes.ndjson"]


def test_export_contacts_and_group_members(
    invoke: Invoke,
    client: TestClient,
    admin_headers: dict[str, str],
    tracker: Tracker,
    folder: Path,
) -> None:
    contact = tracker.new_contact()
    tracker.log([{"type": "click", "value": "cta"}], contact)
    invoke("export", "contacts", "-o", str(folder / "contacts.ndjson"))
    found = [json.loads(line) for line in (folder / "contacts.ndjson").read_text().splitlines()]
    assert [c["id"] for c in found] == [contact]
    group = Groups(client, admin_headers).create({"activity": {"type": "click"}})
    out = folder / "members.csv"
    invoke("export", "group-members", group["id"], "--format", "csv", "-o", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert [r["contact"] for r in rows] == [contact]


def test_export_to_standard_output(invoke: Invoke, tracker: Tracker) -> None:
    tracker.log([{"type": "click", "value": "cta"}])
    result = invoke("export", "activities", "-o", "-")
    assert json.loads(result.stdout)["type"] == "click"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("activities", "--type", "nope"), "No activity type has code name 'nope'. (type)"),
        (("activities", "--since", "yesterday"), "(--since)"),
        (("activities", "--field", "amount=1"), "Field filters need the activity type"),
        (("activities", "--field", "amount"), "is not NAME=VALUE"),
        (("group-members", "01a2083e-2812-737d-beae-7a028f831437"), "No group"),
        (("activities", "--format", "xml"), "'xml' is not one of"),
    ],
)
def test_export_errors_are_clean_and_leave_no_file(
    invoke: Invoke, folder: Path, args: tuple[str, ...], message: str
) -> None:
    out = folder / "out.ndjson"
    result = invoke("export", *args, "-o", str(out), code=2 if "--format" in args else None)
    assert message in result.output
    assert list(folder.iterdir()) == []


def test_parquet_without_pyarrow_is_a_clear_cli_error(
    invoke: Invoke, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = invoke("export", "contacts", "--format", "parquet", "-o", str(folder / "x"), code=1)
    assert "pip install '.[parquet]'" in result.output
    assert list(folder.iterdir()) == []
