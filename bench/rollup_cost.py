"""``python -m bench.rollup_cost``: what the report rollups add to the writer, per activity.

Not part of ``make bench``. In a fresh database (SQLite in a temporary directory, or
``--database-url``), batches of ``--batch`` activities of one type, each of a random contact
among ``--contacts`` on one UTC day, have their counters written in one transaction each, three
ways, interleaved round by round:

- ``before``: the rollups per contact, type and day and the counts per type and day as the
  writer wrote them before the report rollups (an ``executemany`` upsert of each);
- ``now, no fields``: the writer's :func:`~waypost.pipeline.writer_rows.write_counters` for
  activities without counted fields: the same upsert and the rows it created (on SQLite those
  past the largest rowid before it, on PostgreSQL what a multi-row upsert returns), for the
  distinct contacts per day;
- ``now, 2 fields``: the same with an integer and a decimal field per activity, counted per
  value (the loan calculations of ``bench.reports``).

Only the counters are timed (the activities' own rows and the commit are the same in all three),
so the differences are what the report rollups cost per activity on the writer's thread.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.ids import new_id
from waypost.pipeline.writer_rows import BatchRows, Statements, write_counters
from waypost.settings import load_settings
from waypost.store import Store, make_engine, migrate
from waypost.store.codec import Codec
from waypost.store.schema import activity_types, contacts

BEFORE_ROLLUP = (
    "INSERT INTO activity_rollups (contact_id, type_id, day, count) VALUES ({}) "
    "ON CONFLICT (contact_id, type_id, day) DO UPDATE SET count = activity_rollups.count + "
    "excluded.count"
)
BEFORE_DAILY = (
    "INSERT INTO activity_daily_counts (type_id, day, count) VALUES ({}) "
    "ON CONFLICT (type_id, day) DO UPDATE SET count = activity_daily_counts.count + "
    "excluded.count"
)


def before(conn: Connection, c: Codec, rows: BatchRows) -> None:
    """The counters as the writer wrote them before migration 0019."""
    conn.exec_driver_sql(
        BEFORE_ROLLUP.format(c.placeholders(4)),
        [
            (c.ident(contact), c.ident(t), c.date(day), n)
            for (contact, t, day), n in sorted(rows.rollups.items(), key=lambda i: i[0][0].int)
        ],
    )
    daily: Counter[tuple[uuid.UUID, dt.date]] = Counter()
    for (_, t, day), n in rows.rollups.items():
        daily[(t, day)] += n
    conn.exec_driver_sql(
        BEFORE_DAILY.format(c.placeholders(3)),
        [(c.ident(t), c.date(day), n) for (t, day), n in sorted(daily.items())],
    )


def setup(url: str, n_contacts: int) -> tuple[Store, uuid.UUID, list[uuid.UUID]]:
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))
    migrate.upgrade(engine)
    store = Store(engine)
    now = dt.datetime.now(dt.UTC)
    people = [new_id() for _ in range(n_contacts)]
    with store.write() as conn:
        # A built-in type: the counters need only its id.
        type_id = conn.execute(sa.select(activity_types.c.id).limit(1)).scalar_one()
        conn.execute(
            contacts.insert(),
            [{"id": i, "attributes": {}, "created_at": now, "updated_at": now} for i in people],
        )
    return store, type_id, people


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="An empty database (default: a new SQLite file)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=300, help="Batches per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'rollup-cost.db'}"
        store, type_id, people = setup(url, args.contacts)
        rng = random.Random(17)  # noqa: S311 - repeatable load, not a secret
        day = dt.datetime.now(dt.UTC).date()

        def batch(fields: bool) -> BatchRows:
            rows = BatchRows(latest=dt.datetime.now(dt.UTC))
            for _ in range(args.batch):
                rows.rollups[(rng.choice(people), type_id, day)] += 1
                if fields:
                    amount = str(1000 + 500 * rng.randrange(199))
                    rows.values[(type_id, "amount", day, amount)] += 1
                    rows.values[(type_id, "term", day, str(12 * rng.randint(1, 7)))] += 1
            return rows

        ways: dict[str, tuple[bool, Callable[[Connection, Codec, BatchRows], None]]] = {
            "before": (False, before),
            "now, no fields": (False, lambda conn, c, r: write_counters(conn, s, c, r)),
            "now, 2 fields": (True, lambda conn, c, r: write_counters(conn, s, c, r)),
        }
        with store.read() as conn:
            codec = Codec(conn.dialect.name)
        s = Statements(codec)
        per_activity: dict[str, list[float]] = {name: [] for name in ways}
        cpu_per_activity: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, (fields, write) in ways.items():
                spent = cpu = 0.0
                for _ in range(args.batches):
                    rows = batch(fields)
                    with store.write() as conn:
                        started, started_cpu = time.perf_counter(), time.process_time()
                        write(conn, codec, rows)
                        spent += time.perf_counter() - started
                        cpu += time.process_time() - started_cpu
                per_activity[name].append(spent / (args.batches * args.batch) * 1e6)
                cpu_per_activity[name].append(cpu / (args.batches * args.batch) * 1e6)
        with store.read() as conn:
            rollups = conn.execute(sa.text("SELECT count(*) FROM activity_rollups")).scalar_one()
        store.dispose()
    print(
        f"{store.engine.dialect.name}, batches of {args.batch}, {rollups:,} rollup rows at the end"
    )
    # CPU time (this process's, the database's included on SQLite) is less disturbed by other
    # work on the machine than the elapsed time; both are medians over the rounds.
    base = statistics.median(per_activity["before"])
    cpu_base = statistics.median(cpu_per_activity["before"])
    for name, values in per_activity.items():
        median = statistics.median(values)
        cpu = statistics.median(cpu_per_activity[name])
        print(
            f"  {name:16} {median:6.1f} µs per activity elapsed ({median - base:+.1f}), "
            f"{cpu:6.1f} µs CPU ({cpu - cpu_base:+.1f}), median of {len(values)} rounds"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
