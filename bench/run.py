"""``python -m bench``: alternate runs of the bare baseline and Waypost, then raw SQLite.

Phases, in one run on one machine:

1. single activities: baseline, Waypost, baseline, Waypost ... (``--rounds`` each);
2. 100-activity batches: baseline, Waypost, raw ``executemany`` into Waypost's schema, raw
   ``executemany`` into the physical floor's table (bench/raw.py) ... (``--rounds`` each);
3. single activities paced at half Waypost's measured maximum: Waypost, then the baseline, at
   the same rate.

Every run is checked (see Harness.measure); the first failed check stops the benchmark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.harness import BenchFailure, Harness, say
from bench.load import LoadError, RunResult, wrk_path
from bench.raw import FLOOR_PAYLOAD_BYTES, FloorTarget, RawResult, RawTarget
from bench.report import median, table, targets
from bench.servers import ServerError
from waypost.settings import load_settings

# How many of the newest activities Waypost stored the raw runs cycle through.
RAW_SOURCE_ROWS = 50_000
# Warn when other processes took more than this share of the CPUs during a run.
FOREIGN_WARNING = 0.10


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: float
    warmup_seconds: float
    connections: int
    batch_connections: int
    raw_seconds: float
    latency_seconds: float
    latency_connections: int
    out: Path
    keep: bool
    writer_in_server: bool = False


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Measure Waypost's ingest against its baselines."
    )
    add = parser.add_argument
    add("--rounds", type=int, default=4, help="A/B rounds per phase (default 4)")
    add("--seconds", type=float, default=5.0, help="seconds per measured run (5)")
    add("--warmup-seconds", type=float, default=2.0, help="seconds per warm-up run (2)")
    add("--connections", type=int, default=64, help="connections, single activities (64)")
    add("--batch-connections", type=int, default=16, help="connections, batches (16)")
    add("--raw-seconds", type=float, default=3.0, help="insert seconds per raw run (3)")
    add("--latency-seconds", type=float, default=8.0, help="seconds per paced run (8)")
    add("--latency-connections", type=int, default=64, help="connections, paced runs (64)")
    add("--out", type=Path, default=Path("bench-results/ingest.json"), help="results file")
    add("--keep", action="store_true", help="keep the temporary directory and server logs")
    add(
        "--writer-in-server",
        action="store_true",
        help="run Waypost's writer as a thread of the server's process, not in a process of its "
        "own (WAYPOST_WRITER_PROCESS=0)",
    )
    ns = parser.parse_args(argv)
    for name in ("rounds", "connections", "batch_connections", "latency_connections"):
        if not 1 <= getattr(ns, name) <= 1000:
            parser.error(f"--{name.replace('_', '-')} must be 1 to 1000")
    for name in ("seconds", "warmup_seconds", "raw_seconds", "latency_seconds"):
        if not 0 < getattr(ns, name) <= 120:
            parser.error(f"--{name.replace('_', '-')} must be over 0 and at most 120")
    return Options(**vars(ns))


def layout_env(writer_in_server: bool) -> dict[str, str]:
    """How Waypost runs in the benchmark: by default with its writer in a process of its own
    (``WAYPOST_WRITER_PROCESS=1``), the layout for a machine of two cores or more."""
    return {"WAYPOST_WRITER_PROCESS": "0" if writer_in_server else "1"}


def run_phases(options: Options, harness: Harness, stack: ExitStack) -> dict[str, Any]:
    """Start the servers, run every phase, and return the summary (see report.targets)."""
    o = options
    base1 = harness.start_baseline(stack, 1)
    base100 = harness.start_baseline(stack, 100)
    waypost = harness.start_waypost(stack)
    for server in (base1, base100, waypost):
        server.wait_ready()
    pools = harness.setup()
    measure = harness.measure

    say("warming up")
    measure(base1, pools.single, 1, o.connections, o.warmup_seconds)
    measure(waypost, pools.single, 1, o.connections, o.warmup_seconds)
    measure(base100, pools.batch, 100, o.batch_connections, o.warmup_seconds)
    measure(waypost, pools.batch, 100, o.batch_connections, o.warmup_seconds)

    single: dict[str, list[RunResult]] = {"baseline": [], "waypost": []}
    for r in range(o.rounds):
        say(f"single activities, round {r + 1} of {o.rounds}")
        single["baseline"].append(measure(base1, pools.single, 1, o.connections, o.seconds))
        single["waypost"].append(measure(waypost, pools.single, 1, o.connections, o.seconds))

    raw_settings = load_settings(
        {}, database_url=f"sqlite:///{harness.workdir / 'raw.db'}", sqlite_synchronous="FULL"
    )
    raw_target = RawTarget(raw_settings, str(harness.db_path))
    stack.callback(raw_target.close)
    floor_target = FloorTarget(harness.workdir / "floor.db")
    stack.callback(floor_target.close)
    batch: dict[str, list[RunResult]] = {"baseline": [], "waypost": []}
    raw: list[RawResult] = []
    floor: list[RawResult] = []
    for r in range(o.rounds):
        say(f"100-activity batches, round {r + 1} of {o.rounds}")
        batch["baseline"].append(measure(base100, pools.batch, 100, o.batch_connections, o.seconds))
        batch["waypost"].append(measure(waypost, pools.batch, 100, o.batch_connections, o.seconds))
        raw_target.load_rows(RAW_SOURCE_ROWS)
        raw.append(raw_target.run(o.raw_seconds))
        floor.append(floor_target.run(o.raw_seconds))
    for name, target, results in (("raw", raw_target, raw), ("floor", floor_target, floor)):
        found, inserted = target.count(), sum(x.rows for x in results)
        if found != inserted:
            raise BenchFailure(f"{name}: {found} rows in the database, {inserted} inserted")

    single_stats = {k: _stats(v, 1) for k, v in single.items()}
    rate = single_stats["waypost"]["rps"] / 2
    interval_us = 1_000_000 / rate
    say(f"single activities paced at {rate:,.0f} requests/s")
    paced = {
        "waypost": measure(
            waypost, pools.single, 1, o.latency_connections, o.latency_seconds, interval_us
        ),
        "baseline": measure(
            base1, pools.single, 1, o.latency_connections, o.latency_seconds, interval_us
        ),
    }

    batch_stats = {k: _stats(v, 100) for k, v in batch.items()}
    raw_rate = median([x.rows_per_second for x in raw])
    floor_rate = median([x.rows_per_second for x in floor])
    paced_stats = {k: _stats([v], 1) for k, v in paced.items()}
    return {
        "single": {
            **single_stats,
            "ratio": single_stats["waypost"]["rps"] / single_stats["baseline"]["rps"],
            "connections": o.connections,
        },
        "batch": {
            **batch_stats,
            "ratio": batch_stats["waypost"]["rps"] / batch_stats["baseline"]["rps"],
            "raw_ratio": batch_stats["waypost"]["activities_per_second"] / raw_rate,
            "floor_ratio": batch_stats["waypost"]["activities_per_second"] / floor_rate,
            "connections": o.batch_connections,
        },
        "raw": {
            "rows_per_second": raw_rate,
            "rows_per_transaction": 100,
            "pragmas": raw_target.pragmas,
            "rounds": [x.as_dict() for x in raw],
        },
        "floor": {
            "rows_per_second": floor_rate,
            "rows_per_transaction": 100,
            "payload_bytes": FLOOR_PAYLOAD_BYTES,
            "pragmas": floor_target.pragmas,
            "rounds": [x.as_dict() for x in floor],
        },
        "latency": {
            "rate": rate,
            "connections": o.latency_connections,
            **paced_stats,
            # The bare app's p99 is microseconds; a floor of 1 µs keeps the ratio finite.
            "p99_vs_baseline": paced_stats["waypost"]["p99_ms"]
            / max(paced_stats["baseline"]["p99_ms"], 0.001),
        },
        "waypost_settings": waypost.info["settings"],
        "server": waypost.info["server"],
    }


def _stats(runs: list[RunResult], per_request: int) -> dict[str, Any]:
    rps = median([r.requests_per_second for r in runs])
    cpu = [r.server_cpu_per_request_us for r in runs if r.server_cpu_per_request_us is not None]
    http = [r.http_cpu_per_request_us for r in runs if r.http_cpu_per_request_us is not None]
    return {
        "rps": rps,
        "activities_per_second": rps * per_request,
        "p50_ms": median([r.p50_us for r in runs]) / 1000,
        "p99_ms": median([r.p99_us for r in runs]) / 1000,
        "server_cpu_us_per_request": median(cpu) if cpu else None,
        "http_cpu_us_per_request": median(http) if http else None,
        "rounds": [r.as_dict() for r in runs],
    }


def machine(workdir: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    wrk = subprocess.run(  # noqa: S603 - the wrk found on PATH, fixed argument
        [wrk_path(), "-v"], capture_output=True, text=True, check=False
    )
    wrk_output = (wrk.stdout or wrk.stderr).strip()
    cpu = ""
    with open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": version("uvicorn"),
        "wrk": wrk_output.splitlines()[0].split(" Copyright")[0] if wrk_output else "",
        "filesystem": _filesystem(workdir),
        "fsync_4k_ms": fsync_probe(workdir),
    }


def fsync_probe(workdir: Path, count: int = 50) -> dict[str, float]:
    """Write 4 KB and fdatasync, ``count`` times: what one durable commit costs at least."""
    timings: list[float] = []
    path = workdir / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fdatasync(fd)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    timings.sort()
    return {
        "p50": round(median(timings), 2),
        "p99": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2),
    }


def _filesystem(path: Path) -> str:
    best, kind = "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return f"{kind} ({best})" if best else kind


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        wrk_path()
    except LoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="waypost-bench-"))
    harness = Harness(workdir, layout_env(options.writer_in_server))
    document: dict[str, Any] = {
        "benchmark": "waypost ingest",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(workdir),
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
            say(f"kept {workdir} (databases and server logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    shares = [r.foreign_cpu_share for r in harness.results if r.foreign_cpu_share is not None]
    document["foreign_cpu_share"] = {
        "max": max(shares, default=None),
        "median": median(shares) if shares else None,
    }
    acknowledged = sum(c["acknowledged"] for c in harness.checks)
    stored = sum(c["stored"] for c in harness.checks)
    document["stored_check"] = {
        "ok": failure is None and acknowledged == stored,
        "acknowledged": acknowledged,
        "stored": stored,
        "runs": harness.checks,
    }
    judged = targets(document) if failure is None else []
    document["targets"] = [t.as_dict() for t in judged]
    document["failure"] = failure
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(document, indent=2) + "\n")
    if failure is not None:
        print(f"\nBENCHMARK FAILED: {failure}\n(partial results in {options.out})", file=sys.stderr)
        return 1
    print()
    print(_header(document))
    print(table(document, judged))
    print(
        f"\nStored == acknowledged: {stored:,} activities in the database, "
        f"{acknowledged:,} 202 results, over {len(harness.checks)} Waypost runs."
    )
    if shares and max(shares) > FOREIGN_WARNING:
        print(
            f"\nWARNING: other processes used up to {max(shares):.0%} of the machine's CPU "
            f"during a run (median {median(shares):.0%}); the figures are noisier than usual."
        )
    print(f"Results written to {options.out}")
    return 0


def _header(document: dict[str, Any]) -> str:
    m, s = document["machine"], document["server"]
    sync = document["waypost_settings"]["sqlite_synchronous"]
    return (
        f"Waypost ingest benchmark, {document['started_at']}: {m['cpus']} CPUs ({m['cpu_model']}), "
        f"Python {m['python']}, uvicorn {m['uvicorn']} (1 worker, {s['loop']}, {s['http']}), "
        f"{m['wrk']}, SQLite {m['sqlite']} WAL synchronous={sync} on {m['filesystem']}; "
        f"4 KB write+fdatasync p50 {m['fsync_4k_ms']['p50']} ms, p99 {m['fsync_4k_ms']['p99']} ms\n"
    )
