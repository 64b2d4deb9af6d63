"""Statements run straight on the driver's connection: the same rows, and the same errors, as
SQLAlchemy's ``exec_driver_sql`` gives, on both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, ProgrammingError

from waypost.store import StorageUnavailable, Store
from waypost.store.codec import Codec
from waypost.store.driver import execute, execute_many, fetch_all
from waypost.store.schema import activity_types

DAY = dt.date(2026, 11, 2)


@pytest.fixture
def codec(store: Store) -> Codec:
    return Codec(store.dialect)


def _insert(c: Codec) -> str:
    return (
        "INSERT INTO activity_daily_counts (type_id, day, count, contacts) "
        f"VALUES ({c.placeholders(4)})"
    )


def _select(c: Codec) -> str:
    return (
        "SELECT type_id, day, count, contacts FROM activity_daily_counts "
        f"WHERE count >= {c.mark} ORDER BY count"
    )


def _type_ids(store: Store, c: Codec) -> list[object]:
    with store.read() as conn:
        ids = conn.execute(sa.select(activity_types.c.id).order_by(activity_types.c.id)).scalars()
        return [c.known(i) for i in ids]


def test_rows_written_and_read_as_sqlalchemy_reads_them(store: Store, codec: Codec) -> None:
    first, second = _type_ids(store, codec)[:2]
    with store.write() as conn:
        execute_many(
            conn,
            _insert(codec),
            [(first, codec.date(DAY), 3, 1), (second, codec.date(DAY), 5, 2)],
        )
        # Nothing to write is no statement at all.
        execute_many(conn, _insert(codec), [])
        read = fetch_all(conn, _select(codec), (4,))
        through_sqlalchemy = [tuple(r) for r in conn.exec_driver_sql(_select(codec), (4,))]
    assert read == through_sqlalchemy == [(second, codec.date(DAY), 5, 2)]
    assert all(type(row) is tuple for row in read)
    with store.read() as conn:
        assert fetch_all(conn, _select(codec), (0,)) == [
            (first, codec.date(DAY), 3, 1),
            (second, codec.date(DAY), 5, 2),
        ]


def _error(run: Callable[[Connection], object], store: Store) -> BaseException:
    with pytest.raises(Exception) as caught, store.write() as conn:  # noqa: PT011
        run(conn)
    return caught.value


def test_a_duplicate_is_the_integrity_error_sqlalchemy_raises(store: Store, codec: Codec) -> None:
    (first,) = _type_ids(store, codec)[:1]
    row = (first, codec.date(DAY), 1, 1)
    with store.write() as conn:
        execute_many(conn, _insert(codec), [row])
    ours = _error(lambda conn: execute_many(conn, _insert(codec), [row]), store)
    theirs = _error(lambda conn: conn.exec_driver_sql(_insert(codec), [row]), store)
    assert isinstance(ours, IntegrityError)
    assert type(ours) is type(theirs)
    # The transaction rolled back: the row is there once.
    with store.read() as conn:
        assert len(fetch_all(conn, _select(codec), (0,))) == 1


def test_a_failing_statement_raises_what_sqlalchemy_raises(store: Store, codec: Codec) -> None:
    missing = f"SELECT x FROM no_such_table WHERE x = {codec.mark}"
    ours = _error(lambda conn: fetch_all(conn, missing, (1,)), store)
    theirs = _error(lambda conn: conn.exec_driver_sql(missing, (1,)), store)
    # SQLite calls a missing table an operational error (which the store turns into
    # StorageUnavailable); PostgreSQL a programming error.
    assert type(ours) is type(theirs)
    assert isinstance(ours, StorageUnavailable | ProgrammingError)


def test_a_statement_without_parameters_fails_as_sqlalchemy_fails(store: Store) -> None:
    ours = _error(lambda conn: execute(conn, "DELETE FROM no_such_table"), store)
    theirs = _error(lambda conn: conn.exec_driver_sql("DELETE FROM no_such_table"), store)
    assert type(ours) is type(theirs)


def test_a_begin_that_cannot_take_the_write_lock_is_an_outage(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("the BEGIN of a write transaction is SQLite's (PostgreSQL: SQLAlchemy's)")
    held = store.writing_connection()
    raw = held.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA busy_timeout=0")
    other = store.engine.raw_connection()
    try:
        other.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        # The writer's BEGIN IMMEDIATE, on the driver, fails as SQLAlchemy's would have.
        with pytest.raises(StorageUnavailable, match="locked"), store.write(on=held):
            pass
    finally:
        other.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]
        other.close()
        held.close()
    with store.write() as conn:
        execute(conn, "DELETE FROM activity_daily_counts")
