"""The second SQLite reader (waypost/store/sqlite_reader.py and sqlite_worker.py): it
answers as the server's own connection does, reports a failed statement, and its process
ends with it, killed when the block around it fails."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import sqlalchemy as sa

from waypost.hub import Hub
from waypost.store.schema import activities, activity_types
from waypost.store.sqlite_reader import SecondReader, WorkerError, driver_statement, sqlite_file


def _path(hub: Hub) -> str:
    with hub.store.read() as conn:
        path = sqlite_file(conn.engine.url)
    if path is None:
        pytest.skip("a second reader reads SQLite files only")
    return path


def test_only_a_sqlite_file_has_a_second_reader(hub: Hub) -> None:
    with hub.store.read() as conn:
        path = sqlite_file(conn.engine.url)
        if conn.dialect.name == "sqlite":
            assert path is not None
            assert path.endswith("waypost.db")
        else:
            assert path is None
    memory = sa.create_engine("sqlite://")
    with memory.connect() as conn:
        assert sqlite_file(conn.engine.url) is None


def test_the_worker_answers_as_this_connection_does_and_ends(hub: Hub) -> None:
    path = _path(hub)
    query = sa.select(activity_types.c.id, activity_types.c.code_name).order_by(
        activity_types.c.code_name
    )
    with hub.store.read() as conn:
        sql, params = driver_statement(query, conn.dialect)
        here = [tuple(row) for row in conn.exec_driver_sql(sql, tuple(params))]
    assert here  # the built-in types
    with SecondReader(path) as reader:
        reader.start(sql, params)
        assert reader.rows() == here
        reader.start("SELECT ?, ?", [1, None])  # it keeps answering until closed
        assert reader.rows() == [(1, None)]
    assert reader.process.returncode == 0


def test_parameters_are_converted_as_sqlalchemy_converts_them(hub: Hub) -> None:
    with hub.store.read() as conn:
        if conn.dialect.name != "sqlite":
            pytest.skip("the driver's values of SQLite")
        ident = uuid.UUID("01a243c2-be59-73a2-a317-c8308ef80e29")
        at = dt.datetime(2026, 3, 5, 1, 2, 3, 4005, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        query = sa.select(activities.c.id).where(
            activities.c.contact_id == ident,
            activities.c.occurred_at >= at,
            activities.c.type_id.in_([ident, ident]),
        )
        sql, params = driver_statement(query, conn.dialect)
    assert sql.count("?") == len(params) == 4
    assert params == [ident.hex, "2026-03-05 00:02:03.004005", ident.hex, ident.hex]


def test_a_failed_statement_is_an_error_and_the_worker_goes_on(hub: Hub) -> None:
    path = _path(hub)
    with SecondReader(path) as reader:
        reader.start("SELECT * FROM no_such_table", [])
        with pytest.raises(WorkerError, match="no such table"):
            reader.rows()
        reader.start("SELECT 2", [])
        assert reader.rows() == [(2,)]
    assert reader.process.returncode == 0


def test_a_worker_that_cannot_open_its_file_fails_to_answer(tmp_path: object) -> None:
    with SecondReader("/nonexistent/waypost.db") as reader:
        reader.start("SELECT 1", [])
        with pytest.raises(WorkerError, match="ended without answering"):
            reader.rows()
    assert reader.process.returncode not in (None, 0)


def test_the_worker_is_killed_when_the_block_fails(hub: Hub) -> None:
    path = _path(hub)
    # A statement that would run for minutes.
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT count(*) FROM n WHERE i < 1000000000000"
    )
    started = time.monotonic()
    reader = SecondReader(path)

    def fail_while_it_reads() -> None:
        with reader:
            reader.start(endless, [])
            raise RuntimeError("the report failed")

    with pytest.raises(RuntimeError, match="the report failed"):
        fail_while_it_reads()
    assert reader.process.returncode is not None
    assert reader.process.returncode < 0  # killed by a signal
    assert time.monotonic() - started < 5
