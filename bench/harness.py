"""The servers under test, their setup, and one measured run with its checks."""

from __future__ import annotations

import os
import resource
import sqlite3
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench import payloads, postgres
from bench.load import RunResult, run_wrk
from bench.servers import Server


class BenchFailure(RuntimeError):
    """The benchmark's own checks failed: its figures cannot be trusted."""


@dataclass(frozen=True)
class Pools:
    """The request pools, written as Lua files for wrk."""

    single: Path
    batch: Path


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used (and other VMs stole), from /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


class Harness:
    """Waypost on a fresh SQLite database in ``workdir``, and the runs measured against it.

    After every run against Waypost the activities in its database are counted: the rows
    stored must equal the 202 results wrk received, or the run fails with BenchFailure.
    """

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.db_path = workdir / "waypost.db"
        self.contacts: list[str] = []
        self.env = {
            "WAYPOST_DATABASE_URL": f"sqlite:///{self.db_path}",
            "WAYPOST_SQLITE_SYNCHRONOUS": "FULL",
            "WAYPOST_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.checks: list[dict[str, Any]] = []
        self.results: list[RunResult] = []
        self.waypost: Server | None = None

    def start_waypost(self, stack: ExitStack) -> Server:
        server = stack.enter_context(Server("waypost", ["waypost"], self.workdir, self.env))
        self.waypost = server
        return server

    def start_baseline(self, stack: ExitStack, results: int) -> Server:
        args = ["baseline", "--results", str(results)]
        return stack.enter_context(Server(f"baseline-{results}", args, self.workdir))

    def setup(self) -> Pools:
        """Create the activity type and the contacts; write the request pools."""
        assert self.waypost is not None
        info = self.waypost.info
        admin = {"Authorization": f"Bearer {info['admin_key']}"}
        tracking = {"Authorization": f"Bearer {info['tracking_key']}"}
        with httpx.Client(base_url=self.waypost.url, timeout=30) as client:
            answer = client.post("/api/activity-types", json=payloads.ACTIVITY_TYPE, headers=admin)
            if answer.status_code != 201:
                raise BenchFailure(f"could not create the activity type: {answer.text}")
            contacts: list[str] = []
            for _ in range(payloads.CONTACTS):
                answer = client.post("/tracking/contacts", headers=tracking)
                if answer.status_code != 200:
                    raise BenchFailure(f"could not create a contact: {answer.text}")
                contacts.append(answer.json()["contact"])
        self.contacts = contacts
        key, channel = info["tracking_key"], info["channel"]
        single = payloads.pool(key, channel, contacts, 1, seed=1)
        batch = payloads.pool(key, channel, contacts, 100, seed=2)
        return Pools(
            single.write_lua(self.workdir / "single.lua"),
            batch.write_lua(self.workdir / "batch.lua"),
        )

    @property
    def database_url(self) -> str:
        return self.env["WAYPOST_DATABASE_URL"]

    def database_kind(self) -> str:
        return "SQLite" if self.database_url.startswith("sqlite") else "PostgreSQL"

    def stored(self) -> int:
        """The activities in Waypost's database."""
        if not self.database_url.startswith("sqlite"):
            return postgres.count_activities(self.database_url)
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as conn:
            found: int = conn.execute("SELECT COUNT(*) FROM activities").fetchone()[0]
        return found

    def measure(
        self,
        server: Server,
        pool_file: Path,
        per_request: int,
        connections: int,
        seconds: float,
        interval_us: float = 0.0,
    ) -> RunResult:
        """One wrk run against ``server``, checked: no errors, every request answered, every
        activity accepted, and (for Waypost) stored == acknowledged."""
        is_waypost = server is self.waypost
        before = self.stored() if is_waypost else 0
        cpu_before = server.cpu_seconds()
        busy_before, wrk_before = busy_cpu_seconds(), children_cpu_seconds()
        started = time.monotonic()
        result = run_wrk(
            f"{server.url}{payloads.PATH}",
            pool_file,
            seconds=seconds,
            connections=connections,
            interval_us=interval_us,
        )
        cpu_after = server.cpu_seconds()
        busy_after, wrk_after = busy_cpu_seconds(), children_cpu_seconds()
        elapsed = time.monotonic() - started
        if cpu_before is not None and cpu_after is not None:
            server_cpu = cpu_after[0] - cpu_before[0]
            result = replace(
                result, server_cpu_seconds=server_cpu, http_cpu_seconds=cpu_after[1] - cpu_before[1]
            )
            if busy_before is not None and busy_after is not None:
                # Whatever else ran on the machine during the run, as a share of all its CPUs.
                ours = server_cpu + (wrk_after - wrk_before)
                foreign = (busy_after - busy_before - ours) / (elapsed * (os.cpu_count() or 1))
                result = replace(result, foreign_cpu_share=max(0.0, foreign))
        self.results.append(result)
        server.check_alive()
        where = f"{server.name}, {connections} connections, {seconds:g} s"
        if result.errors:
            raise BenchFailure(f"{where}: errors in the run: {result.as_dict()}")
        if result.unanswered:
            raise BenchFailure(f"{where}: {result.unanswered} requests were never answered")
        expected = result.answered * per_request
        if result.accepted != expected:
            raise BenchFailure(
                f"{where}: {result.accepted} activities got 202 of {expected} sent; "
                "the benchmark's activities should all be valid"
            )
        if is_waypost:
            stored = self.stored() - before
            self.checks.append({"run": where, "acknowledged": result.accepted, "stored": stored})
            if stored != result.accepted:
                raise BenchFailure(
                    f"{where}: STORED {stored} activities but ACKNOWLEDGED {result.accepted} "
                    "with 202: a 202 must mean stored, exactly once"
                )
        return result
