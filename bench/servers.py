"""Servers under test as subprocesses on free loopback ports, started and stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.serve import READY_MARK

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(RuntimeError):
    """A server did not start, or died while it was measured."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``python -m bench.serve <app>`` in a subprocess; its output goes to a log file."""

    def __init__(
        self, name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        self.info: dict[str, Any] = {}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bench.serve", *args, "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        """Wait for the start-up line and for the port to accept connections."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            if not self.info:
                for line in self.log_path.read_text(errors="replace").splitlines():
                    if line.startswith(READY_MARK):
                        self.info = json.loads(line[len(READY_MARK) :])
            if self.info and _accepts(self.port):
                return
            time.sleep(0.1)
        raise ServerError(f"{self.name} did not start within {START_TIMEOUT:.0f} s; {self.tail()}")

    def cpu_seconds(self) -> tuple[float, float] | None:
        """User and system CPU time so far: of the server process (all its threads) and of the
        processes it started that still run (the writer's, the webhook dispatcher's), then of
        the server process alone."""
        own = _cpu_seconds(self.pid)
        if own is None:
            return None
        return own + sum(_cpu_seconds(pid) or 0.0 for pid in _descendants(self.pid)), own

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ServerError(f"{self.name} exited with {code}; {self.tail()}")

    def tail(self) -> str:
        text = self.log_path.read_text(errors="replace").strip()
        return f"its log ({self.log_path}) ends:\n{text[-2000:]}" if text else "its log is empty"

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of proc(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid``, from /proc/PID/task/TID/children."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            pending += children
    return found
