"""``python -m bench.reports``: the reports of docs/reports.md on the database ``bench.scale``
builds (1M contacts, 10M activities over 60 days; docs/performance.md), through the report
service (``POST /api/reports/run`` does nothing more than decode and encode around it).

The activities ``bench.scale`` loads carry no field values, so the reports run on a copy
(made once under ``--out`` and reused) whose ``custom_loan_calculator`` type declares
``amount`` (decimal) and ``term`` (integer), and whose loan calculations of the last 31 days
carry them: amounts in steps of 500 from 1,000 to 100,000 (a calculator's slider) and terms of
12 to 84 months. The file ``bench.scale`` built is only read.

Timed, each warm (the best of ``--runs`` after a first run) and cold (the first run):

- counts and unique contacts per day and type over 90 days (target <= 300 ms);
- a breakdown of the loan terms, and the sum, average, min and max of the amounts per day, over
  30 days of the loan calculations (target <= 1 s each); and the breakdown with the unique
  contacts of each term (no target: it reads every loan calculation);
- a 3-step funnel over 30 days: a page visit, a loan calculation, a data input within 7 days
  (target <= 2 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from waypost.domain.report_definitions import ReportDefinition, ReportResult
from waypost.hub import Hub
from waypost.settings import load_settings
from waypost.store import make_engine, migrate

# Seconds; None: measured beside the others, with no target of its own.
TARGETS: dict[str, float | None] = {
    "counts_90_days": 0.3,
    "breakdown_30_days": 1.0,
    "breakdown_contacts_30_days": None,
    "sum_30_days": 1.0,
    "funnel_30_days": 2.0,
}
LOAN = "custom_loan_calculator"


def prepare(source: Path, copy: Path) -> None:
    """A copy of ``source`` whose loan calculations of the last 31 days carry fields."""
    if copy.exists():
        return
    partial = copy.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    sys.stderr.write(f"copying {source} to {copy} (once)...\n")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial, isolation_level=None)
    src.backup(dst, pages=65536)
    src.close()
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=OFF")
    (type_id,) = dst.execute(
        "SELECT id FROM activity_types WHERE code_name = ?", (LOAN,)
    ).fetchone()
    (latest,) = dst.execute("SELECT max(occurred_at) FROM activities").fetchone()
    since = (dt.datetime.fromisoformat(latest) - dt.timedelta(days=31)).isoformat(" ")
    dst.execute("BEGIN")
    dst.executemany(
        "INSERT INTO activity_type_fields (id, type_id, position, name, data_type, required, "
        "is_primary, description, max_length) VALUES (?, ?, ?, ?, ?, 0, 0, '', NULL)",
        [
            (uuid.uuid4().hex, type_id, 0, "amount", "decimal"),
            (uuid.uuid4().hex, type_id, 1, "term", "integer"),
        ],
    )
    dst.execute(
        "UPDATE activities SET fields = json_object("
        "'amount', CAST(1000 + 500 * (abs(random()) % 199) AS TEXT), "
        "'term', 12 * (1 + abs(random()) % 7)) "
        "WHERE type_id = ? AND occurred_at >= ?",
        (type_id, since),
    )
    dst.execute("COMMIT")
    dst.close()
    # The report rollups (migration 0019 and later) are filled as the migration fills them:
    # summed in SQL from the rollups per contact and from the activities' field values.
    sys.stderr.write("migrating the copy, filling the report rollups...\n")
    upgrade_copy(partial)
    dst = sqlite3.connect(partial, isolation_level=None)
    dst.execute("ANALYZE")
    dst.close()
    partial.rename(copy)


def upgrade_copy(path: Path) -> None:
    """Bring a copy to the current schema (a copy made by an older version of this bench)."""
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def definitions(today: dt.date) -> dict[str, dict[str, Any]]:
    month = {"since": (today - dt.timedelta(days=29)).isoformat(), "until": today.isoformat()}
    return {
        "counts_90_days": {
            "kind": "counts",
            "since": (today - dt.timedelta(days=89)).isoformat(),
            "until": today.isoformat(),
        },
        "breakdown_30_days": {"kind": "breakdown", "types": [LOAN], "field": "term", **month},
        "breakdown_contacts_30_days": {
            "kind": "breakdown",
            "types": [LOAN],
            "field": "term",
            "contacts": True,
            **month,
        },
        "sum_30_days": {"kind": "numeric", "types": [LOAN], "field": "amount", **month},
        "funnel_30_days": {
            "kind": "funnel",
            "steps": [{"type": "pagevisit"}, {"type": LOAN}, {"type": "datainput"}],
            "window_days": 7,
            **month,
        },
    }


def measure(hub: Hub, definition: dict[str, Any], runs: int) -> tuple[float, float, ReportResult]:
    body = msgspec.convert(definition, ReportDefinition)
    seconds = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = hub.reports.run(body)
        seconds.append(time.perf_counter() - started)
    assert result is not None
    return seconds[0], min(seconds[1:] or seconds), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", help="One report: " + ", ".join(TARGETS))
    parser.add_argument(
        "--source", type=Path, help="The bench.scale database (default: its name under --out)"
    )
    args = parser.parse_args(argv)
    source = args.source or args.out / f"scale-{args.contacts}-{args.activities}.db"
    if not source.exists():
        raise SystemExit(f"{source} does not exist: run python -m bench.scale first")
    copy = args.out / f"reports-{args.contacts}-{args.activities}.db"
    prepare(source, copy)
    upgrade_copy(copy)
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{copy}"}))
    with hub.store.read() as conn:
        latest = conn.exec_driver_sql("SELECT max(day) FROM activity_daily_counts").scalar_one()
    today = dt.date.fromisoformat(str(latest))
    results: dict[str, Any] = {"contacts": args.contacts, "activities": args.activities}
    print(f"SQLite, {args.contacts:,} contacts, {args.activities:,} activities, up to {today}")
    for name, definition in definitions(today).items():
        if args.only and name != args.only:
            continue
        cold, warm, result = measure(hub, definition, args.runs)
        target = TARGETS[name]
        results[name] = {
            "cold_seconds": cold,
            "warm_seconds": warm,
            "source": result.source,
            "rows": len(result.rows),
        }
        if target is None:
            verdict = "no target"
        else:
            met = "met" if warm <= target else "MISSED"
            verdict = f"target <= {target * 1000:.0f} ms: {met}"
        print(
            f"  {name:18} {warm * 1000:8.0f} ms warm, {cold * 1000:8.0f} ms cold, "
            f"from {result.source} ({verdict})"
        )
        if name == "funnel_30_days":
            print(f"    {result.rows}")
    hub.close()
    (args.out / "reports.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
