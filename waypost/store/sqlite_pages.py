"""Readers of an export's pages from a SQLite file: one in this process, the others in
worker processes (:mod:`waypost.store.sqlite_worker`, through
:class:`~waypost.store.sqlite_reader.SecondReader`), so that an export uses more than
one CPU (docs/architecture.md).

A second reader *thread* gains nothing on SQLite: the threads meet on SQLite's global mutexes
and on the interpreter's lock, and the process keeps to about one CPU. A worker process has
its own. :class:`PageProcesses` owns the workers of one export: they start with it (never for
a database that is not a file), read one page at a time each, and end when it is closed (the
export finished, failed, or given up on) or when this process ends (their stdin closes).
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from waypost.errors import StorageUnavailable
from waypost.store.sqlite_reader import SecondReader, WorkerError, sqlite_file
from waypost.store.sqlite_worker import open_reader, read_page

__all__ = ["PageProcesses", "Reader", "sqlite_file"]
# How long a worker may take to end once its stdin is closed (a page it is reading).
CLOSE_SECONDS = 10.0

# A reader of pages: the driver's SQL and positional parameters to the rows.
Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class _Worker:
    """One worker process; used by one thread at a time."""

    def __init__(self, path: str) -> None:
        self.reader = SecondReader(path, text_as_bytes=True)
        self.process = self.reader.process

    def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            self.reader.start(sql, list(params))
            return self.reader.rows()
        except WorkerError as exc:
            raise StorageUnavailable(f"the export's page reader: {exc}") from exc


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End a worker: its stdin closed, it ends after the page it reads; killed if it does
    not."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # the worker ended first: nothing to flush
                stream.close()
    try:
        process.wait(CLOSE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PageProcesses:
    """The readers of one export's pages from the SQLite file ``path``: ``here`` in this
    process (each a connection of its own), ``total - here`` in worker processes. Each reader
    is for one thread at a time. Close it (or use it as a context manager) to end the
    workers; it also ends them if it is garbage-collected unclosed."""

    def __init__(self, path: str, total: int, here: int = 1) -> None:
        self.readers: list[Reader] = []
        self._connections = [open_reader(path, text_as_bytes=True) for _ in range(min(here, total))]
        for conn in self._connections:
            self.readers.append(functools.partial(read_page, conn))
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._finalizers: list[weakref.finalize[Any, Any]] = []
        try:
            for _ in range(total - len(self._connections)):
                worker = _Worker(path)
                self._workers.append(worker)
                self._finalizers.append(weakref.finalize(self, _stop, worker.process))
                self.readers.append(worker.read)
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [w.process.pid for w in self._workers]

    def close(self) -> None:
        """End the workers and close the connections (once every reader is done reading)."""
        with self._lock:
            for finalizer in self._finalizers:
                finalizer()
            self._finalizers = []
            for conn in self._connections:
                conn.close()
            self._connections = []

    def __enter__(self) -> PageProcesses:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
