"""The load generator: wrk, one thread, driven by bench/ingest.lua.

wrk comes from Debian's packages (``apt-get install -y wrk``; ``make bench`` installs it). The
script sends a pool of pre-built requests in turn until a deadline and then lets every
connection go idle, so each request sent has been answered when wrk exits: the count of 202
results it reports is exact, and can be compared with the rows in the database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("ingest.lua")
MARK = "BENCH-WRK "
# Time left after the deadline for the last answers to arrive before wrk stops.
DRAIN_SECONDS = 3
# wrk 4 calls request() once on its first thread to check the script, before any connection.
VERIFY_CALLS = 1


class LoadError(RuntimeError):
    """wrk is missing, failed, or a run went wrong (errors, unanswered requests)."""


@dataclass(frozen=True)
class RequestPool:
    """The requests one run sends in turn; written as a Lua file for the script."""

    path: str
    headers: dict[str, str]
    bodies: list[bytes]
    activities_per_request: int

    def write_lua(self, file: Path) -> Path:
        def long_string(text: str) -> str:
            level = "=" * 4
            if f"]{level}]" in text:
                raise ValueError("a body holds the Lua long-string terminator")
            return f"[{level}[{text}]{level}]"

        headers = ", ".join(
            f"[ {long_string(k)} ] = {long_string(v)}" for k, v in self.headers.items()
        )
        bodies = ",\n".join(long_string(b.decode()) for b in self.bodies)
        file.write_text(
            f"return {{ path = {long_string(self.path)}, headers = {{ {headers} }},\n{bodies}\n}}\n"
        )
        return file


@dataclass(frozen=True)
class RunResult:
    """One wrk run, as the script reports it. Latencies in microseconds."""

    sent: int
    answered: int
    accepted: int
    other_status: int
    seconds: float
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    # Filled in by the caller: the server's CPU time (all threads) during the run.
    server_cpu_seconds: float | None = None
    # Of that, the server's own process's (the HTTP side, without the writer's process).
    http_cpu_seconds: float | None = None
    # Filled in by the caller: CPU used by other processes during the run, of all CPUs.
    foreign_cpu_share: float | None = None

    @property
    def server_cpu_per_request_us(self) -> float | None:
        if self.server_cpu_seconds is None or not self.answered:
            return None
        return self.server_cpu_seconds / self.answered * 1e6

    @property
    def http_cpu_per_request_us(self) -> float | None:
        if self.http_cpu_seconds is None or not self.answered:
            return None
        return self.http_cpu_seconds / self.answered * 1e6

    @property
    def requests_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def unanswered(self) -> int:
        return self.sent - VERIFY_CALLS - self.answered

    @property
    def errors(self) -> int:
        return (
            self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.timeouts
            + self.other_status
        )

    def as_dict(self) -> dict[str, object]:
        cpu = self.server_cpu_per_request_us
        http = self.http_cpu_per_request_us
        return {
            **asdict(self),
            "requests_per_second": round(self.requests_per_second, 1),
            "server_cpu_us_per_request": None if cpu is None else round(cpu, 1),
            "http_cpu_us_per_request": None if http is None else round(http, 1),
        }


def wrk_path() -> str:
    """The wrk executable, or a LoadError saying how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise LoadError(
            "wrk is not installed. `make bench` installs it with `apt-get install -y wrk`; "
            "without apt, install wrk 4 from your system's packages and run again."
        )
    return found


def run_wrk(
    url: str,
    pool_file: Path,
    *,
    seconds: float,
    connections: int,
    interval_us: float = 0.0,
) -> RunResult:
    """Drive ``url`` for ``seconds`` with ``connections`` (paced when ``interval_us`` > 0)."""
    command = [
        wrk_path(),
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{int(seconds + DRAIN_SECONDS + 0.999)}s",
        "--timeout",
        "10s",
        "--script",
        str(SCRIPT),
        url,
        "--",
        str(pool_file),
        str(seconds),
        str(interval_us),
    ]
    completed = subprocess.run(  # noqa: S603 - a fixed command on loopback
        command, capture_output=True, text=True, timeout=seconds + DRAIN_SECONDS + 30, check=False
    )
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith(MARK)), None)
    if completed.returncode != 0 or line is None:
        raise LoadError(
            f"wrk failed (exit {completed.returncode}): {completed.stderr.strip()}"
            f" {completed.stdout.strip()}"
        )
    return RunResult(**json.loads(line[len(MARK) :]))
