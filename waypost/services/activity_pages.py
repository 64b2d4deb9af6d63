"""The pages of an activity export formatted by the database, read by several readers at once
and given in the log's order (docs/data-lifecycle.md#exports, docs/performance.md).

The bounds of the pages are found first, one after the other, on the log's index (the key of
every ``page``-th activity), so that the pages need not wait for each other; each page is
then read by a reader of its own and the pages are given in order, at most ``PAGES_AHEAD``
read ahead of the one being sent (memory holds those, never the export). Every statement is
compiled once per export (:class:`~waypost.store.prepared.Compiled`): a page only binds the
keys of its bounds, as the database gave them.

- On a SQLite file, ``EXPORT_PROCESSES["sqlite"]`` readers take the pages, each the next
  one when it is free: one in this process and the others in worker processes
  (:mod:`waypost.store.sqlite_pages`), because a second thread would get no second CPU. A
  page is read in the index's order, oldest first, and comes back as ONE row: the page's
  lines (or each of Parquet's columns) joined by NUL in SQL, split here and turned round to
  the log's newest-first order. A line with a NUL of its own (CSV keeps text as it is)
  splits into too many pieces: that page is read again row by row, newest first.
- Elsewhere (PostgreSQL, an in-memory SQLite), ``EXPORT_READERS`` threads read the pages on
  connections of the store, a row per activity.
"""

from __future__ import annotations

import functools
import importlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlalchemy as sa

from waypost.services.activities import before_in_log
from waypost.services.activity_lines import (
    ARROW_NULLABLE,
    HEX_IDS,
    arrow_columns,
    csv_line,
    csv_nul,
    ndjson_line,
)
from waypost.services.export_formats import (
    Column,
    ColumnKind,
    ExportFormat,
    arrow_schema,
    pyarrow_modules,
)
from waypost.store import Store
from waypost.store.prepared import Compiled
from waypost.store.schema import activities, activity_types
from waypost.store.sqlite_pages import PageProcesses, Reader, sqlite_file

# Readers at once: worker processes and this one's on a SQLite file, threads elsewhere (the
# psycopg driver lets other threads run while a query runs; see docs/performance.md).
EXPORT_PROCESSES = {"sqlite": 2}
EXPORT_READERS = 1
PAGES_AHEAD = 4

# A page's bounds as the database gave them: (occurred_at, id).
Key = tuple[Any, Any]
Bounds = tuple[Key | None, Key | None]
T = TypeVar("T")
R = TypeVar("R")

_NUL = b"\x00"
# Where a UUID's 32 hex digits are cut to put the dashes in.
_DASHED = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


class PageStatements:
    """The statements of one export of the activities ``stmt`` selects in ``fmt``, compiled
    for the store's dialect once each (per kind of bound: the first page has no newer bound,
    the last no oldest)."""

    def __init__(self, store: Store, stmt: sa.Select[Any], fmt: ExportFormat, page: int) -> None:
        self.dialect = store.engine.dialect
        self.fmt = fmt
        a = activities
        code = (
            sa.select(activity_types.c.code_name)
            .where(activity_types.c.id == a.c.type_id)
            .scalar_subquery()
        )
        self.code = code
        name = self.dialect.name
        if fmt == "parquet":
            self.selected = arrow_columns(name, a.c, code)
        else:
            self.selected = [(ndjson_line if fmt == "ndjson" else csv_line)(name, a.c, code)]
        self.stmt = stmt
        self.keys = stmt.with_only_columns(a.c.occurred_at, a.c.id).limit(1).offset(page - 1)
        self._compiled: dict[tuple[str, bool, bool], Compiled] = {}
        self._lock = threading.Lock()

    def _bounded(self, stmt: sa.Select[Any], newer: bool, oldest: bool) -> sa.Select[Any]:
        if newer:
            stmt = stmt.where(before_in_log(sa.bindparam("newer_at"), sa.bindparam("newer_id")))
        if oldest:
            stmt = stmt.where(_not_before(sa.bindparam("oldest_at"), sa.bindparam("oldest_id")))
        return stmt

    def _statement(self, kind: str, newer: bool, oldest: bool) -> Compiled:
        found = self._compiled.get((kind, newer, oldest))
        if found is not None:
            return found
        with self._lock:  # the readers' threads ask at once for the first pages
            found = self._compiled.get((kind, newer, oldest))
            if found is not None:
                return found
            if kind == "bound":
                stmt = self._bounded(self.keys, newer, False)
            elif kind == "rows":
                stmt = self._bounded(self.stmt.with_only_columns(*self.selected), newer, oldest)
            else:
                stmt = self._joined(newer, oldest)
            given = ("newer_at", "newer_id", "oldest_at", "oldest_id")
            found = self._compiled[(kind, newer, oldest)] = Compiled(stmt, self.dialect, given)
            return found

    def _joined(self, newer: bool, oldest: bool) -> sa.Select[Any]:
        """The page as one row (SQLite): its row count, then each selected column's values in
        the index's order, joined by NUL (a nullable one's values with a ``+`` before them,
        NULL as nothing: group_concat would leave NULL out)."""
        a = activities
        columns: list[sa.ColumnElement[Any]] = list(self.selected)
        if self.fmt == "parquet":
            selected = arrow_columns(self.dialect.name, a.c, self.code, hex_ids=True)
            columns = [
                sa.func.coalesce(sa.literal("+").op("||")(c), "") if nullable else c
                for c, nullable in zip(selected, ARROW_NULLABLE, strict=True)
            ]
        elif self.fmt == "csv":
            columns = [csv_line(self.dialect.name, a.c, self.code, nul_free=True)]
        labelled = [c.label(f"c{i}") for i, c in enumerate(columns)]
        if self.fmt == "csv":
            labelled.append(csv_nul(a.c).label("nul"))
        inner = (
            self._bounded(self.stmt.with_only_columns(*labelled), newer, oldest)
            .order_by(None)
            .order_by(a.c.occurred_at, a.c.id)
            .subquery()
        )
        nul = sa.func.char(0)
        joined = [sa.func.group_concat(inner.c[f"c{i}"], nul) for i in range(len(columns))]
        if self.fmt == "csv":
            joined.append(sa.func.max(inner.c.nul))
        return sa.select(sa.func.count(), *joined)

    def bound(self, conn: sa.Connection, newer: Key | None) -> Key | None:
        """The key of the page's oldest activity, on the index, without reading rows."""
        compiled = self._statement("bound", newer is not None, False)
        found = compiled.execute(conn, **_given(newer, None)).first()
        return None if found is None else (found[0], found[1])

    def rows(self, bounds: Bounds) -> tuple[str, Any]:
        """The SQL and parameters of the page's rows, newest first."""
        newer, oldest = bounds
        compiled = self._statement("rows", newer is not None, oldest is not None)
        return compiled.sql, compiled.params(**_given(newer, oldest))

    def joined(self, bounds: Bounds) -> tuple[str, Any]:
        """The SQL and parameters of the page as one row (SQLite)."""
        newer, oldest = bounds
        compiled = self._statement("joined", newer is not None, oldest is not None)
        return compiled.sql, compiled.params(**_given(newer, oldest))


def _given(newer: Key | None, oldest: Key | None) -> dict[str, Any]:
    given = {}
    if newer is not None:
        given["newer_at"], given["newer_id"] = newer
    if oldest is not None:
        given["oldest_at"], given["oldest_id"] = oldest
    return given


def formatted_pages(
    store: Store, stmt: sa.Select[Any], fmt: ExportFormat, columns: Sequence[Column], page: int
) -> Iterator[tuple[int, Any]]:
    """The pages of the activities ``stmt`` selects, formatted by the database, in the log's
    order: (rows, bytes) for NDJSON and CSV, (rows, an Arrow record batch of ``columns``) for
    Parquet. The worker processes, if any, start with the first page and end with the
    generator."""
    statements = PageStatements(store, stmt, fmt, page)
    finish = _row_finisher(fmt, columns)

    def bounds() -> Iterator[Bounds]:
        newer: Key | None = None
        while True:
            with store.read() as conn:
                oldest = statements.bound(conn, newer)
            yield newer, oldest
            if oldest is None:
                return
            newer = oldest

    path = sqlite_file(store.engine.url)
    if path is None:

        def read(page_bounds: Bounds) -> tuple[int, Any]:
            sql, params = statements.rows(page_bounds)
            with store.read() as conn:
                rows = conn.exec_driver_sql(sql, params).all()
            return len(rows), finish(rows)

        tasks = (functools.partial(read, b) for b in bounds())
        yield from in_order(tasks, EXPORT_READERS, PAGES_AHEAD)
        return

    split = _joined_finisher(fmt, columns)

    def read_joined(page_bounds: Bounds, reader: Reader) -> tuple[int, Any]:
        sql, params = statements.joined(page_bounds)
        found = reader(sql, params)[0]
        count = found[0]
        done = split(count, found[1:])
        if done is None:  # a value held a NUL
            sql, params = statements.rows(page_bounds)
            return count, finish(reader(sql, params))
        return count, done

    with PageProcesses(path, EXPORT_PROCESSES["sqlite"], here=1) as processes:
        joined_tasks = (functools.partial(read_joined, b) for b in bounds())
        yield from in_turn(joined_tasks, processes.readers, PAGES_AHEAD)


def in_order(tasks: Iterator[Callable[[], T]], threads: int, ahead: int) -> Iterator[T]:
    """The results of ``tasks``, run by ``threads`` threads, in the tasks' order; at most
    ``ahead`` tasks are taken before their results are given (:func:`in_turn` with readers
    that are only threads)."""
    runs = (functools.partial(_run, task) for task in tasks)
    return in_turn(runs, [None] * threads, ahead)


def _run(task: Callable[[], T], _reader: object) -> T:
    return task()


def in_turn(tasks: Iterator[Callable[[R], T]], readers: Sequence[R], ahead: int) -> Iterator[T]:
    """The results of ``tasks``, in the tasks' order, each run with whichever reader is free
    first (a thread each, so that a reader serves one task at a time: the busier process
    takes fewer pages); at most ``ahead`` tasks are taken before their results are given.
    Once it ends, given up on or not, no task runs."""
    waiting: queue.SimpleQueue[tuple[Future[T], Callable[[R], T]] | None] = queue.SimpleQueue()

    def serve(reader: R) -> None:
        while (item := waiting.get()) is not None:
            future, task = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task(reader))
                except BaseException as exc:  # given to the one waiting for it
                    future.set_exception(exc)

    threads = [
        threading.Thread(target=serve, args=(r,), name="waypost-export", daemon=True)
        for r in readers
    ]
    for thread in threads:
        thread.start()
    pending: deque[Future[T]] = deque()
    try:
        for task in tasks:
            future: Future[T] = Future()
            pending.append(future)
            waiting.put((future, task))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        for _ in threads:
            waiting.put(None)
        for thread in threads:
            thread.join()


def _not_before(stamp: Any, ident: Any) -> sa.ColumnElement[bool]:
    """The activity at ``stamp`` with id ``ident`` and those newer in the log's order; the
    first term bounds the index range (as in :func:`before_in_log`)."""
    a = activities
    return sa.and_(a.c.occurred_at >= stamp, sa.or_(a.c.occurred_at > stamp, a.c.id >= ident))


def _row_finisher(fmt: ExportFormat, columns: Sequence[Column]) -> Callable[[Sequence[Any]], Any]:
    """What makes a page's rows (newest first) into what is sent."""
    if fmt == "parquet":
        return _arrow_batch(columns)
    return _ndjson_bytes if fmt == "ndjson" else _csv_bytes


def _text(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _ndjson_bytes(rows: Sequence[Any]) -> bytes:
    if not rows:
        return b""
    lines = [_text(row[0]) for row in rows]
    lines.append(b"")
    return b"\n".join(lines)


def _csv_bytes(rows: Sequence[Any]) -> bytes:
    return b"".join([_text(row[0]) for row in rows])


def _arrow_batch(columns: Sequence[Column]) -> Callable[[Sequence[Any]], Any]:
    """The function from rows of :func:`arrow_columns` to an Arrow record batch of
    ``columns``."""
    pa, _ = pyarrow_modules()
    schema = arrow_schema(columns)
    moment = pa.timestamp("us")

    def convert(kind: ColumnKind, values: Sequence[Any], target: Any) -> Any:
        if kind == "datetime":  # UTC text
            return pa.array(values, pa.string()).cast(moment).cast(target)
        if kind == "boolean":  # 0 and 1
            return pa.array(values, pa.int8()).cast(target)
        return pa.array(values, target)

    def batch(rows: Sequence[Any]) -> Any:
        values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        return pa.RecordBatch.from_arrays(
            [
                convert(c.kind, v, field.type)
                for c, v, field in zip(columns, values, schema, strict=True)
            ],
            schema=schema,
        )

    return batch


def _joined_finisher(
    fmt: ExportFormat, columns: Sequence[Column]
) -> Callable[[int, Sequence[Any]], Any]:
    """What makes a page's joined row (its count, then each column's values joined by NUL,
    oldest first) into what is sent; None when a value held a NUL."""
    if fmt == "parquet":
        return _joined_arrow(columns)

    def lines(count: int, joined: Sequence[Any]) -> Any:
        if not count:
            return b""
        if fmt == "csv" and joined[1]:  # a text held a NUL, which printf left out
            return None
        parts = joined[0].split(_NUL)
        if len(parts) != count:
            return None
        parts.reverse()
        if fmt == "csv":
            return b"".join(parts)
        parts.append(b"")
        return b"\n".join(parts)

    return lines


def _joined_arrow(columns: Sequence[Column]) -> Callable[[int, Sequence[Any]], Any]:
    pa, _ = pyarrow_modules()
    pc = importlib.import_module("pyarrow.compute")
    schema = arrow_schema(columns)
    moment = pa.timestamp("us")
    raw, text = pa.binary(), pa.string()
    none = pa.scalar(None, text)
    empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)

    def convert(kind: ColumnKind, values: Any, target: Any) -> Any:
        if kind == "datetime":  # UTC text
            return values.cast(moment).cast(target)
        if kind == "boolean":  # 0 and 1
            return values.cast(pa.int8()).cast(target)
        return values.cast(target)

    def batch(count: int, joined: Sequence[Any]) -> Any:
        if not count:
            return empty
        arrays = []
        for c, blob, nullable, field in zip(columns, joined, ARROW_NULLABLE, schema, strict=True):
            if c.name in HEX_IDS:  # 32 hex digits, cut as bytes (twice as fast as text)
                values = pc.split_pattern(pa.array([blob], raw), b"\x00").flatten()
                values = pc.binary_join_element_wise(
                    *(pc.binary_slice(values, start, stop) for start, stop in _DASHED), b"-"
                ).cast(text)
            else:
                values = pc.split_pattern(pa.array([blob], text), "\x00").flatten()
            if len(values) != count:
                return None
            if nullable:  # "" is NULL, "+..." a value
                values = pc.if_else(
                    pc.equal(pc.binary_length(values), 0),
                    none,
                    pc.utf8_slice_codeunits(values, 1),
                )
            arrays.append(convert(c.kind, values, field.type))
        newest_first = pa.array(range(count - 1, -1, -1), pa.int32())
        return pa.RecordBatch.from_arrays(arrays, schema=schema).take(newest_first)

    return batch
