"""A process that runs one read-only statement on a SQLite file (docs/architecture.md).

SQLite runs a statement on one CPU. A report that reads millions of index entries (a funnel)
splits its contacts in two: the server's process reads one part, this process the other, each
with its own connection, and the server adds up the answers. Two threads of one process would
not use two CPUs as well (they meet on SQLite's global mutexes and on the interpreter's lock
whenever a row becomes Python objects). :mod:`waypost.store.sqlite_reader` starts it as
``python -I sqlite_reader_worker.py FILE``: it imports the standard library only (``-I``
leaves out the environment and the user's site, so Waypost itself may not be importable).

The protocol, on stdin and stdout (the one of the export's page worker): a request is a
4-byte big-endian length and that many bytes of JSON, ``{"sql": ..., "params": [...]}`` (the
driver's SQL and its positional parameters: text, numbers or null); the answer is one status
byte (``0`` rows, ``1`` an error), an 8-byte big-endian length, and that many bytes: the rows
as :mod:`marshal` writes a list of tuples, or the error's message. The process ends when its
stdin does.
"""

from __future__ import annotations

import json
import marshal
import sqlite3
import struct
import sys
import urllib.parse
from typing import IO

REQUEST = struct.Struct(">I")
ANSWER = struct.Struct(">BQ")
ROWS = 0
ERROR = 1
BUSY_TIMEOUT_MS = 30_000


def open_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path``; each statement is its own read
    transaction (autocommit)."""
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(path: str, requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer statements on ``path`` until ``requests`` ends."""
    conn = open_reader(path)
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
                rows = conn.execute(request["sql"], tuple(request["params"])).fetchall()
                payload = marshal.dumps(rows)
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
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
