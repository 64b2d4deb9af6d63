"""`waypost serve` in a subprocess, for the tests that need a real server process.

One harness for all of them: a free loopback port, the environment (the test's ``WAYPOST_*``
settings only, none inherited), the output of each start in a file of its own, a start that
returns once the server answers, and stops by SIGTERM (SIGKILL if it hangs), SIGKILL or SIGINT.
A stopped server starts again on the same port and database.

Imported by the tests that serve (pytest puts tests/ on sys.path; mypy knows it as
tests.server_support).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pytest

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServedWaypost:
    """``waypost serve`` on a free loopback port, run from ``directory``.

    ``database_url`` defaults to a SQLite file in ``directory``; ``settings`` become
    ``WAYPOST_<NAME>`` variables; ``args`` follow ``serve --host 127.0.0.1 --port <port>``.
    Each start writes its output (standard output and error together) to
    ``<name>-<n>.log`` in ``directory``. As a context manager it stops the server on exit.
    """

    def __init__(
        self,
        directory: Path,
        database_url: str | None = None,
        *,
        name: str | None = None,
        args: Sequence[str] = (),
        **settings: str,
    ) -> None:
        self.directory = directory
        self.database = directory / "waypost.db"
        self.database_url = database_url or f"sqlite:///{self.database}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name or f"waypost-{self.port}"
        self.args = list(args)
        self.settings = {f"WAYPOST_{k.upper()}": v for k, v in settings.items()}
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the server and return once it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WAYPOST_")},
            "WAYPOST_DATABASE_URL": self.database_url,
            "PYTHONUNBUFFERED": "1",
            **self.settings,
        }
        command = [sys.executable, "-m", "waypost.cli", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *self.args]
        log = self.directory / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=self.directory, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.wait_until_answers(f"{self.url}/api/openapi.json")
        return self

    def wait_until_answers(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``url`` answers 200; fail if the server exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                pytest.fail(f"waypost serve exited:\n{self.output()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"waypost serve did not answer {url}:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """Stop the server as a service manager would (SIGTERM, then SIGKILL if it hangs);
        its exit code, None if it was not running."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int | None:
        """Kill the server outright (SIGKILL), as a crash or a power cut would."""
        return self._end(signal.SIGKILL)

    def writer_process(self, timeout: float = START_TIMEOUT) -> int:
        """The id of the server's writer process (``WAYPOST_WRITER_PROCESS``), once it runs."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                try:
                    children = (task / "children").read_text().split()
                    commands = {c: Path(f"/proc/{c}/cmdline").read_bytes() for c in children}
                except OSError:
                    continue  # a task or a process that just ended
                for child, command in commands.items():
                    if b"spawn_main" in command:
                        return int(child)
            time.sleep(0.05)
        raise AssertionError(f"no writer process: {self.output()}")

    def interrupt(self) -> int | None:
        """Stop the server as Ctrl+C does (SIGINT); its exit code."""
        return self._end(signal.SIGINT)

    def _end(self, how: signal.Signals) -> int | None:
        process = self.process
        if process is None or process.poll() is not None:
            return None
        process.send_signal(how)
        try:
            return process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            process.kill()
            return process.wait(5)

    def output(self) -> str:
        """What every start so far has written, in order."""
        return "".join(log.read_text(errors="replace") for log in self.logs if log.exists())


@contextmanager
def serving(
    directory: Path,
    database_url: str | None = None,
    *,
    name: str | None = None,
    args: Sequence[str] = (),
    **settings: str,
) -> Iterator[ServedWaypost]:
    """A started :class:`ServedWaypost`, stopped when the block ends."""
    with ServedWaypost(directory, database_url, name=name, args=args, **settings) as server:
        yield server.start()
