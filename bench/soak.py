"""``python -m bench.soak`` (``make soak``): a steady rate of single activities for a long time.

One Waypost server (``bench.serve``, as ``make bench`` runs it) on a fresh SQLite database, or
on the PostgreSQL database ``--database-url`` names, gets ``--rate`` single activities a second
for ``--minutes`` minutes on a fixed schedule. Latency is measured from each request's slot in
the schedule, so a stall also counts against the requests queued behind it. Each minute prints
p50, p99 and max latency, the server's resident memory and its open file descriptors. At the end
the run is judged:

- every minute after the first five with a p99 within ``--p99-factor`` (1.2) times the p99 of
  the first five minutes (all their requests together);
- memory and descriptors flat: the last minute within 10% (memory) and 8 descriptors of the
  highest value of the first five minutes;
- stored == acknowledged: the activities in the database equal the 202 results.

Requests slower than ``--slow-ms`` are listed with the time they were sent; with ``--spy`` a
``py-spy dump`` of the server is taken while such a request is outstanding (``pip install
py-spy``), which shows what the server was doing during the stall. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import payloads
from bench.harness import BenchFailure, Harness, say
from bench.report import median
from bench.servers import Server, ServerError

BASELINE_MINUTES = 5
MEMORY_GROWTH = 1.10
FD_GROWTH = 8


@dataclass(frozen=True)
class Options:
    rate: float
    minutes: float
    connections: int
    database_url: str | None
    p99_factor: float
    slow_ms: float
    spy: bool
    out: Path
    keep: bool


@dataclass
class Minute:
    """What one minute of the soak saw."""

    index: int
    latencies_ms: list[float] = field(default_factory=list)
    # From the moment the request was sent, not its slot: without the load generator's lag.
    service_ms: list[float] = field(default_factory=list)
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    rss_mb: float = 0.0
    fds: int = 0
    lag_ms: float = 0.0
    fsync_ms: list[float] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        return _quantile(self.latencies_ms, q)

    def as_dict(self) -> dict[str, Any]:
        return {
            "minute": self.index + 1,
            "sent": self.sent,
            "accepted": self.accepted,
            "failed": self.failed,
            "p50_ms": round(self.quantile(0.50), 2),
            "p99_ms": round(self.quantile(0.99), 2),
            "max_ms": round(max(self.latencies_ms, default=0.0), 2),
            "p99_from_send_ms": round(_quantile(self.service_ms, 0.99), 2),
            "rss_mb": round(self.rss_mb, 1),
            "fds": self.fds,
            "sender_lag_ms": round(self.lag_ms, 2),
            "fsync_p99_ms": round(_quantile(self.fsync_ms, 0.99), 2),
            "fsync_max_ms": round(max(self.fsync_ms, default=0.0), 2),
        }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Send a steady rate of single activities to Waypost and watch it per minute.",
    )
    add = parser.add_argument
    add("--rate", type=float, default=100.0, help="activities a second (100)")
    add("--minutes", type=float, default=30.0, help="how long (30)")
    add("--connections", type=int, default=16, help="client connections (16)")
    add(
        "--database-url",
        default=None,
        help="a PostgreSQL database to soak on (emptied first; default: a fresh SQLite file)",
    )
    add("--p99-factor", type=float, default=1.2, help="allowed p99 over the first 5 minutes")
    add("--slow-ms", type=float, default=250.0, help="list requests slower than this (250)")
    add("--spy", action="store_true", help="py-spy dump the server during slow requests")
    add("--out", type=Path, default=Path("bench-results/soak.json"), help="results file")
    add("--keep", action="store_true", help="keep the temporary directory and server log")
    ns = parser.parse_args(argv)
    if not 0 < ns.rate <= 5000:
        parser.error("--rate must be over 0 and at most 5000")
    if not 0 < ns.minutes <= 24 * 60:
        parser.error("--minutes must be over 0 and at most 1440")
    if not 1 <= ns.connections <= 1000:
        parser.error("--connections must be 1 to 1000")
    return Options(**vars(ns))


class Process:
    """The server's resident memory and open descriptors, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


class Spy:
    """``py-spy dump --nonblocking`` of the server while a request is slow: at most one at a
    time and one every ``GAP`` seconds, so that the dumps never become the stall they look
    for (a blocking dump stops the server while it reads its stacks)."""

    GAP = 5.0

    def __init__(self, pid: int, workdir: Path, enabled: bool) -> None:
        self.pid = pid
        self.path = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.enabled = enabled and Path(self.path).exists()
        self.dumps = workdir / "py-spy-dumps.txt"
        self.busy = False
        self.taken = 0
        self.last = 0.0
        if enabled and not self.enabled:
            say("py-spy is not installed (pip install py-spy): no dumps during stalls")

    async def dump(self, why: str) -> None:
        if not self.enabled or self.busy or time.monotonic() - self.last < self.GAP:
            return
        self.busy, self.last = True, time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                self.path,
                "dump",
                "--nonblocking",
                "--pid",
                str(self.pid),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
            self.taken += 1
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            with self.dumps.open("a") as out:
                out.write(f"==== {stamp} {why}\n{output.decode(errors='replace')}\n")
        finally:
            self.busy = False


class FsyncProbe:
    """4 KB write + fdatasync beside the database every ``PERIOD`` seconds, on a thread: how
    long the disk took to make a write durable, minute by minute. A latency spike that the
    probe shares is the disk's (another process's I/O), not the server's."""

    PERIOD = 0.1

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "fsync-probe"
        self.timings: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while not self.stopped.wait(self.PERIOD):
                started = time.perf_counter()
                os.pwrite(fd, b"\0" * 4096, 0)
                os.fdatasync(fd)
                self.timings.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)

    def take(self) -> list[float]:
        taken, self.timings = self.timings, []
        return taken


class Soak:
    """The schedule, the requests in flight, and the minutes they fall into."""

    def __init__(
        self, options: Options, server: Server, pool: list[bytes], headers: dict[str, str]
    ):
        self.options = options
        self.server = server
        self.pool = pool
        self.headers = headers
        self.process = Process(server.pid)
        self.probe = FsyncProbe(server.log_path.parent)
        self.spy = Spy(server.pid, server.log_path.parent, options.spy)
        self.minutes: list[Minute] = []
        self.slow: list[dict[str, Any]] = []
        self.accepted = 0
        self.stopping = False

    def minute(self, index: int) -> Minute:
        while len(self.minutes) <= index:
            self.minutes.append(Minute(len(self.minutes)))
        return self.minutes[index]

    async def run(self) -> None:
        o = self.options
        limits = httpx.Limits(
            max_connections=o.connections, max_keepalive_connections=o.connections
        )
        interval = 1.0 / o.rate
        total = int(o.minutes * 60 * o.rate)
        per_minute = o.rate * 60
        semaphore = asyncio.Semaphore(o.connections * 4)
        # Ctrl-C or SIGTERM ends the schedule early: the minutes so far are still reported.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop)
        async with httpx.AsyncClient(
            base_url=self.server.url, limits=limits, timeout=60, headers=self.headers
        ) as client:
            self.probe.thread.start()
            started = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            next_report = 1
            for i in range(total):
                if self.stopping:
                    break
                slot = started + i * interval
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                # A minute is reported as the next one starts (the last one once all answered).
                if i >= next_report * per_minute:
                    self._sample(self.minute(next_report - 1))
                    next_report += 1
                lag = max(0.0, time.monotonic() - slot)
                minute = self.minute(int(i // per_minute))
                minute.lag_ms = max(minute.lag_ms, lag * 1000)
                await semaphore.acquire()
                task = asyncio.create_task(self._send(client, i, slot, started, minute, semaphore))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
            self._sample(self.minute(len(self.minutes) - 1))
            self.probe.stopped.set()

    def stop(self) -> None:
        say("stopping early")
        self.stopping = True

    async def _send(
        self,
        client: httpx.AsyncClient,
        i: int,
        slot: float,
        started: float,
        minute: Minute,
        semaphore: asyncio.Semaphore,
    ) -> None:
        body = self.pool[i % len(self.pool)]
        watcher = asyncio.create_task(self._watch(slot))
        sent = time.monotonic()
        try:
            answer = await client.post(payloads.PATH, content=body)
            ok = answer.status_code == 207 and answer.json()["results"][0]["status"] == 202
        except httpx.HTTPError:
            ok = False
        finally:
            watcher.cancel()
            semaphore.release()
        now = time.monotonic()
        took_ms = (now - slot) * 1000
        minute.sent += 1
        minute.latencies_ms.append(took_ms)
        minute.service_ms.append((now - sent) * 1000)
        if ok:
            minute.accepted += 1
            self.accepted += 1
        else:
            minute.failed += 1
        if took_ms > self.options.slow_ms:
            self.slow.append({"at_s": round(slot - started, 3), "ms": round(took_ms, 1)})

    async def _watch(self, slot: float) -> None:
        """Dump the server's stacks once this request has waited ``--slow-ms``."""
        await asyncio.sleep(max(0.0, slot + self.options.slow_ms / 1000 - time.monotonic()))
        await self.spy.dump(f"a request waiting {self.options.slow_ms:g} ms")

    def _sample(self, minute: Minute) -> None:
        self.server.check_alive()
        minute.rss_mb = self.process.rss_mb()
        minute.fds = self.process.fds()
        minute.fsync_ms = self.probe.take()
        row = minute.as_dict()
        say(
            f"minute {row['minute']:3d}: {row['sent']:5d} sent, {row['failed']} failed, "
            f"p50 {row['p50_ms']:7.2f} ms, p99 {row['p99_ms']:8.2f} ms, "
            f"max {row['max_ms']:8.1f} ms (p99 from send {row['p99_from_send_ms']:.1f}), "
            f"RSS {row['rss_mb']:6.1f} MB, {row['fds']} fds; "
            f"disk fsync p99 {row['fsync_p99_ms']:.1f} max {row['fsync_max_ms']:.0f} ms, "
            f"sender lag {row['sender_lag_ms']:.0f} ms"
        )


def judge(minutes: list[Minute], factor: float) -> list[dict[str, Any]]:
    """The soak's checks, each with its figures and whether it holds."""
    first = minutes[:BASELINE_MINUTES]
    rest = minutes[BASELINE_MINUTES:] or minutes[-1:]
    first_p99 = _quantile([x for m in first for x in m.latencies_ms], 0.99)
    worst = max(rest, key=lambda m: m.quantile(0.99))
    first_rss = max(m.rss_mb for m in first)
    first_fds = max(m.fds for m in first)
    last = minutes[-1]
    return [
        {
            "check": f"later minutes' p99 <= {factor:g} x the first {len(first)} minutes' p99",
            "first_p99_ms": round(first_p99, 2),
            "worst_minute": worst.index + 1,
            "worst_p99_ms": round(worst.quantile(0.99), 2),
            "ok": all(m.quantile(0.99) <= factor * first_p99 for m in rest),
        },
        {
            "check": "memory flat",
            "first_rss_mb": round(first_rss, 1),
            "last_rss_mb": round(last.rss_mb, 1),
            "ok": last.rss_mb <= first_rss * MEMORY_GROWTH,
        },
        {
            "check": "file descriptors flat",
            "first_fds": first_fds,
            "last_fds": last.fds,
            "ok": last.fds <= first_fds + FD_GROWTH,
        },
        {
            "check": "no failed request",
            "failed": sum(m.failed for m in minutes),
            "ok": all(m.failed == 0 for m in minutes),
        },
    ]


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    workdir = Path(tempfile.mkdtemp(prefix="waypost-soak-"))
    env = {"WAYPOST_DATABASE_URL": options.database_url} if options.database_url else {}
    harness = Harness(workdir, env)
    document: dict[str, Any] = {
        "benchmark": "waypost soak",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
    }
    failure: str | None = None
    soak: Soak | None = None
    try:
        with ExitStack() as stack:
            if options.database_url:
                from bench.postgres import reset_database

                reset_database(options.database_url)
            server = harness.start_waypost(stack)
            server.wait_ready()
            harness.setup()
            info = server.info
            pool = payloads.pool(info["tracking_key"], info["channel"], harness.contacts, 1, seed=3)
            soak = Soak(options, server, pool.bodies, pool.headers)
            say(
                f"{options.rate:g} activities/s for {options.minutes:g} minutes "
                f"on {harness.database_kind()}; log and database in {workdir}"
            )
            before = harness.stored()
            asyncio.run(soak.run())
            stored = harness.stored() - before
            document["stored_check"] = {"acknowledged": soak.accepted, "stored": stored}
            if stored != soak.accepted:
                raise BenchFailure(
                    f"STORED {stored} activities but ACKNOWLEDGED {soak.accepted} with 202"
                )
    except (BenchFailure, ServerError) as exc:
        failure = str(exc)
    finally:
        if options.keep or failure is not None or options.spy:
            say(f"kept {workdir} (database, server log, py-spy dumps)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    document["failure"] = failure
    checks: list[dict[str, Any]] = []
    if soak is not None and soak.minutes:
        document["minutes"] = [m.as_dict() for m in soak.minutes]
        document["slow_requests"] = soak.slow
        checks = judge(soak.minutes, options.p99_factor)
        document["checks"] = checks
        document["p50_ms_median"] = median([m.quantile(0.5) for m in soak.minutes])
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(document, indent=2) + "\n")
    if failure is not None:
        print(f"\nSOAK FAILED: {failure}\n(partial results in {options.out})", file=sys.stderr)
        return 1
    print()
    for check in checks:
        figures = ", ".join(f"{k} {v}" for k, v in check.items() if k not in ("check", "ok"))
        print(f"{'ok  ' if check['ok'] else 'MISS'} {check['check']}: {figures}")
    counted: dict[str, int] | None = document.get("stored_check")
    if counted is not None:
        print(
            f"Stored == acknowledged: {counted['stored']:,} stored, "
            f"{counted['acknowledged']:,} 202s."
        )
    if soak is not None and soak.slow:
        worst = sorted(soak.slow, key=lambda s: -s["ms"])[:20]
        shown = ", ".join(f"{s['ms']:.0f} ms at {s['at_s']:.0f} s" for s in worst)
        print(f"{len(soak.slow)} requests over {options.slow_ms:g} ms; the slowest: {shown}")
    print(f"Results written to {options.out}")
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
