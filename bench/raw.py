"""The storage ceilings: raw ``executemany`` of 100-row durable commits, timed alike.

- **Waypost's schema** (RawTarget): a fresh database migrated with Waypost's own migrations and
  opened through Waypost's own engine, so it has the same pragmas (WAL, ``synchronous`` as
  configured, foreign keys on). The rows are the ones Waypost stored in the benchmark's batch
  runs, each given a fresh UUIDv7 id.
- **The physical floor** (FloorTarget): a fresh database (WAL, ``synchronous=FULL``) with one
  table holding only a time-ordered primary key (a UUIDv7, as Waypost stores ids) and a
  200-byte payload: what a durable commit of 100 rows costs on this machine before any schema.

Both go in as 100-row ``executemany`` calls, each in its own ``BEGIN IMMEDIATE`` ... ``COMMIT``
transaction (timed_commits). Only the insert and the commit are timed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any

from waypost.ids import new_id
from waypost.pipeline.writer_rows import ACTIVITY_COLUMNS
from waypost.settings import Settings
from waypost.store import make_engine, migrate

# The tables the activities refer to, copied before any activity.
PARENT_TABLES = ("channels", "activity_types", "activity_type_fields", "contacts")
INSERT = (
    f"INSERT INTO activities ({', '.join(ACTIVITY_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join('?' * len(ACTIVITY_COLUMNS))})"
)
FLOOR_PAYLOAD_BYTES = 200
# One B-tree, appended to at its right edge: a time-ordered key clustered with its row.
FLOOR_TABLE = "CREATE TABLE floor (id TEXT PRIMARY KEY, payload BLOB NOT NULL) WITHOUT ROWID"
FLOOR_INSERT = "INSERT INTO floor (id, payload) VALUES (?, ?)"


@dataclass(frozen=True)
class RawResult:
    """One raw run: rows inserted, transactions, the seconds spent inserting, and, when
    SQLite ran them in this process, their CPU seconds (waiting for the disk takes none) and
    the bytes they wrote (the WAL's pages: the same in every run of the same rows)."""

    rows: int
    transactions: int
    seconds: float
    cpu_seconds: float | None = None
    written_bytes: int | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_row(self) -> float | None:
        # What a row costs SQLite, steadier than rows/s while others use the disk and CPUs.
        if self.cpu_seconds is None or not self.rows:
            return None
        return self.cpu_seconds / self.rows * 1e6

    @property
    def bytes_per_row(self) -> float | None:
        if self.written_bytes is None or not self.rows:
            return None
        return self.written_bytes / self.rows

    def as_dict(self) -> dict[str, object]:
        cpu = self.cpu_us_per_row
        return {
            "rows": self.rows,
            "transactions": self.transactions,
            "seconds": round(self.seconds, 4),
            "rows_per_second": round(self.rows_per_second, 1),
            "cpu_us_per_row": None if cpu is None else round(cpu, 2),
            "bytes_per_row": None if self.bytes_per_row is None else round(self.bytes_per_row),
        }


def timed_commits(
    conn: sqlite3.Connection,
    statement: str,
    batches: Iterator[list[tuple[Any, ...]]],
    seconds: float,
) -> RawResult:
    """``executemany`` each batch in its own ``BEGIN IMMEDIATE`` ... ``COMMIT`` until about
    ``seconds`` of insert time were spent; the batches are made outside the timed part."""
    spent = cpu = 0.0
    inserted = transactions = 0
    written = written_bytes()
    while spent < seconds:
        chunk = next(batches)
        started, started_cpu = time.perf_counter(), time.thread_time()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(statement, chunk)
        conn.execute("COMMIT")
        cpu += time.thread_time() - started_cpu
        spent += time.perf_counter() - started
        inserted += len(chunk)
        transactions += 1
    after = written_bytes()
    wrote = None if written is None or after is None else after - written
    return RawResult(inserted, transactions, spent, cpu, wrote)


def written_bytes() -> int | None:
    """Bytes this process has passed to write() so far (Linux), or None."""
    try:
        with open("/proc/self/io") as io:
            return next(int(ln.split()[1]) for ln in io if ln.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


class RawTarget:
    """A fresh, migrated SQLite database to insert into, holding the parents of the rows."""

    def __init__(self, settings: Settings, source_path: str) -> None:
        self.engine = make_engine(settings)
        migrate.upgrade(self.engine)
        # A pooled DBAPI connection: Waypost's connect hook has set its pragmas.
        self.pooled = self.engine.raw_connection()
        conn = self.pooled.driver_connection
        assert isinstance(conn, sqlite3.Connection)
        self.conn = conn
        self.pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys")
        }
        self.source_path = source_path
        with self._attached():
            conn.execute("BEGIN IMMEDIATE")
            for table in PARENT_TABLES:
                # OR IGNORE: the built-in types exist in both databases.
                conn.execute(
                    f"INSERT OR IGNORE INTO main.{table} SELECT * FROM source.{table}"  # noqa: S608
                )
            conn.execute("COMMIT")
        self.source_rows: list[tuple[Any, ...]] = []
        # The id of each inserted row, as the schema stores ids (a variant may store them as bytes).
        self.fresh_id: Callable[[], object] = lambda: new_id().hex

    @contextmanager
    def _attached(self) -> Iterator[None]:
        # Attached only while reading: a transaction on a connection with an attached WAL
        # database would take that database's write lock too.
        self.conn.execute("ATTACH DATABASE ? AS source", (self.source_path,))
        try:
            yield
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.conn.execute("DETACH DATABASE source")

    def load_rows(self, limit: int) -> int:
        """Take the newest ``limit`` activities Waypost stored as the rows to insert."""
        columns = ", ".join(ACTIVITY_COLUMNS)
        with self._attached():
            self.source_rows = self.conn.execute(
                f"SELECT {columns} FROM source.activities ORDER BY rowid DESC LIMIT ?",  # noqa: S608
                (limit,),
            ).fetchall()
        self.source_rows.reverse()
        return len(self.source_rows)

    def run(self, seconds: float, batch: int = 100) -> RawResult:
        """Insert ``batch``-row transactions for about ``seconds`` of insert time."""
        if not self.source_rows:
            raise RuntimeError("no rows to insert: Waypost stored nothing in the batch runs")
        return timed_commits(self.conn, INSERT, self._batches(batch), seconds)

    def _batches(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        source = cycle(self.source_rows)
        while True:
            # Fresh ids, made outside the timed part; everything else as Waypost stored it.
            fresh = self.fresh_id
            yield [(fresh(), *next(source)[1:]) for _ in range(size)]

    def count(self) -> int:
        found: int = self.conn.execute("SELECT COUNT(*) FROM main.activities").fetchone()[0]
        return found

    def close(self) -> None:
        self.pooled.close()
        self.engine.dispose()


class FloorTarget:
    """The physical floor: a fresh SQLite database of one key-and-payload table."""

    def __init__(self, path: Path) -> None:
        # Autocommit mode: the transactions are the explicit ones of timed_commits.
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(FLOOR_TABLE)
        self.pragmas = {
            name: self.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous")
        }

    def run(self, seconds: float, batch: int = 100) -> RawResult:
        """Insert ``batch``-row transactions for about ``seconds`` of insert time."""
        return timed_commits(self.conn, FLOOR_INSERT, self._batches(batch), seconds)

    @staticmethod
    def _batches(size: int) -> Iterator[list[tuple[Any, ...]]]:
        while True:
            # Ids in the order they are made, as Waypost's; payloads that do not compress.
            yield [(new_id().hex, os.urandom(FLOOR_PAYLOAD_BYTES)) for _ in range(size)]

    def count(self) -> int:
        found: int = self.conn.execute("SELECT COUNT(*) FROM floor").fetchone()[0]
        return found

    def close(self) -> None:
        self.conn.close()
