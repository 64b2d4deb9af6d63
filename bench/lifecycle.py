"""``python -m bench.lifecycle``: exports and the purge on the database ``bench.scale`` builds
(1M contacts, 10M activities over 60 days; docs/performance.md).

- **Exports**: every activity as NDJSON, CSV and Parquet through Waypost's export service
  (the bytes the API streams, counted, not written), activities/s, and the process's RSS at
  its highest over its RSS before the export (idle).
- **Purge batches**: on a copy of the database whose types all keep one day (so almost every
  activity has expired), a few dozen batches at each ``WAYPOST_PURGE_BATCH_SIZE``: the rows a
  batch settles at, how long each holds the write lock (p50, p99, max) and the rows deleted
  per second, pauses included.
- **Ingest during a purge**: Waypost serving the copy, single activities paced at ``--rate``
  requests/s by wrk: p99 without a purge, then while the purge of the expired activities
  runs at the default batch size. The target: p99 during the purge at most twice the p99
  without.

``--contacts`` and ``--activities`` choose a smaller database to try it (``--contacts 2000
--activities 20000``); a database of the same size under ``--out`` is reused. ``--database``
names one built elsewhere (shared, say): it is only read, to copy it once under ``--out``, and
the exports and the purge run on that copy (removed afterwards). ``--parts exports`` (or
``purge``) runs only that part.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import scale
from bench.harness import Harness, say
from bench.load import RunResult, run_wrk
from bench.payloads import PATH
from bench.servers import Server
from waypost.clock import SystemClock
from waypost.hub import Hub
from waypost.services.exports import ActivityExportQuery
from waypost.services.retention import RetentionService
from waypost.settings import load_settings

# WAYPOST_PURGE_BATCH_SIZE, the most rows a batch deletes (fewer while batches are slow).
BATCH_SIZES = (500, 2_000, 10_000)
BATCHES_PER_SIZE = 30


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def exports(path: Path) -> dict[str, Any]:
    """Every activity in each format, through the export service."""
    hub = Hub(load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}))
    results: dict[str, Any] = {}
    try:
        for fmt in ("ndjson", "csv", "parquet"):
            gc.collect()
            query = ActivityExportQuery(format=fmt)
            export = hub.exports.activities_export(query)
            idle = highest = rss()
            size = 0
            cpu = _cpu()
            started = time.perf_counter()
            for chunk in export.chunks():
                size += len(chunk)
                highest = max(highest, rss())
            seconds = time.perf_counter() - started
            own, workers = (after - before for after, before in zip(_cpu(), cpu, strict=True))
            results[fmt] = {
                "activities": export.rows,
                "seconds": seconds,
                "activities_per_second": export.rows / seconds,
                "bytes": size,
                "rss_idle_mb": idle / 1e6,
                "rss_over_idle_mb": (highest - idle) / 1e6,
                # CPU seconds (user and system) of this process and of the export's worker
                # processes: what the export costs, whatever share of the CPUs it got.
                "cpu_seconds": own,
                "cpu_seconds_workers": workers,
            }
            results[fmt]["load_average"] = os.getloadavg()[0]
            say(
                f"export {fmt}: {export.rows:,} in {seconds:.1f} s "
                f"({export.rows / seconds:,.0f}/s), RSS +{(highest - idle) / 1e6:.0f} MB, "
                f"CPU {own:.1f} s here and {workers:.1f} s in workers, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
    finally:
        hub.close()
    return results


def _cpu() -> tuple[float, float]:
    """CPU seconds so far of this process, and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def expire_everything(path: Path) -> None:
    """Every type keeps one day: nearly all of the 60 days' activities have expired. (The
    scale database's loan calculator type is renamed: the ingest runs create their own.)"""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE activity_types SET retention_days = 1")
        conn.execute(
            "UPDATE activity_types SET name = name || ' (scale)' "
            "WHERE code_name = 'custom_loan_calculator'"
        )


def batches(path: Path) -> dict[str, Any]:
    """A few dozen batches at each size: write-lock time per batch and rows/s."""
    results: dict[str, Any] = {}
    for size in BATCH_SIZES:
        settings = load_settings(
            {"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}, purge_batch_size=size
        )
        hub = Hub(settings)
        service = RetentionService(hub.store, settings, SystemClock(), node="bench")
        stop = threading.Event()
        run = service.purge("command", _stop_after(BATCHES_PER_SIZE, stop), stop)
        hub.close()
        assert run is not None
        timings = sorted(service.batch_seconds)
        deleted = run.activities_deleted
        results[str(size)] = {
            "batches": len(timings),
            "lock_ms_p50": statistics.median(timings) * 1000,
            "lock_ms_p99": _percentile(timings, 0.99) * 1000,
            "lock_ms_max": timings[-1] * 1000,
            "rows_per_batch": deleted / max(len(timings), 1),
            "rows_per_second": deleted / ((run.duration_ms or 1) / 1000),
        }
        say(f"purge batches of {size:,}: {results[str(size)]}")
    return results


def _stop_after(count: int, stop: threading.Event) -> Callable[[str, str, int], None]:
    seen = [0]

    def progress(_what: str, _code: str, _n: int) -> None:
        seen[0] += 1
        if seen[0] >= count:
            stop.set()

    return progress


def _percentile(values: list[float], share: float) -> float:
    """The value ``share`` of the way up ``values`` (0 for none)."""
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)] if ordered else 0.0


def ingest_during_purge(
    path: Path, workdir: Path, rate: float, seconds: float, runs: int
) -> dict[str, Any]:
    """Paced single activities: p99 without a purge, then during one."""
    harness = Harness(workdir, {"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})
    result: dict[str, Any] = {"rate": rate}
    with ExitStack() as stack:
        server = stack.enter_context(
            Server("waypost", ["waypost", "--existing"], workdir, harness.env)
        )
        harness.waypost = server
        server.wait_ready()
        pools = harness.setup()
        url = f"{server.url}{PATH}"
        interval = 1_000_000 / rate

        def paced() -> RunResult:
            found = run_wrk(
                url, pools.single, seconds=seconds, connections=16, interval_us=interval
            )
            if found.errors or found.unanswered:
                raise SystemExit(f"bench.lifecycle: a run failed: {found.as_dict()}")
            return found

        run_wrk(url, pools.single, seconds=2, connections=16, interval_us=interval)  # warm-up
        before = [paced() for _ in range(runs)]
        settings = load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})
        hub = Hub(settings)
        service = RetentionService(hub.store, settings, SystemClock(), node="bench")
        stop = threading.Event()
        purged: list[Any] = []
        thread = threading.Thread(target=lambda: purged.append(service.purge("command", stop=stop)))
        thread.start()
        time.sleep(1.0)
        during = []
        for _ in range(runs):
            if not thread.is_alive():
                break
            during.append(paced())
        stop.set()
        thread.join()
        hub.close()
        run = purged[0] if purged else None
        result["without_purge"] = [r.as_dict() for r in before]
        result["during_purge"] = [r.as_dict() for r in during]
        result["p99_ms_without"] = statistics.median(r.p99_us for r in before) / 1000
        if during:
            result["p99_ms_during"] = statistics.median(r.p99_us for r in during) / 1000
            result["ratio"] = result["p99_ms_during"] / result["p99_ms_without"]
        if run is not None:
            result["purge"] = {
                "status": run.status,
                "deleted": run.activities_deleted,
                "seconds": (run.duration_ms or 0) / 1000,
                "lock_ms_max": max(service.batch_seconds, default=0) * 1000,
                "lock_ms_p99": _percentile(service.batch_seconds, 0.99) * 1000,
                "batches": len(service.batch_seconds),
                # Which batches took longest (their place in the purge), and how long.
                "slowest": sorted(
                    enumerate(round(s * 1000, 1) for s in service.batch_seconds),
                    key=lambda found: -found[1],
                )[:5],
            }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--rate", type=float, default=1_000, help="ingest requests/s (1000)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per ingest run")
    parser.add_argument("--runs", type=int, default=3, help="ingest runs with and without")
    parser.add_argument(
        "--database",
        type=Path,
        help="a database bench.scale built, only read: copied under --out, the copy used",
    )
    parser.add_argument(
        "--parts",
        default="exports,purge",
        help="exports, purge or both (exports,purge): the purge is its batches and the ingest",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"contacts": args.contacts, "activities": args.activities}
    workdir = Path(tempfile.mkdtemp(prefix="waypost-lifecycle-", dir=args.out))
    try:
        if args.database is not None:
            # Never written: SQLite writes a file it opens read-write (its log, a checkpoint
            # on close), and the purge rewrites it.
            path = workdir / "lifecycle.db"
            say(f"copying {args.database} to {path}")
            shutil.copy(args.database, path)
        else:
            path = args.out / f"scale-{args.contacts}-{args.activities}.db"
            if not path.exists():
                scale.build(path, args.contacts, args.activities, seed=7)
        if "exports" in parts:
            results["export"] = exports(path)
        if "purge" in parts:
            if args.database is not None:
                copy = path  # a copy already
            else:
                copy = workdir / "purge.db"
                say(f"copying the database to {copy}")
                shutil.copy(path, copy)
            expire_everything(copy)
            results["purge_batches"] = batches(copy)
            results["ingest_during_purge"] = ingest_during_purge(
                copy, workdir, args.rate, args.seconds, args.runs
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (args.out / "lifecycle.json").write_text(json.dumps(results, indent=2))
    report(results, args.contacts, args.activities, args.rate)
    print(f"Results written to {args.out / 'lifecycle.json'}")
    return 0


def report(results: dict[str, Any], contacts: int, activities: int, rate: float) -> None:
    """The figures against their targets."""
    print(f"SQLite, {contacts:,} contacts, {activities:,} activities")
    for fmt, figures in results.get("export", {}).items():
        speed = figures["activities_per_second"]
        grown = figures["rss_over_idle_mb"]
        print(
            f"  export {fmt:8} {speed:>10,.0f} activities/s (target >= 200,000: "
            f"{'met' if speed >= 200_000 else 'MISSED'}), RSS +{grown:.0f} MB "
            f"(target <= 100 MB: {'met' if grown <= 100 else 'MISSED'})"
        )
    if "purge_batches" not in results:
        return
    for size, figures in results["purge_batches"].items():
        print(
            f"  purge, batches of at most {int(size):>6,}: {figures['rows_per_batch']:,.0f} rows "
            f"a batch, write lock {figures['lock_ms_p50']:.1f} ms p50, "
            f"{figures['lock_ms_p99']:.1f} ms p99; {figures['rows_per_second']:,.0f} rows/s"
        )
    ingest = results["ingest_during_purge"]
    if "ratio" in ingest:
        print(
            f"  ingest p99 at {rate:,.0f} requests/s: {ingest['p99_ms_without']:.1f} ms "
            f"without a purge, {ingest['p99_ms_during']:.1f} ms during one, "
            f"x{ingest['ratio']:.2f} (target <= 2: {'met' if ingest['ratio'] <= 2 else 'MISSED'})"
        )
    else:
        print("  ingest during a purge: the purge ended before a run; use a larger database")


if __name__ == "__main__":
    raise SystemExit(main())
