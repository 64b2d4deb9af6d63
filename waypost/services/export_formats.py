"""The file formats of exports: NDJSON, CSV and Parquet, written page by page.

An export hands its rows over in pages (lists of msgspec Structs, as the admin API shows
them); each format turns a page into bytes at once, so memory holds one page, never the whole
export (for Parquet: one row group, ``ROW_GROUP`` rows, as Arrow columns).

- NDJSON: one item a line, exactly as the API's JSON shows it.
- CSV: a header, then one line per item (RFC 4180 quoting); a JSON value (an activity's
  fields, a contact's attributes) is its JSON text in one cell, booleans are ``true`` and
  ``false``, times are ISO 8601 in UTC, nothing is empty text.
- Parquet: one typed column per column (text, 64-bit integers, booleans, timestamps in UTC
  with microseconds, dates; decimals as their exact text), in row groups of ``ROW_GROUP``
  rows, with pyarrow, an optional dependency (the ``parquet`` extra). Only the columns whose
  values repeat are dictionary-encoded (ids and times would fill a dictionary only for Arrow
  to give it up). Arrow's memory comes from jemalloc, told to give freed
  memory back at once, so that a long export's RSS stays flat.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import msgspec

from waypost.errors import ApiError

ExportFormat = Literal["ndjson", "csv", "parquet"]
ColumnKind = Literal["text", "integer", "boolean", "datetime", "date", "json"]

MEDIA_TYPES: dict[str, str] = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
ROW_GROUP = 32_768

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Column:
    """One column of a CSV or Parquet export: its header, its kind, and how to read it from an
    item (``None`` for no value; a datetime, a date, an int, a bool, a UUID, a str, or for
    ``json`` any JSON value)."""

    name: str
    kind: ColumnKind
    get: Callable[[Any], Any]
    # The item's attribute the column reads, when it reads one as it is.
    attribute: str | None = None
    # Whether values repeat (Parquet's dictionary encoding is for such columns only).
    repeats: bool = True


def attribute(
    name: str, kind: ColumnKind, header: str | None = None, *, repeats: bool = True
) -> Column:
    """The column of an item's attribute ``name``."""

    return Column(header or name, kind, operator.attrgetter(name), name, repeats)


def parquet_unavailable() -> ApiError:
    return ApiError(
        400,
        "parquet_unavailable",
        "Parquet exports need pyarrow on the server: install Waypost's parquet extra where it "
        "runs (pip install '.[parquet]' from its checkout), or export as ndjson or csv.",
        "format",
    )


_arrow_memory_set = False


def pyarrow_modules() -> tuple[ModuleType, ModuleType]:
    """``pyarrow`` and ``pyarrow.parquet``; 400 ``parquet_unavailable`` when not installed."""
    global _arrow_memory_set
    try:
        pa, pq = importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise parquet_unavailable() from None
    if not _arrow_memory_set:
        _arrow_memory_set = True
        # jemalloc keeps freed pages for seconds by default (and mimalloc, Arrow's default
        # elsewhere, its own way): each row group's columns would pile up in RSS.
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
            pa.jemalloc_set_decay_ms(0)
        except (NotImplementedError, AttributeError):
            pass  # a pyarrow built without jemalloc
    return pa, pq


def encode(
    fmt: ExportFormat, columns: Sequence[Column], pages: Iterable[Sequence[Any]]
) -> Iterator[bytes]:
    """The bytes of the export of ``pages`` in ``fmt``, a page (a row group) at a time."""
    if fmt == "ndjson":
        return ndjson(pages)
    if fmt == "csv":
        return csv_lines(columns, pages)
    return parquet(columns, pages)


def ndjson(pages: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    for page in pages:
        if page:
            yield _encoder.encode_lines(page)


def csv_header(columns: Sequence[Column]) -> bytes:
    """The header line of a CSV export: the columns' names."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([c.name for c in columns])
    return buffer.getvalue().encode()


def csv_lines(columns: Sequence[Column], pages: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield csv_header(columns)
    read = _row_reader(columns)
    # The csv module writes str as it is, int with str() and None as an empty cell: only the
    # other kinds need their text made.
    converted = [(i, _TEXT[c.kind]) for i, c in enumerate(columns) if c.kind in _TEXT]
    for page in pages:
        buffer.seek(0)
        buffer.truncate()
        rows = [read(item) for item in page]
        for row in rows:
            for i, text in converted:
                if (value := row[i]) is not None:
                    row[i] = text(value)
        writer.writerows(rows)
        yield buffer.getvalue().encode()


def _row_reader(columns: Sequence[Column]) -> Callable[[Any], list[Any]]:
    """The values of an item's columns, as a list: by one ``attrgetter`` when every column is
    an attribute (most exports), which reads them all in C."""
    names = [c.attribute for c in columns]
    if len(columns) > 1 and all(names):
        every = operator.attrgetter(*names)  # type: ignore[arg-type]
        return lambda item: list(every(item))
    getters = [c.get for c in columns]
    return lambda item: [get(item) for get in getters]


def _iso(value: dt.datetime | str) -> str:
    # Exports of activities hand times over as the API's text already.
    if isinstance(value, str):
        return value
    return value.isoformat().replace("+00:00", "Z")


_TEXT: dict[str, Callable[[Any], str]] = {
    "boolean": lambda v: "true" if v else "false",
    "datetime": _iso,
    "date": lambda v: v.isoformat(),
    "json": lambda v: _encoder.encode(v).decode(),
}


def arrow_types() -> dict[str, Any]:
    """The Arrow type of each column kind."""
    pa, _ = pyarrow_modules()
    return {
        "text": pa.string(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "json": pa.string(),
    }


def arrow_schema(columns: Sequence[Column]) -> Any:
    pa, _ = pyarrow_modules()
    types = arrow_types()
    return pa.schema([pa.field(c.name, types[c.kind]) for c in columns])


def parquet(columns: Sequence[Column], pages: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    pa, _ = pyarrow_modules()
    types = arrow_types()
    schema = arrow_schema(columns)

    def batches() -> Iterator[Any]:
        for page in pages:
            if page:
                arrays = [pa.array(_values(c, page), type=types[c.kind]) for c in columns]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return parquet_file(schema, batches(), dictionary_columns(columns))


def dictionary_columns(columns: Sequence[Column]) -> list[str]:
    """The columns Parquet dictionary-encodes: those whose values repeat."""
    return [c.name for c in columns if c.repeats]


def parquet_file(schema: Any, batches: Iterable[Any], dictionary: Sequence[str]) -> Iterator[bytes]:
    """The Parquet file of Arrow record batches of ``schema``, in row groups of exactly
    ``ROW_GROUP`` rows (the last one fewer), each sent once written; the ``dictionary``
    columns dictionary-encoded."""
    pa, pq = pyarrow_modules()
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=list(dictionary))
    held: list[Any] = []
    rows = 0
    for batch in batches:
        while rows + batch.num_rows >= ROW_GROUP:
            # The batch's rows that fill the row group; the rest start the next one.
            need = ROW_GROUP - rows
            held.append(batch.slice(0, need))
            writer.write_table(pa.Table.from_batches(held, schema), row_group_size=ROW_GROUP)
            yield sink.take()
            held, rows, batch = [], 0, batch.slice(need)
        if batch.num_rows:
            held.append(batch)
            rows += batch.num_rows
    if rows:
        writer.write_table(pa.Table.from_batches(held, schema), row_group_size=ROW_GROUP)
    writer.close()
    yield sink.take()


def _values(column: Column, page: Sequence[Any]) -> list[Any]:
    get = column.get
    values = [get(item) for item in page]
    if column.kind == "json":
        return [None if v is None else _encoder.encode(v).decode() for v in values]
    if column.kind == "text":
        return [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    if column.kind == "datetime":
        return [dt.datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
    return values


class _Sink(io.RawIOBase):
    """Where the Parquet writer writes: bytes kept until taken, so that each row group goes
    out as soon as it is written."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        taken, self._parts = b"".join(self._parts), []
        return taken
