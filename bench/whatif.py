"""``python -m bench.whatif``: what the storage allows, to see what would reach the targets.

Not part of ``make bench``. It fills a Waypost database with the benchmark's batches, then
measures raw ``executemany`` of those rows into fresh databases that differ in one thing each
(an index dropped or as it was before a migration, the batch size, ``synchronous``), the
physical floor of ``make bench``, and Waypost itself with ``synchronous=NORMAL``. Every figure
is one run, so read them as rough ratios.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.harness import Harness, say
from bench.raw import FloorTarget, RawResult, RawTarget
from bench.report import median
from waypost.settings import load_settings

SECONDARY_INDEXES = (
    "ix_activities_type_primary",
    "ix_activities_contact_time",
    "ix_activities_time",
    "ix_activities_type_time",
    "uq_activities_channel_client_id",
)

# name, synchronous, rows per transaction, statements run on the fresh database first
VARIANTS: list[tuple[str, str, int, list[str]]] = [
    ("schema as migrated", "FULL", 100, []),
    ("1,000 rows per transaction", "FULL", 1000, []),
    ("synchronous=NORMAL", "NORMAL", 100, []),
    ("64 MB page cache", "FULL", 100, ["PRAGMA cache_size=-65536"]),
    ("foreign keys off", "FULL", 100, ["PRAGMA foreign_keys=OFF"]),
    (
        # As before migration 0018: an entry for every row, with or without a primary value.
        "ix_activities_type_primary on every row",
        "FULL",
        100,
        [
            f"DROP INDEX {SECONDARY_INDEXES[0]}",
            f"CREATE INDEX {SECONDARY_INDEXES[0]} ON activities (type_id, primary_value)",
        ],
    ),
    ("without ix_activities_type_primary", "FULL", 100, [f"DROP INDEX {SECONDARY_INDEXES[0]}"]),
    (
        "without any secondary index",
        "FULL",
        100,
        [f"DROP INDEX {name}" for name in SECONDARY_INDEXES],
    ),
]


Row = tuple[str, float, float | None, float | None]  # name, per second, CPU µs and bytes per row


def raw_variants(source: Path, workdir: Path, seconds: float, rounds: int) -> list[Row]:
    """Every variant once per round, in turn, so that a change in the machine's load falls on
    all of them alike; the medians of the rounds."""
    runs: dict[str, list[RawResult]] = {name: [] for name, *_ in VARIANTS}
    for r in range(rounds):
        for name, synchronous, batch, statements in VARIANTS:
            target_dir = workdir / "raw"
            shutil.rmtree(target_dir, ignore_errors=True)
            target_dir.mkdir()
            settings = load_settings(
                {},
                database_url=f"sqlite:///{target_dir / 'raw.db'}",
                sqlite_synchronous=synchronous,
            )
            target = RawTarget(settings, str(source))
            try:
                for statement in statements:
                    target.conn.execute(statement)
                target.load_rows(50_000)
                result = target.run(seconds, batch=batch)
            finally:
                target.close()
            say(
                f"raw, {name}, round {r + 1}: {result.rows_per_second:,.0f} rows/s, "
                f"{result.cpu_us_per_row or 0:.1f} µs CPU and {result.bytes_per_row or 0:,.0f} "
                "bytes written per row"
            )
            runs[name].append(result)
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
