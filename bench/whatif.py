"""``python -m bench.whatif``: what the storage allows, to see what would reach the targets.

Not part of ``make bench``. It fills a Waypost database with the benchmark's batches, then
measures raw ``executemany`` of those rows into fresh databases that differ in one thing each
(an index dropped or as it was before a migration, the batch size, ``synchronous``), the
physical floor of ``make bench``, and Waypost itself with ``synchronous=NORMAL``. Waypost's
figures are one run each, the raw ones the median of ``--rounds`` runs taken in turn, so read
them as rough ratios; the CPU and the bytes written per row move least with the machine's load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Harness, say
from bench.raw import PARENT_TABLES, FloorTarget, RawResult, RawTarget
from bench.report import median
from waypost.ids import new_id
from waypost.pipeline.writer_rows import ACTIVITY_COLUMNS
from waypost.settings import load_settings

SECONDARY_INDEXES = (
    "ix_activities_type_primary",
    "ix_activities_contact_time",
    "ix_activities_time",
    "ix_activities_type_time",
    "uq_activities_channel_client_id",
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

FULL_PRIMARY_INDEX = [
    f"DROP INDEX {SECONDARY_INDEXES[0]}",
    f"CREATE INDEX {SECONDARY_INDEXES[0]} ON activities (type_id, primary_value)",
]


def primary_values_as_before(target: RawTarget) -> None:
    """The rows as Waypost stored them before migration 0018: ``primary_value`` holding the
    primary field's text whatever its type (a decimal too)."""
    primary = dict(
        target.conn.execute(
            "SELECT type_id, name FROM main.activity_type_fields WHERE is_primary"
        ).fetchall()
    )
    type_at, fields_at, primary_at = (
        ACTIVITY_COLUMNS.index(c) for c in ("type_id", "fields", "primary_value")
    )
    rows = []
    for row in target.source_rows:
        name = primary.get(row[type_at])
        value = json.loads(row[fields_at]).get(name) if name and row[fields_at] else None
        changed = list(row)
        changed[primary_at] = None if value is None else str(value)[:200]
        rows.append(tuple(changed))
    target.source_rows = rows


def activities_without_rowid(conn: sqlite3.Connection) -> None:
    """The activities table clustered on its id (``WITHOUT ROWID``): one B-tree fewer, the
    row stored in the primary key's tree instead of a rowid table plus an index on ``id``."""
    table, *indexes = (
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'activities' AND sql IS NOT NULL"
            " ORDER BY type = 'index'"
        )
    )
    conn.execute("DROP TABLE activities")
    conn.execute(f"{table} WITHOUT ROWID")
    for index in indexes:
        conn.execute(index)


def page_size(size: int) -> Callable[[sqlite3.Connection], None]:
    """The fresh database rebuilt with pages of ``size`` bytes (SQLite's default, and
    Waypost's, is 4,096). A WAL database keeps its page size, so it is rebuilt outside WAL."""

    def rebuild(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"PRAGMA page_size={size}")
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode=WAL")
        (got,) = conn.execute("PRAGMA page_size").fetchone()
        if got != size:
            raise RuntimeError(f"page size {got}, not {size}")

    return rebuild


ID_COLUMNS = tuple(ACTIVITY_COLUMNS.index(c) for c in ("id", "type_id", "contact_id", "channel_id"))


TIME_COLUMNS = tuple(ACTIVITY_COLUMNS.index(c) for c in ("occurred_at", "received_at"))


SQLValue = str | bytes | int | float | None


def _unhex(value: SQLValue) -> SQLValue:
    """A 32-character id as its 16 bytes; anything else as it is."""
    return bytes.fromhex(value) if isinstance(value, str) and len(value) == 32 else value


def parents_with_byte_ids(conn: sqlite3.Connection) -> None:
    """The parents' ids (channels, types and their fields, contacts) stored as 16 bytes, as
    the activities referring to them will be."""
    conn.create_function("wp_unhex", 1, _unhex, deterministic=True)
    conn.commit()
    conn.execute("PRAGMA foreign_keys=OFF")
    for table in PARENT_TABLES:
        for _cid, name, kind, *_rest in conn.execute(f"PRAGMA table_info({table})").fetchall():
            if kind == "CHAR(32)":
                conn.execute(f"UPDATE {table} SET {name} = wp_unhex({name})")  # noqa: S608
    conn.commit()
    conn.execute("PRAGMA foreign_keys=ON")
    if conn.execute("PRAGMA foreign_key_check").fetchall():
        raise RuntimeError("the parents' ids as bytes no longer match each other")


def ids_as_bytes(target: RawTarget) -> None:
    """Every id of an activity row (its own, its type's, contact's and channel's) as 16 bytes
    rather than 32 hexadecimal characters: each index entry holds two or three of them."""
    rows = []
    for row in target.source_rows:
        changed = list(row)
        for at in ID_COLUMNS:
            changed[at] = bytes.fromhex(changed[at])
        rows.append(tuple(changed))
    target.source_rows = rows
    target.fresh_id = lambda: new_id().bytes


def _micros(value: object) -> object:
    if not isinstance(value, str):
        return value
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def ids_as_bytes_and_times_as_integers(target: RawTarget) -> None:
    """As :func:`ids_as_bytes`, and both times as integer microseconds since 1970 (8 bytes,
    not 26 characters; the time is in three of the indexes)."""
    ids_as_bytes(target)
    rows = []
    for row in target.source_rows:
        changed = list(row)
        for at in TIME_COLUMNS:
            changed[at] = _micros(changed[at])
        rows.append(tuple(changed))
    target.source_rows = rows


@dataclass(frozen=True)
class Variant:
    """A fresh database that differs from the migrated one in one thing."""

    name: str
    synchronous: str = "FULL"
    batch: int = 100  # rows per transaction
    statements: tuple[str, ...] = ()  # run on the fresh database first
    rows: Callable[[RawTarget], None] | None = None  # changes the rows to insert
    rebuild: Callable[[sqlite3.Connection], None] | None = None  # changes the fresh schema


VARIANTS = [
    Variant("schema as migrated"),
    Variant("1,000 rows per transaction", batch=1000),
    Variant("synchronous=NORMAL", synchronous="NORMAL"),
    Variant("64 MB page cache", statements=("PRAGMA cache_size=-65536",)),
    Variant("foreign keys off", statements=("PRAGMA foreign_keys=OFF",)),
    # Before migration 0018 and the decimal primary left out of primary_value: every row had
    # an entry, the bench's rows one at the place of their amount.
    Variant("before 0018: decimal primaries indexed", statements=(*FULL_PRIMARY_INDEX,),
            rows=primary_values_as_before),
    Variant("ix_activities_type_primary on every row", statements=(*FULL_PRIMARY_INDEX,)),
    Variant("without ix_activities_type_primary",
            statements=(f"DROP INDEX {SECONDARY_INDEXES[0]}",)),
    Variant("without ix_activities_time", statements=("DROP INDEX ix_activities_time",)),
    Variant("without ix_activities_type_time",
            statements=("DROP INDEX ix_activities_type_time",)),
    Variant("without ix_activities_contact_time",
            statements=("DROP INDEX ix_activities_contact_time",)),
    Variant("ix_activities_contact_time on (contact_id, occurred_at) only",
            statements=("DROP INDEX ix_activities_contact_time",
                        "CREATE INDEX ix_activities_contact_time"
                        " ON activities (contact_id, occurred_at)")),
    Variant("activities WITHOUT ROWID", rebuild=activities_without_rowid),
    *(Variant(f"pages of {size:,} bytes", rebuild=page_size(size))
      for size in (1024, 2048, 8192, 16384)),
    Variant("ids as 16 bytes", rebuild=parents_with_byte_ids, rows=ids_as_bytes),
    Variant("ids as 16 bytes, times as integers", rebuild=parents_with_byte_ids,
            rows=ids_as_bytes_and_times_as_integers),
    Variant("without any secondary index",
            statements=tuple(f"DROP INDEX {name}" for name in SECONDARY_INDEXES)),
]  # fmt: skip


Row = tuple[str, float, float | None, float | None]  # name, per second, CPU µs and bytes per row


def raw_variants(source: Path, workdir: Path, seconds: float, rounds: int) -> list[Row]:
    """Every variant once per round, in turn, so that a change in the machine's load falls on
    all of them alike; the medians of the rounds."""
    runs: dict[str, list[RawResult]] = {v.name: [] for v in VARIANTS}
    for r in range(rounds):
        for variant in VARIANTS:
            target_dir = workdir / "raw"
            shutil.rmtree(target_dir, ignore_errors=True)
            target_dir.mkdir()
            settings = load_settings(
                {},
                database_url=f"sqlite:///{target_dir / 'raw.db'}",
                sqlite_synchronous=variant.synchronous,
            )
            target = RawTarget(settings, str(source))
            try:
                for statement in variant.statements:
                    target.conn.execute(statement)
                if variant.rebuild is not None:
                    variant.rebuild(target.conn)
                target.load_rows(50_000)
                if variant.rows is not None:
                    variant.rows(target)
                result = target.run(seconds, batch=variant.batch)
            finally:
                target.close()
            say(
                f"raw, {variant.name}, round {r + 1}: {result.rows_per_second:,.0f} rows/s, "
                f"{result.cpu_us_per_row or 0:.1f} µs CPU and {result.bytes_per_row or 0:,.0f} "
                "bytes written per row"
            )
            runs[variant.name].append(result)
    return [
        (
            f"raw executemany, {name}",
            median([x.rows_per_second for x in results]),
            median([x.cpu_us_per_row or 0.0 for x in results]),
            median([x.bytes_per_row or 0.0 for x in results]),
        )
        for name, results in runs.items()
    ]


def floor_run(workdir: Path, seconds: float) -> Row:
    """The physical floor of ``make bench``, for scale."""
    target = FloorTarget(workdir / "floor.db")
    try:
        result = target.run(seconds)
    finally:
        target.close()
    say(f"physical floor: {result.rows_per_second:,.0f} rows/s")
    name = "raw executemany, physical floor (key and 200-byte payload)"
    return name, result.rows_per_second, result.cpu_us_per_row, result.bytes_per_row


def waypost_runs(workdir: Path, synchronous: str, seconds: float) -> tuple[Path, list[float]]:
    run_dir = workdir / f"waypost-{synchronous.lower()}"
    run_dir.mkdir()
    harness = Harness(run_dir, {"WAYPOST_SQLITE_SYNCHRONOUS": synchronous})
    with ExitStack() as stack:
        waypost = harness.start_waypost(stack)
        waypost.wait_ready()
        pools = harness.setup()
        harness.measure(waypost, pools.single, 1, 64, 2)
        single = harness.measure(waypost, pools.single, 1, 64, seconds)
        batch = harness.measure(waypost, pools.batch, 100, 16, seconds)
    say(
        f"Waypost, synchronous={synchronous}: {single.requests_per_second:,.0f} single/s, "
        f"{batch.requests_per_second * 100:,.0f} activities/s in batches"
    )
    return harness.db_path, [single.requests_per_second, batch.requests_per_second * 100]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per run (4)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the raw variants (1)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be over 0 and at most 60")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1 to 20")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="waypost-whatif-") as tmp:
        workdir = Path(tmp)
        for synchronous in ("FULL", "NORMAL"):
            source, (single, batch) = waypost_runs(workdir, synchronous, args.seconds)
            prefix = f"Waypost, synchronous={synchronous}"
            rows.append((f"{prefix}: single requests/s", single, None, None))
            rows.append((f"{prefix}: batch activities/s", batch, None, None))
        rows += raw_variants(source, workdir, args.seconds, args.rounds)
        rows.append(floor_run(workdir, args.seconds))
    width = max(len(name) for name, *_ in rows)
    print(f"\n{'per second'.rjust(width + 12)}  µs CPU per row  bytes written per row")
    for name, value, cpu, written in rows:
        per_row = "" if cpu is None else f"{cpu:14.1f}  {written or 0:>21,.0f}"
        print(f"{name.ljust(width)}  {value:>10,.0f}  {per_row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
