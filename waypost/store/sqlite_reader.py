"""A second reader of a SQLite file, in a process of its own (docs/architecture.md).

A statement that reads millions of index entries (a funnel over a month) takes one CPU for
seconds. Split in two parts that need not see each other's rows (the contacts below and above
a contact id), one part runs in the server's process and the other in
:mod:`waypost.store.sqlite_worker`, at the same time: :class:`SecondReader` starts
the worker (:mod:`waypost.store.sqlite_worker`, which an export's page readers use too),
hands it the driver's SQL and parameters (:func:`driver_statement`) and takes
its rows; the worker ends with the reader.

The two parts are two read transactions: a write committed between their starts is seen by
one and not the other, as if it had come a moment earlier or later for some contacts.
"""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sqlalchemy.engine import URL, Dialect
from sqlalchemy.sql import ClauseElement

from waypost.store.prepared import Compiled
from waypost.store.sqlite_worker import ANSWER, ERROR, REQUEST

WORKER = str(Path(__file__).with_name("sqlite_worker.py"))
# How long a worker asked to stop (its stdin closed) may take before it is killed.
STOP_SECONDS = 5.0


class WorkerError(RuntimeError):
    """The worker could not answer: its statement failed, or it ended without answering."""


def sqlite_file(url: URL) -> str | None:
    """The file of a SQLite database URL, which a second process can open by its name; None
    for any other database, an in-memory one, or one opened through a URI of its own."""
    if url.get_backend_name() != "sqlite" or url.query:
        return None
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return str(Path(name).resolve())


def driver_statement(statement: ClauseElement, dialect: Dialect) -> tuple[str, list[Any]]:
    """``statement`` as the driver runs it: its SQL and positional parameters, each converted
    as SQLAlchemy would (a UUID as hex text, a time as SQLite's text)."""
    compiled = Compiled(statement, dialect)
    assert compiled.positional
    return compiled.sql, list(compiled.params())


class SecondReader:
    """A worker process reading the SQLite file ``path``: :meth:`start` a statement, do
    something else meanwhile, then take its :meth:`rows`. Use it in a ``with`` block: the
    worker is stopped when the block ends (killed if the block ends in an exception). With
    ``text_as_bytes`` the rows' text comes as UTF-8 bytes."""

    def __init__(self, path: str, text_as_bytes: bool = False) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (our own script, no shell)
            [sys.executable, "-I", WORKER, path, *(["bytes"] if text_as_bytes else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    def start(self, sql: str, params: list[Any]) -> None:
        """Send the worker a statement; it starts at once."""
        stdin, _ = self._pipes()
        body = json.dumps({"sql": sql, "params": params}).encode()
        try:
            stdin.write(REQUEST.pack(len(body)) + body)
            stdin.flush()
        except (OSError, ValueError) as exc:  # ValueError: the pipe was closed
            raise WorkerError(f"the SQLite reader process ended: {exc}") from exc

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows of the statement started last, once the worker has them."""
        _, stdout = self._pipes()
        try:
            header = stdout.read(ANSWER.size)
            if len(header) < ANSWER.size:
                raise WorkerError("the SQLite reader process ended without answering")
            status, size = ANSWER.unpack(header)
            payload = stdout.read(size)
        except ValueError as exc:  # the pipe was closed
            raise WorkerError("the SQLite reader process ended") from exc
        if len(payload) < size:
            raise WorkerError("the SQLite reader process ended in the middle of its answer")
        if status == ERROR:
            raise WorkerError(payload.decode(errors="replace"))
        # Our own worker's answer, from a pipe only it writes to.
        rows: list[tuple[Any, ...]] = marshal.loads(payload)  # noqa: S302
        return rows

    def close(self, kill: bool = False) -> None:
        """Stop the worker: its stdin is closed, which ends it between statements; killed if
        ``kill`` or if it has not ended after STOP_SECONDS."""
        stdin, stdout = self._pipes()
        if kill:
            self.process.kill()
        with suppress(OSError):  # it has ended already
            stdin.close()
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        stdout.close()

    def __enter__(self) -> SecondReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(kill=exc_type is not None)
