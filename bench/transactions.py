"""``python -m bench.transactions``: the CPU of one writer transaction, without HTTP.

Not part of ``make bench``. It makes a Waypost database on SQLite (``synchronous=FULL``) with
the benchmark's activity type and contacts, validates the benchmark's activities, and has the
writer commit them in transactions of ``--jobs`` single-activity requests each, one after
another on this thread: the writer's own ``_transaction``, from ``BEGIN IMMEDIATE`` to the
commit's fsync. It prints the CPU time (user and system) and the wall time per transaction.
Under load the writer's process runs transactions of a few requests each at the maximum
single-activity rate (docs/performance.md): their fixed cost is what this measures, with less
of the machine's noise than a run of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from starlette.testclient import TestClient

from bench import payloads
from waypost.app import create_app
from waypost.bootstrap import bootstrap
from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.pipeline.prepare import prepare
from waypost.pipeline.writer import Writer
from waypost.pipeline.writer_decision import Job
from waypost.settings import load_settings
from waypost.store import migrate


def measure(workdir: Path, jobs: int, transactions: int, warmup: int) -> dict[str, float]:
    """CPU and wall milliseconds per transaction of ``jobs`` single-activity jobs."""
    settings = load_settings(
        {
            "WAYPOST_DATABASE_URL": f"sqlite:///{workdir / 'waypost.db'}",
            "WAYPOST_SQLITE_SYNCHRONOUS": "FULL",
        }
    )
    hub = Hub(settings)
    try:
        migrate.upgrade(hub.store.engine)
        first = bootstrap(hub)
        assert first is not None, "a fresh database is bootstrapped"
        admin = {"Authorization": f"Bearer {first.admin_key.key}"}
        tracking = {"Authorization": f"Bearer {first.tracking_key.key}"}
        with TestClient(create_app(settings, hub=hub)) as client:
            answer = client.post("/api/activity-types", json=payloads.ACTIVITY_TYPE, headers=admin)
            answer.raise_for_status()
            contacts = [
                uuid.UUID(client.post("/tracking/contacts", headers=tracking).json()["contact"])
                for _ in range(payloads.CONTACTS)
            ]
        # The group updates of the server's process are not the writer's work.
        hub.store.on_commit = None
        snapshot = hub.catalog.get()
        channel = snapshot.channels[first.headless.id]
        rng = random.Random(1)  # noqa: S311 - varied test data, not secrets
        limit = settings.max_activity_bytes

        def batch() -> list[Job]:
            now = utcnow()
            return [
                Job(
                    channel,
                    rng.choice(contacts),
                    [prepare(json.dumps(payloads.activity(rng)).encode(), snapshot, now, limit)],
                    now,
                )
                for _ in range(jobs)
            ]

        writer = hub.writer
        assert isinstance(writer, Writer), "the writer of this process stores the transactions"
        for _ in range(warmup):
            writer._transaction(batch())
        batches = [batch() for _ in range(transactions)]
        cpu: list[float] = []
        started = time.perf_counter()
        for one in batches:
            before = time.process_time()
            writer._transaction(one)
            cpu.append(time.process_time() - before)
        wall = time.perf_counter() - started
        failed = [job for one in batches for job in one if job.results[0].status != 202]
        assert not failed, f"{len(failed)} activities were not stored"
    finally:
        hub.close()
    return {
        "cpu_ms_mean": 1000 * statistics.fmean(cpu),
        "cpu_ms_median": 1000 * statistics.median(cpu),
        "wall_ms_mean": 1000 * wall / transactions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transactions", description=__doc__)
    parser.add_argument("--jobs", type=int, default=5, help="requests per transaction (5)")
    parser.add_argument("--transactions", type=int, default=2000, help="measured (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh databases in turn (3)")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 1000:
        parser.error("--jobs must be 1 to 1000")
    if not 10 <= args.transactions <= 100_000:
        parser.error("--transactions must be 10 to 100000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1 to 20")
    print(f"transactions of {args.jobs} single-activity requests, {args.transactions} a round")
    print("round  CPU ms mean  CPU ms median  wall ms mean")
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="waypost-transactions-") as tmp:
            got = measure(Path(tmp), args.jobs, args.transactions, warmup=200)
        print(
            f"{n + 1:>5}  {got['cpu_ms_mean']:>11.3f}  {got['cpu_ms_median']:>13.3f}"
            f"  {got['wall_ms_mean']:>12.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
