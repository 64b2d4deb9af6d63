"""Statements run straight on the driver's connection, inside a SQLAlchemy transaction.

The writer runs a handful of fixed statements in every transaction it commits, many hundreds
of times a second. On SQLite, ``Connection.exec_driver_sql`` wraps each in about 20 µs of
Python (an execution context, events, a result object): about a seventh of the CPU of a
small transaction (docs/performance.md). These functions hand the statement to the sqlite3
connection itself and return plain tuples; on PostgreSQL they go through ``exec_driver_sql``
as before. Either way a failure is raised as SQLAlchemy raises it (IntegrityError for a
duplicate, OperationalError for a database that cannot be reached), so the callers and
:func:`waypost.store.engine.outage_guard` see the same errors.

The statements are in the driver's parameter style (:class:`waypost.store.codec.Codec`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, StatementError

Params = Sequence[object]


def _sqlite(conn: Connection) -> sqlite3.Connection | None:
    driver = conn.connection.driver_connection
    return driver if isinstance(driver, sqlite3.Connection) else None


def execute_many(conn: Connection, statement: str, rows: Sequence[Params]) -> None:
    """``statement`` once per row of ``rows``, in ``conn``'s transaction."""
    if not rows:
        return
    driver = _sqlite(conn)
    if driver is None:
        conn.exec_driver_sql(statement, list(rows))
        return
    try:
        driver.executemany(statement, rows)
    except sqlite3.Error as exc:
        raise _as_sqlalchemy(conn, statement, exc) from exc


def execute(conn: Connection, statement: str) -> None:
    """``statement``, without parameters, on ``conn`` (in its transaction, or the ``BEGIN``
    that starts it)."""
    driver = _sqlite(conn)
    if driver is None:
        conn.exec_driver_sql(statement)
        return
    try:
        driver.execute(statement)
    except sqlite3.Error as exc:
        raise _as_sqlalchemy(conn, statement, exc) from exc


def fetch_all(conn: Connection, statement: str, params: Params = ()) -> list[tuple[Any, ...]]:
    """The rows ``statement`` returns, as tuples, read in ``conn``'s transaction."""
    driver = _sqlite(conn)
    if driver is None:
        return [tuple(row) for row in conn.exec_driver_sql(statement, tuple(params))]
    try:
        return driver.execute(statement, params).fetchall()
    except sqlite3.Error as exc:
        raise _as_sqlalchemy(conn, statement, exc) from exc


def _as_sqlalchemy(conn: Connection, statement: str, exc: sqlite3.Error) -> StatementError:
    return DBAPIError.instance(statement, None, exc, sqlite3.Error, dialect=conn.dialect)
