"""The pages of an activity export (waypost/services/activity_pages.py) and their readers on a
SQLite file (waypost/store/sqlite_pages.py, sqlite_worker.py): pages in order, read
ahead only so far, a worker process that starts with the export and ends with it, whether
it finished or was given up on, on SQLite and PostgreSQL (which has no worker)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from waypost.hub import Hub
from waypost.services import exports
from waypost.services.activity_pages import in_order, in_turn
from waypost.services.exports import ActivityExportQuery
from waypost.store.schema import activity_types
from waypost.store.sqlite_pages import PageProcesses, sqlite_file

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import ago
    from tests.server_support import ServedWaypost
else:
    from conftest import Tracker
    from group_support import ago
    from server_support import ServedWaypost


def page_workers() -> list[int]:
    """The worker processes this process has started and that still run."""
    return page_workers_of(os.getpid())


@pytest.fixture
def many(hub: Hub, tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> int:
    """Twelve activities, in pages of two."""
    monkeypatch.setattr(exports, "ACTIVITY_PAGE", 2)
    contact = tracker.new_contact()
    results = tracker.log(
        [{"type": "click", "value": f"click {n}", "occurredAt": ago(12 - n)} for n in range(12)],
        contact,
    )
    assert all(r["status"] == 202 for r in results), results
    return 12


def workers_expected(hub: Hub) -> int:
    """A worker process while an export runs on a SQLite file; none on PostgreSQL."""
    return 1 if hub.store.dialect == "sqlite" else 0


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_the_worker_process_ends_with_a_finished_export(hub: Hub, many: int, fmt: str) -> None:
    assert page_workers() == []
    export = hub.exports.activities_export(ActivityExportQuery(format=fmt))  # type: ignore[arg-type]
    assert page_workers() == []  # nothing started before the first byte
    assert export.formatted is not None
    pages = export.formatted()
    rows, _ = next(pages)
    assert len(page_workers()) == workers_expected(hub)
    assert rows + sum(n for n, _ in pages) == many
    assert page_workers() == []
    body = b"".join(export.chunks())
    assert export.rows == many
    assert page_workers() == []
    if fmt == "ndjson":
        values = [json.loads(line)["value"] for line in body.splitlines()]
        assert values == [f"click {n}" for n in reversed(range(12))]


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
@pytest.mark.parametrize("give_up", ["close", "drop"])
def test_the_worker_process_ends_with_an_abandoned_export(
    hub: Hub, many: int, fmt: str, give_up: str
) -> None:
    export = hub.exports.activities_export(ActivityExportQuery(format=fmt))  # type: ignore[arg-type]
    chunks: Any
    if fmt == "ndjson":
        chunks = export.chunks()  # a page a chunk
    else:
        assert export.formatted is not None
        chunks = export.formatted()
    next(chunks)
    assert len(page_workers()) == workers_expected(hub)
    if give_up == "close":
        chunks.close()  # what a server does with a download cut short
    else:
        del chunks, export  # or it lets go of it
    deadline = time.monotonic() + 10
    while page_workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert page_workers() == []


def test_no_worker_for_a_database_that_is_not_a_file(tmp_path: Path) -> None:
    assert sqlite_file(make_url(f"sqlite:///{tmp_path / 'w.db'}")) == str(tmp_path / "w.db")
    assert sqlite_file(make_url("sqlite://")) is None
    assert sqlite_file(make_url("sqlite:///:memory:")) is None
    assert sqlite_file(make_url("sqlite:///file:x?mode=memory&uri=true")) is None
    assert sqlite_file(make_url("postgresql+psycopg://localhost/waypost")) is None


def test_both_readers_read_pages_alike_and_errors_come_back(tmp_path: Path) -> None:
    path = str(tmp_path / "pages.db")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (n INTEGER, s TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(n, f"é{n}\x00") for n in range(5)])
    with PageProcesses(path, total=2, here=1) as processes:
        assert len(processes.pids) == 1
        here, worker = processes.readers
        sql = "SELECT n, s, NULL FROM t WHERE n >= ? ORDER BY n"
        assert (
            here(sql, [2])
            == worker(sql, [2])
            == [(n, f"é{n}\x00".encode(), None) for n in (2, 3, 4)]
        )
        with pytest.raises(Exception, match="no such table"):
            worker("SELECT * FROM missing", [])
        assert worker("SELECT count(*) FROM t", []) == [(5,)]  # still serving
        # Read-only: the worker cannot write.
        with pytest.raises(Exception, match="readonly"):
            worker("INSERT INTO t VALUES (9, 'x')", [])
        assert page_workers() == processes.pids
    assert page_workers() == []


def test_in_order_gives_results_in_the_tasks_order_and_reads_ahead_at_most_so_far() -> None:
    taken: list[int] = []

    def tasks() -> Iterator[Callable[[], int]]:
        for n in range(50):
            taken.append(n)
            yield functools.partial(pow, n, 2)

    given = []
    for result in in_order(tasks(), threads=3, ahead=4):
        given.append(result)
        assert len(taken) <= len(given) + 4
    assert given == [n * n for n in range(50)]


def test_in_turn_gives_each_reader_one_task_at_a_time_and_the_results_in_order() -> None:
    taken: list[int] = []
    busy: dict[str, int] = {"a": 0, "b": 0}
    lock = threading.Lock()

    def task(n: int, reader: str) -> tuple[int, str]:
        with lock:
            busy[reader] += 1
            assert busy[reader] == 1, "a reader serves one task at a time"
        time.sleep(0.001 * (n % 3))
        with lock:
            busy[reader] -= 1
        return n, reader

    def tasks() -> Iterator[Callable[[str], tuple[int, str]]]:
        for n in range(30):
            taken.append(n)
            yield functools.partial(task, n)

    given = []
    for result in in_turn(tasks(), ["a", "b"], ahead=4):
        given.append(result)
        assert len(taken) <= len(given) + 4
    assert [n for n, _ in given] == list(range(30))
    assert {reader for _, reader in given} == {"a", "b"}


def page_workers_of(pid: int) -> list[int]:
    """The page workers process ``pid`` has started and that still run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z" and b"sqlite_worker.py" in command:
            found.append(int(entry.name))
    return found


def test_a_download_cut_short_ends_the_servers_worker(
    hub: Hub, make_channel: Callable[..., Any], admin_headers: dict[str, str], tmp_path: Path
) -> None:
    """Through a real server: the client goes after the first bytes of a long export."""
    if hub.store.dialect != "sqlite":
        pytest.skip("a worker process reads SQLite files only")
    channel = make_channel().id
    contact = hub.contacts.create_anonymous().contact
    database = hub.store.engine.url.database
    assert database is not None
    with hub.store.read() as conn:
        click = conn.execute(
            sa.select(activity_types.c.id).where(activity_types.c.code_name == "click")
        ).scalar_one()
    start = dt.datetime(2026, 1, 1)
    with sqlite3.connect(database) as raw:
        raw.executemany(
            "INSERT INTO activities (id, type_id, contact_id, channel_id, title, value, "
            "occurred_at, received_at) VALUES (?, ?, ?, ?, 'Clicked', 'cta', ?, ?)",
            (
                (uuid.UUID(int=n + 1).hex, click.hex, contact.hex, channel.hex, when, when)
                for n in range(100_000)
                for when in [str(start + dt.timedelta(seconds=n))]
            ),
        )
    hub.close()
    with ServedWaypost(tmp_path, f"sqlite:///{database}") as server:
        server.start()
        assert server.process is not None
        pid = server.process.pid
        url = f"{server.url}/api/activities/export"
        with httpx.stream("GET", url, headers=admin_headers, timeout=30) as answer:
            assert answer.status_code == 200
            next(answer.iter_bytes())
            assert len(page_workers_of(pid)) == 1
        # The client has gone: the server gives the export up, and its worker ends.
        deadline = time.monotonic() + 20
        while page_workers_of(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page_workers_of(pid) == []
        # And a finished download leaves none either.
        answer2 = httpx.get(url, headers=admin_headers, timeout=60)
        assert answer2.status_code == 200
        assert answer2.content.count(b"\n") == 100_000
        assert page_workers_of(pid) == []
