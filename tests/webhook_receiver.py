"""A real webhook receiver for tests: an HTTP/1.1 server on loopback in a thread, recording
every request and answering as the test says; and endpoint rows and outbox messages written
straight into the database.

Imported by the webhook tests (pytest puts tests/ on sys.path; mypy knows it as
tests.webhook_receiver).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from waypost.ids import new_id
from waypost.records.outbox import OutboxMessage, enqueue
from waypost.store import Store
from waypost.store.schema import webhook_attempts, webhook_endpoints, webhook_messages


class _Server(ThreadingHTTPServer):
    # The standard backlog of 5 overflows when dozens of connections open at once, and the
    # kernel then resets some of them.
    request_queue_size = 128


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it; ``headers`` with lower-case names."""

    at: float
    path: str
    headers: dict[str, str]
    body: str
    peer: tuple[str, int]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Reply:
    """How to answer: ``delay`` seconds first (cut short by :meth:`Receiver.release`)."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


# Given the request and its number (0 for the first this receiver got), how to answer.
Responder = Callable[[Received, int], Reply]


class Receiver:
    """An HTTP server on a free loopback port; :attr:`url` is where to send webhooks."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda _request, _n: Reply())
        self.requests: list[Received] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are written apart: without this, Nagle's algorithm and the
            # client's delayed ACK hold every answer back some 40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                request = Received(
                    time.monotonic(),
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    (str(self.client_address[0]), int(self.client_address[1])),
                )
                with receiver._lock:
                    number = len(receiver.requests)
                    receiver.requests.append(request)
                    receiver._arrived.notify_all()
                reply = receiver.respond(request, number)
                if reply.delay:
                    receiver.released.wait(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` requests, once they have arrived; fails after ``timeout``."""
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            assert arrived, f"{len(self.requests)} of {count} requests arrived in {timeout} s"
            return list(self.requests[:count])

    def release(self) -> None:
        """Answer every delayed request now, and the later ones without their delay."""
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving(respond: Responder | None = None) -> Iterator[Receiver]:
    """A :class:`Receiver`, closed when the block ends."""
    receiver = Receiver(respond)
    try:
        yield receiver
    finally:
        receiver.close()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    url: str
    secret: str


def add_endpoint(
    store: Store,
    url: str,
    *,
    enabled: bool = True,
    secret: str | None = None,
    previous_secret: str | None = None,
    previous_secret_expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Endpoint:
    """An endpoint row, as the endpoints service would write it."""
    now = now or dt.datetime.now(dt.UTC)
    endpoint = Endpoint(new_id(), url, secret or new_secret())
    with store.write() as conn:
        conn.execute(
            sa.insert(webhook_endpoints).values(
                id=endpoint.id,
                url=url,
                description="",
                enabled=enabled,
                secret=endpoint.secret,
                previous_secret=previous_secret,
                previous_secret_expires_at=previous_secret_expires_at,
                created_at=now,
                updated_at=now,
            )
        )
    return endpoint


def add_messages(
    store: Store,
    endpoint: uuid.UUID,
    count: int = 1,
    *,
    now: dt.datetime | None = None,
    wake: Callable[[], None] | None = None,
) -> list[uuid.UUID]:
    """``count`` outbox messages for ``endpoint``, written in one transaction; their ids."""
    now = now or dt.datetime.now(dt.UTC)
    messages = [
        OutboxMessage(
            id=new_id(),
            endpoint_id=endpoint,
            event_type="activity.performed",
            body=json.dumps(
                {"type": "activity.performed", "timestamp": now.isoformat(), "data": {"n": n}}
            ),
            created_at=now,
        )
        for n in range(count)
    ]
    with store.write() as conn:
        enqueue(conn, messages, wake)
    return [m.id for m in messages]


def message(store: Store, message_id: uuid.UUID) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(
            sa.select(webhook_messages).where(webhook_messages.c.id == message_id)
        ).one()
    return dict(row._mapping)


def messages(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(sa.select(webhook_messages).order_by(webhook_messages.c.id)).all()
    return [dict(row._mapping) for row in rows]


def attempts(store: Store, message_id: uuid.UUID) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.message_id == message_id)
            .order_by(webhook_attempts.c.attempt)
        ).all()
    return [dict(row._mapping) for row in rows]


def endpoint_row(store: Store, endpoint_id: uuid.UUID) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(
            sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        ).one()
    return dict(row._mapping)


def eventually(check: Callable[[], bool], timeout: float = 10.0, every: float = 0.02) -> None:
    """Wait until ``check()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        time.sleep(every)
