"""``python -m bench.reports_pg``: the reports of ``bench.reports`` on PostgreSQL, over the same
data (docs/performance.md, "Reports").

The SQLite copy ``bench.reports`` makes (1M contacts, 10M activities, fields on the loan
calculations of the last 31 days, the report rollups filled) is loaded into a PostgreSQL
database of its own: migrated by Waypost, emptied, every table copied with ``COPY`` (the
activities' indexes dropped first and built again afterwards, as any bulk load would), then
``ANALYZE``. The load is skipped when the database already holds as many activities as the
copy. Each report then runs through the report service on PostgreSQL, warm and cold as in
``bench.reports``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.postgres import conninfo, count_activities, reset_database
from bench.reports import TARGETS, definitions, measure, prepare, upgrade_copy
from waypost.hub import Hub
from waypost.settings import load_settings
from waypost.store import make_engine, migrate
from waypost.store.schema import activities, metadata

DEFAULT_URL = "postgresql+psycopg://127.0.0.1:5432/waypost_bench_reports"
ROWS_PER_FETCH = 50_000


def load(copy: Path, url: str) -> None:
    """The SQLite ``copy`` into the PostgreSQL database ``url``, made anew."""
    reset_database(url)
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    src = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    started = time.perf_counter()
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SET timezone = 'UTC'")
        names = [t.name for t in metadata.sorted_tables]
        conn.execute(
            sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, names)))
        )
        for index in activities.indexes:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(str(index.name))))
        for table in metadata.sorted_tables:
            have = {row[1] for row in src.execute(f'PRAGMA table_info("{table.name}")')}
            columns = [c.name for c in table.columns if c.name in have]
            copy_table(src, conn, table.name, columns)
            sys.stderr.write(f"  {table.name}: {time.perf_counter() - started:.0f} s\n")
        sys.stderr.write("building the activity indexes...\n")
        engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))
        try:
            with engine.begin() as sa_conn:
                for index in activities.indexes:
                    index.create(sa_conn, checkfirst=True)
        finally:
            engine.dispose()
        conn.execute("VACUUM ANALYZE")
    src.close()
    sys.stderr.write(f"loaded in {time.perf_counter() - started:.0f} s\n")


def copy_table(
    src: sqlite3.Connection, conn: psycopg.Connection, name: str, cols: list[str]
) -> None:
    quoted = ", ".join(f'"{c}"' for c in cols)
    rows = src.execute(f'SELECT {quoted} FROM "{name}"')  # noqa: S608 - names from the schema
    target = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, cols))
    )
    with conn.cursor().copy(target) as out:
        while batch := rows.fetchmany(ROWS_PER_FETCH):
            for row in batch:
                out.write_row(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--source", type=Path, help="The bench.scale database")
    parser.add_argument("--postgres", default=DEFAULT_URL, help="A database of its own")
    parser.add_argument("--only", help="One report: " + ", ".join(TARGETS))
    args = parser.parse_args(argv)
    source = args.source or args.out / f"scale-{args.contacts}-{args.activities}.db"
    copy = args.out / f"reports-{args.contacts}-{args.activities}.db"
    if not copy.exists():
        if not source.exists():
            raise SystemExit(f"{source} does not exist: run python -m bench.scale first")
        prepare(source, copy)
    upgrade_copy(copy)
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as src:
        (stored,) = src.execute("SELECT count(*) FROM activities").fetchone()
    try:
        loaded = count_activities(args.postgres)
    except psycopg.OperationalError:
        loaded = -1
    if loaded != stored:
        sys.stderr.write(f"loading {stored:,} activities into {args.postgres}...\n")
        load(copy, args.postgres)
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": args.postgres}))
    with hub.store.read() as conn:
        latest = conn.exec_driver_sql("SELECT max(day) FROM activity_daily_counts").scalar_one()
    today = dt.date.fromisoformat(str(latest))
    results: dict[str, Any] = {"contacts": args.contacts, "activities": stored}
    print(f"PostgreSQL, {args.contacts:,} contacts, {stored:,} activities, up to {today}")
    for name, definition in definitions(today).items():
        if args.only and name != args.only:
            continue
        cold, warm, result = measure(hub, definition, args.runs)
        results[name] = {"cold_seconds": cold, "warm_seconds": warm, "source": result.source}
        target = TARGETS[name]
        noted = "no target" if target is None else f"SQLite's target <= {target * 1000:.0f} ms"
        print(
            f"  {name:26} {warm * 1000:8.0f} ms warm, {cold * 1000:8.0f} ms cold, "
            f"from {result.source} ({noted})"
        )
    hub.close()
    (args.out / "reports-postgresql.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
