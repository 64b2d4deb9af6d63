"""Support for the SDK tests: a served Waypost that knows its keys, and a faulty proxy.

Imported by tests/test_sdk_*.py (pytest puts tests/ on sys.path; mypy knows it as
tests.sdk_support).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx
import psycopg
import pytest

if TYPE_CHECKING:
    from tests.server_support import ServedWaypost
else:
    from server_support import ServedWaypost

# As tests/conftest.py reads it.
POSTGRES_ADMIN_URL = os.environ.get("WAYPOST_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


class WaypostServer(ServedWaypost):
    """`waypost serve` on a free loopback port and a SQLite file of its own.

    The first start bootstraps the database and prints the keys, which are kept; later starts
    (after :meth:`stop`) serve the same database on the same port.
    """

    def __init__(self, directory: Path, **settings: str) -> None:
        super().__init__(directory, **settings)
        self.admin_key = self.tracking_key = self.channel = ""

    def start(self) -> Self:
        super().start()
        if not self.admin_key:
            output = self.output()
            self.admin_key = _find(r"Admin key .*?(wpa_\S+)", output)
            self.tracking_key = _find(r"Tracking key .*?(wpt_\S+)", output)
            self.channel = _find(r"Headless channel: (\S+)", output)
        return self

    def activity_requests(self) -> int:
        """``POST /tracking/activities`` requests in the server's access log so far."""
        return self.output().count('"POST /tracking/activities HTTP/1.1"')

    # -- reading what was stored -----------------------------------------------------------

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def activities(self, contact: str) -> list[dict[str, Any]]:
        """The contact's activity log, through the admin API, oldest first."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        with self.admin() as admin:
            while True:
                params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
                answer = admin.get(f"/api/contacts/{contact}/activities", params=params)
                assert answer.status_code == 200, answer.text
                body = answer.json()
                found += body["data"]
                cursor = body["next"]
                if cursor is None:
                    return sorted(found, key=lambda a: (a["occurred_at"], a["id"]))

    def count(self, sql: str, *params: object) -> int:
        """A count straight from the database file, read-only."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as conn:
            value = conn.execute(sql, params).fetchone()[0]
        conn.close()
        assert isinstance(value, int)
        return value

    def create_type(
        self, name: str, fields: list[dict[str, Any]] | None = None, code_name: str | None = None
    ) -> str:
        body: dict[str, Any] = {"name": name, "fields": fields or []}
        if code_name is not None:
            body["code_name"] = code_name
        with self.admin() as admin:
            answer = admin.post("/api/activity-types", json=body)
        assert answer.status_code == 201, answer.text
        created: str = answer.json()["code_name"]
        return created


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, text
    return match.group(1)


@contextmanager
def running_server(directory: Path, **settings: str) -> Iterator[WaypostServer]:
    """A started :class:`WaypostServer`, stopped when the block ends."""
    with WaypostServer(directory, **settings) as server:
        yield server.start()


# -- a real storage outage --------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of this test's own (the server migrates it): its name and URL."""
    name = f"waypost_outage_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable ({exc})"
        if os.environ.get("WAYPOST_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield name, f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def refuse_connections(name: str, refuse: bool) -> None:
    """Make the database refuse every connection (and drop the open ones), or take them again."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not refuse).lower()}')
        if refuse:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


# -- a proxy that fails on purpose --------------------------------------------------------------


@dataclass
class Seen:
    """One request the proxy received, and what it did."""

    at: float
    path: str
    action: str
    gzip: bool


@dataclass
class FaultyProxy:
    """An HTTP proxy to ``upstream`` that answers requests by script.

    Each request takes the next action of ``script`` (then ``forward`` when it is empty):

    - ``forward``: pass the request on and its answer back;
    - ``503`` / ``429``: answer that status with ``Retry-After: <retry_after>`` and Waypost's
      error shape;
    - ``lose``: pass the request on (so Waypost stores it), then close the connection without
      an answer, as when a network fails after the server has done its work;
    - with ``refuse_gzip``, any request with ``Content-Encoding: gzip`` gets a 400, as from a
      server that cannot read gzip.
    """

    upstream: str
    script: list[str] = field(default_factory=list)
    refuse_gzip: bool = False
    retry_after: str = "1"
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.upstream, timeout=10)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy.handle(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        gzipped = handler.headers.get("Content-Encoding") == "gzip"
        with self._lock:
            action = self.script.pop(0) if self.script else "forward"
            if self.refuse_gzip and gzipped:
                action = "refuse_gzip"
            self.seen.append(Seen(time.monotonic(), handler.path, action, gzipped))
        if action in ("503", "429", "refuse_gzip"):
            status = 400 if action == "refuse_gzip" else int(action)
            code = {400: "invalid_json", 429: "rate_limited", 503: "storage_unavailable"}[status]
            payload = b'{"error": {"code": "%s", "message": "by script"}}' % code.encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            if status != 400:
                handler.send_header("Retry-After", self.retry_after)
            handler.end_headers()
            handler.wfile.write(payload)
            return
        names = ("Authorization", "Content-Type", "Content-Encoding")
        headers = {k: v for k in names if (v := handler.headers.get(k)) is not None}
        answer = self._client.request(handler.command, handler.path, content=body, headers=headers)
        if action == "lose":
            handler.close_connection = True
            return
        handler.send_response(answer.status_code)
        for name in ("Content-Type", "Retry-After"):
            if name in answer.headers:
                handler.send_header(name, answer.headers[name])
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)
