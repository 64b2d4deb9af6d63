"""``python -m bench.pg``: 100-activity batches through Waypost on PostgreSQL, against a raw
``COPY`` of the same rows into the same schema.

Waypost serves a fresh database (``--database-url``, dropped and created first; default
``waypost_bench`` on the local server) as ``make bench`` serves SQLite: one uvicorn worker,
``synchronous_commit`` on (PostgreSQL's default), so a 202 means committed. wrk sends
100-activity requests on ``--connections`` connections; every run's 202 results are checked
against the rows in the database.

The raw target is a second fresh database (``<name>_raw``) migrated with Waypost's migrations,
holding the same channels, types and contacts. Its rows are the newest activities Waypost
stored, each with a fresh id, written 100 to a transaction with ``COPY activities (...) FROM
STDIN`` and a commit, on one connection; only the copy and the commit are timed. The same rows
with ``executemany`` are timed too, which shows what ``COPY`` gains at this batch size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from bench.harness import BenchFailure, Harness, say
from bench.load import LoadError, RunResult, wrk_path
from bench.postgres import conninfo, reset_database
from bench.raw import RawResult
from bench.report import median
from bench.servers import ServerError
from waypost.ids import new_id
from waypost.pipeline.writer_rows import ACTIVITY_COLUMNS
from waypost.settings import load_settings
from waypost.store import make_engine, migrate

BATCH_ACTIVITIES = 60_000  # activities/s (docs/performance.md)
BATCH_RAW_SHARE = 0.50  # of a raw COPY's rows/s
RAW_SOURCE_ROWS = 50_000
PARENT_TABLES = ("channels", "activity_types", "activity_type_fields", "contacts")
JSON_COLUMNS = ("fields", "flags")
COPY = f"COPY activities ({', '.join(ACTIVITY_COLUMNS)}) FROM STDIN"
INSERT = (
    f"INSERT INTO activities ({', '.join(ACTIVITY_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join(['%s'] * len(ACTIVITY_COLUMNS))})"
)


@dataclass(frozen=True)
class Options:
    database_url: str
    rounds: int
    seconds: float
    warmup_seconds: float
    connections: int
    raw_seconds: float
    out: Path
    keep: bool


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pg",
        description="100-activity batches through Waypost on PostgreSQL, against a raw COPY.",
    )
    add = parser.add_argument
    add(
        "--database-url",
        default="postgresql+psycopg://127.0.0.1:5432/waypost_bench",
        help="the database to use, dropped and created first (waypost_bench on 127.0.0.1)",
    )
    add("--rounds", type=int, default=4, help="rounds (4)")
    add("--seconds", type=float, default=5.0, help="seconds per measured run (5)")
    add("--warmup-seconds", type=float, default=2.0, help="seconds of warm-up (2)")
    add("--connections", type=int, default=16, help="connections (16)")
    add("--raw-seconds", type=float, default=3.0, help="copy seconds per raw run (3)")
    add("--out", type=Path, default=Path("bench-results/postgres.json"), help="results file")
    add("--keep", action="store_true", help="keep the temporary directory and server log")
    ns = parser.parse_args(argv)
    if not 1 <= ns.rounds <= 100 or not 1 <= ns.connections <= 1000:
        parser.error("--rounds must be 1 to 100 and --connections 1 to 1000")
    return Options(**vars(ns))


class RawCopy:
    """A fresh database of Waypost's schema, with the parents of the rows Waypost stored."""

    def __init__(self, url: str, source_url: str) -> None:
        reset_database(url)
        engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))
        migrate.upgrade(engine)
        engine.dispose()
        self.conn = psycopg.connect(conninfo(url))
        self.source = psycopg.connect(conninfo(source_url))
        self.rows: list[tuple[Any, ...]] = []
        with self.conn.transaction():
            for table in PARENT_TABLES:
                self._copy_parents(table)

    def _copy_parents(self, table: str) -> None:
        cursor = self.source.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        names = [sql.Identifier(c.name) for c in cursor.description or []]
        rows = [
            tuple(Json(v) if isinstance(v, dict | list) else v for v in row)
            for row in cursor.fetchall()
        ]
        if rows:
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                sql.Identifier(table),
                sql.SQL(", ").join(names),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
            )
            self.conn.cursor().executemany(insert, rows)

    def load_rows(self, limit: int) -> int:
        """The newest ``limit`` activities Waypost stored (JSON as text, as COPY takes it)."""
        columns = ", ".join(f"{c}::text" if c in JSON_COLUMNS else c for c in ACTIVITY_COLUMNS)
        self.rows = self.source.execute(
            f"SELECT {columns} FROM activities ORDER BY received_at DESC LIMIT %s",  # noqa: S608
            (limit,),
        ).fetchall()
        self.source.rollback()
        return len(self.rows)

    def run(self, seconds: float, use_copy: bool, batch: int = 100) -> RawResult:
        """``batch``-row transactions for about ``seconds`` of copy (or insert) and commit."""
        if not self.rows:
            raise BenchFailure("no rows to copy: Waypost stored nothing in the batch runs")
        source = cycle(self.rows)
        spent, inserted, transactions = 0.0, 0, 0
        while spent < seconds:
            # Fresh ids, made outside the timed part; everything else as Waypost stored it.
            chunk = [(new_id(), *next(source)[1:]) for _ in range(batch)]
            started = time.perf_counter()
            with self.conn.cursor() as cursor:
                if use_copy:
                    with cursor.copy(COPY) as copy:
                        for row in chunk:
                            copy.write_row(row)
                else:
                    cursor.executemany(INSERT, chunk)
            self.conn.commit()
            spent += time.perf_counter() - started
            inserted += len(chunk)
            transactions += 1
        return RawResult(inserted, transactions, spent)

    def count(self) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM activities").fetchone()
        self.conn.rollback()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()
        self.source.close()


def run_phases(options: Options, harness: Harness, stack: ExitStack) -> dict[str, Any]:
    o = options
    reset_database(o.database_url)
    waypost = harness.start_waypost(stack)
    waypost.wait_ready()
    pools = harness.setup()
    say("warming up")
    harness.measure(waypost, pools.batch, 100, o.connections, o.warmup_seconds)
    raw = RawCopy(o.database_url + "_raw", o.database_url)
    stack.callback(raw.close)
    runs: list[RunResult] = []
    copies: list[RawResult] = []
    inserts: list[RawResult] = []
    for r in range(o.rounds):
        say(f"100-activity batches on PostgreSQL, round {r + 1} of {o.rounds}")
        runs.append(harness.measure(waypost, pools.batch, 100, o.connections, o.seconds))
        raw.load_rows(RAW_SOURCE_ROWS)
        copies.append(raw.run(o.raw_seconds, use_copy=True))
        inserts.append(raw.run(o.raw_seconds, use_copy=False))
    written = sum(x.rows for x in copies + inserts)
    if raw.count() != written:
        raise BenchFailure(f"raw: {raw.count()} rows in the database, {written} written")
    rps = median([x.requests_per_second for x in runs])
    copy_rate = median([x.rows_per_second for x in copies])
    insert_rate = median([x.rows_per_second for x in inserts])
    return {
        "waypost": {
            "rps": rps,
            "activities_per_second": rps * 100,
            "p50_ms": median([x.p50_us for x in runs]) / 1000,
            "p99_ms": median([x.p99_us for x in runs]) / 1000,
            "connections": o.connections,
            "rounds": [x.as_dict() for x in runs],
        },
        "raw_copy": {
            "rows_per_second": copy_rate,
            "rows_per_transaction": 100,
            "rounds": [x.as_dict() for x in copies],
        },
        "raw_executemany": {
            "rows_per_second": insert_rate,
            "rows_per_transaction": 100,
            "rounds": [x.as_dict() for x in inserts],
        },
        "raw_ratio": rps * 100 / copy_rate,
        "settings": waypost.info["settings"],
        "server": waypost.info["server"],
    }


def server_facts(url: str) -> dict[str, str]:
    with psycopg.connect(conninfo(url)) as conn:
        facts = {}
        for name in ("server_version", "synchronous_commit", "fsync", "wal_level"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            facts[name] = str(row[0]) if row else ""
    return facts


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    rate = document["waypost"]["activities_per_second"]
    ratio = document["raw_ratio"]
    return [
        {
            "name": "100-activity batches on PostgreSQL: activities/s",
            "goal": f">= {BATCH_ACTIVITIES:,}",
            "measured": f"{rate:,.0f}",
            "met": rate >= BATCH_ACTIVITIES,
        },
        {
            "name": "100-activity batches on PostgreSQL vs raw COPY",
            "goal": f">= {BATCH_RAW_SHARE:.0%}",
            "measured": f"{ratio:.1%}",
            "met": ratio >= BATCH_RAW_SHARE,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        wrk_path()
        facts = server_facts(options.database_url.rsplit("/", 1)[0] + "/postgres")
    except LoadError as exc:
        print(f"bench.pg: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"bench.pg: PostgreSQL is not reachable: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="waypost-bench-pg-"))
    harness = Harness(workdir, {"WAYPOST_DATABASE_URL": options.database_url})
    document: dict[str, Any] = {
        "benchmark": "waypost ingest on PostgreSQL",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "postgresql": facts,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
    }
    failure: str | None = None
    try:
        with ExitStack() as stack:
            document.update(run_phases(options, harness, stack))
    except (BenchFailure, LoadError, ServerError) as exc:
        failure = str(exc)
    finally:
        if options.keep or failure is not None:
            say(f"kept {workdir} (server log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    document["stored_check"] = harness.checks
    document["failure"] = failure
    judged = targets(document) if failure is None else []
    document["targets"] = judged
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(document, indent=2) + "\n")
    if failure is not None:
        print(f"\nBENCHMARK FAILED: {failure}\n(partial results in {options.out})", file=sys.stderr)
        return 1
    w = document["waypost"]
    print(
        f"\nWaypost on PostgreSQL {facts['server_version']}, synchronous_commit "
        f"{facts['synchronous_commit']}, {w['connections']} connections, 100-activity batches"
    )
    print(
        f"  Waypost:                 {w['activities_per_second']:>10,.0f} activities/s  "
        f"(p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms)"
    )
    copy_rate = document["raw_copy"]["rows_per_second"]
    print(f"  raw COPY, 100 rows/commit:        {copy_rate:>10,.0f} rows/s")
    print(
        f"  raw executemany, 100 rows/commit: "
        f"{document['raw_executemany']['rows_per_second']:>10,.0f} rows/s"
    )
    print(f"  Waypost vs raw COPY:     {document['raw_ratio']:>10.1%}")
    print("Targets (docs/performance.md)")
    for t in judged:
        print(
            f"  {t['name']:<52} {t['goal']:>9} {t['measured']:>9}  "
            f"{'met' if t['met'] else 'MISSED'}"
        )
    acknowledged = sum(c["acknowledged"] for c in harness.checks)
    print(f"Stored == acknowledged: {acknowledged:,} activities over {len(harness.checks)} runs.")
    print(f"Results written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
