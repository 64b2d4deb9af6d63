"""A process that runs read-only statements on a SQLite file (docs/architecture.md).

Two threads reading SQLite in one process do not use two CPUs (they meet on SQLite's global
mutexes and on the interpreter's lock whenever a row becomes Python objects), so a long read
is split, and part of it runs here, in a process of its own: an export's pages
(:mod:`waypost.store.sqlite_pages`), half of a large funnel's contacts
(:mod:`waypost.store.sqlite_reader`, which starts it as
``python -I sqlite_worker.py FILE [bytes]``). It imports the standard library only (``-I``
leaves out the environment and the user's site, so Waypost itself may not be importable), and
the reading is the same function here and in the server's process: :func:`open_reader` and
:func:`read_page`.

The protocol, on the process's stdin and stdout: a request is a 4-byte big-endian length and
that many bytes of JSON, ``{"sql": ..., "params": [...]}`` (the driver's SQL and its
positional parameters, text, numbers or null); the answer is one status byte (``0`` rows,
``1`` an error), an 8-byte big-endian length, and that many bytes: the rows as
:mod:`marshal` writes a list of tuples (text as ``str``, or as UTF-8 ``bytes`` when the second
argument is ``bytes``), or the error's message.
The process ends when its stdin does.
"""

from __future__ import annotations

import json
import marshal
import sqlite3
import struct
import sys
import urllib.parse
from collections.abc import Sequence
from typing import IO, Any

REQUEST = struct.Struct(">I")
ANSWER = struct.Struct(">BQ")
ROWS = 0
ERROR = 1
BUSY_TIMEOUT_MS = 30_000


def open_reader(path: str, text_as_bytes: bool = False) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path``, whose text comes as UTF-8 bytes if
    ``text_as_bytes`` (an export sends bytes: no str is made of a page). Each statement is its
    own short read transaction (autocommit), so no read stays open between statements."""
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if text_as_bytes:
        conn.text_factory = bytes
    return conn


def read_page(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one page: ``sql`` run with ``params``."""
    return conn.execute(sql, tuple(params)).fetchall()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def serve(path: str, requests: IO[bytes], answers: IO[bytes], text_as_bytes: bool) -> None:
    """Answer statements on ``path`` until ``requests`` ends."""
    conn = open_reader(path, text_as_bytes)
    try:
        while True:
            header = _read_exactly(requests, REQUEST.size)
            if header is None:
                return
            body = _read_exactly(requests, REQUEST.unpack(header)[0])
            if body is None:
                return
            try:
                request = json.loads(body)
                payload = marshal.dumps(read_page(conn, request["sql"], request["params"]))
                status = ROWS
            except Exception as exc:  # the server raises it where the rows were asked for
                payload = f"{type(exc).__name__}: {exc}".encode()
                status = ERROR
            answers.write(ANSWER.pack(status, len(payload)))
            answers.write(payload)
            answers.flush()
    finally:
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer, sys.argv[2:] == ["bytes"])
