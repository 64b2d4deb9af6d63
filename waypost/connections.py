"""HTTP connections with deadlines and a limit, so that slow or idle clients cannot hold them.

uvicorn closes a connection that stays idle after a response (``timeout_keep_alive``), but
waits without end for a new connection's first request, for a request's headers and for its
body: a client sending one byte every few seconds holds a connection, and its memory, for as long
as it likes. This protocol, uvicorn's own httptools one with deadlines added, gives each request
``WAYPOST_HEADER_TIMEOUT_SECONDS`` from its first byte (or from the connection's opening) to its
last header, then ``WAYPOST_BODY_TIMEOUT_SECONDS`` for its body; past either it answers
``408 request_timeout`` and closes the connection; headers of more than
:data:`MAX_HEADER_BYTES` get ``431 headers_too_large`` as soon as they pass it (the parser keeps
them in memory until they end), and so do a chunked body's trailer fields, which the parser
keeps like headers (counted as the bytes of the reads that carry no body byte, one after the
other). The time the application takes to answer is not limited.
Beyond ``WAYPOST_MAX_CONNECTIONS`` open connections, requests are answered ``503 server_busy``.

On shutdown (uvicorn calls ``shutdown()`` on every connection once it has stopped accepting),
a connection is not closed under a client that may be sending its next request at that moment,
which would reset it: every request that arrives is answered with ``Connection: close``, and a
connection still idle :data:`IDLE_LINGER_SECONDS` later is closed then.

Besides the one each new connection starts with, a deadline is a timer armed only when a
request's headers or body did not arrive whole in one read, so a request that comes in one
piece, as nearly all do, costs no timer at all.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from waypost.settings import Settings

# The most bytes a request's headers may take (its request line included): several times what
# browsers send with their cookies, and what nginx and Node refuse past, give or take.
MAX_HEADER_BYTES = 64 * 1024

# Where the connection is: waiting for a request's first byte (idle), reading a request's
# headers or its body, or none of them while the application works on a request.
Phase = Literal["idle", "headers", "body"] | None

RETRY_AFTER_BUSY = 1

# How long a shutdown leaves an idle kept-alive connection open for a request already on its
# way: a busy client sends its next one within milliseconds of an answer.
IDLE_LINGER_SECONDS = 0.5


def timed_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """The HTTP protocol class for uvicorn's ``http`` option, with the deadlines and the
    connection limit of ``settings``."""

    class Timed(TimedHttpToolsProtocol):
        header_timeout = settings.header_timeout_seconds
        body_timeout = settings.body_timeout_seconds
        max_connections = settings.max_connections

    return Timed


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a connection limit."""

    header_timeout = 10.0
    body_timeout = 60.0
    max_connections = 1000
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase: Phase = None
        self.deadline: asyncio.TimerHandle | None = None
        self.draining = False
        # The bytes read while a request's headers were arriving.
        self.header_bytes = 0
        # While its body arrives: the bytes of the reads in a row that held no body byte (a
        # chunked body's trailer fields, or framing), and the body bytes of the current read.
        self.framing_bytes = 0
        self.read_body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.phase = "idle"
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.phase == "headers":
            # The headers have not all arrived: what they took so far is bounded, as the
            # parser keeps them in memory until they end. The reads after the one a request
            # began in count whole; that one does not, as it may hold other requests' bytes
            # before it (pipelined), and a read is bounded anyway.
            if self.header_bytes < 0:
                self.header_bytes = 0
            else:
                self.header_bytes += len(data)
            if self.header_bytes > self.max_header_bytes:
                self._refuse_headers()
                return
        elif self.phase == "body":
            # Trailer fields go to the request's headers, and one the parser has not seen the
            # end of is kept whole. They come after the last body byte, so the reads in a row
            # that hold no body byte are bounded as headers are (a body byte, even one uvicorn
            # drops after an early answer, starts the count again). The read the headers ended
            # in does not count, as for headers.
            if self.framing_bytes < 0 or self.read_body_bytes:
                self.framing_bytes = 0
            else:
                self.framing_bytes += len(data)
            self.read_body_bytes = 0
            if self.framing_bytes > self.max_header_bytes:
                self._refuse_trailers()
                return
        if self.phase is not None and self.deadline is None and not self.transport.is_closing():
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase = "headers"  # the deadline armed while idle, if any, still runs
        self.header_bytes = -1  # begun in this read: counted once the read is parsed

    def on_headers_complete(self) -> None:
        if self.deadline is not None:
            self._disarm()
        self.phase = "body"
        self.framing_bytes = -1  # ended in this read: counted from the next
        self.read_body_bytes = 0
        if len(self.connections) <= self.max_connections:
            super().on_headers_complete()
            if self.draining and self.cycle is not None:
                self.cycle.keep_alive = False
            return
        # uvicorn's own limit (limit_concurrency) answers in plain text; this one answers in
        # Waypost's error shape. The request is answered, not refused, so that the client
        # reads why instead of seeing its connection reset.
        app = self.app
        self.app = _busy
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_body(self, body: bytes) -> None:
        self.read_body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.deadline is not None:
            self._disarm()
        self.phase = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.phase is None and not self.pipeline:
            self.phase = "idle"  # uvicorn's keep-alive timeout runs until the next byte
        super().on_response_complete()

    def shutdown(self) -> None:
        """The server stops: answer what is in flight or arrives soon, then close."""
        self.draining = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
        elif self.phase == "idle" and not self.transport.is_closing():
            self.loop.call_later(IDLE_LINGER_SECONDS, self._close_if_idle)
        # A request whose headers are arriving is answered with Connection: close.

    def _close_if_idle(self) -> None:
        cycle = self.cycle
        busy = cycle is not None and not cycle.response_complete
        if self.phase == "idle" and not busy and not self.transport.is_closing():
            self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self.phase = None
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        delay = self.body_timeout if self.phase == "body" else self.header_timeout
        self.deadline = self.loop.call_later(delay, self._timed_out)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _timed_out(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        cycle, phase = self.cycle, self.phase
        if phase == "headers":
            what = f"request's headers did not arrive within {self.header_timeout:g} s"
            self._send_timeout(what)
        elif phase == "body":
            what = f"request's body did not arrive within {self.body_timeout:g} s"
            if cycle is not None and not cycle.response_started:
                # The application may be waiting for the rest of the body: it now reads a
                # disconnect, and what it answers goes nowhere.
                cycle.disconnected = True
                cycle.message_event.set()
                self._send_timeout(what)
        if phase in ("headers", "body"):
            prefix = "%s:%d - " % self.client if self.client else ""  # noqa: UP031 (uvicorn's form)
            self.logger.info("%sClosed the connection: its %s", prefix, what)
        self.transport.close()

    def _refuse_headers(self) -> None:
        self._refuse_too_large("headers", f"headers are over {self.max_header_bytes} bytes")

    def _refuse_trailers(self) -> None:
        # The application may be waiting for the rest of the body: it now reads a disconnect,
        # and what it answers goes nowhere. One that has begun its answer gets no 431.
        cycle = self.cycle
        answer = cycle is None or not cycle.response_started
        if cycle is not None and answer:
            cycle.disconnected = True
            cycle.message_event.set()
        what = f"trailer fields are over {self.max_header_bytes} bytes"
        self._refuse_too_large("trailer fields", what, answer)

    def _refuse_too_large(self, part: str, what: str, answer: bool = True) -> None:
        """``431 headers_too_large`` (unless ``answer`` is False), and the connection closed."""
        self._disarm()
        self.phase = None
        if answer:
            message = f"The request's {what}; send fewer or shorter {part}."
            self._send_error(b"431 Request Header Fields Too Large", "headers_too_large", message)
        prefix = "%s:%d - " % self.client if self.client else ""  # noqa: UP031 (uvicorn's form)
        self.logger.info("%sClosed the connection: its request's %s were too large", prefix, part)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """What uvicorn answers to bytes its parser refuses (a malformed request line, header
        or chunk, a URL past the parser's limit, conflicting lengths), in the error shape
        rather than as plain text."""
        self._disarm()
        self.phase = None
        message = (
            "The request is not valid HTTP/1.1: a malformed request line, header or chunk, "
            "a URL too long, or conflicting Content-Length and Transfer-Encoding."
        )
        self._send_error(b"400 Bad Request", "http_error", message)
        self.transport.close()

    def _send_timeout(self, what: str) -> None:
        message = f"The {what}. Send the whole request at once, or retry on a faster connection."
        self._send_error(b"408 Request Timeout", "request_timeout", message)

    def _send_error(self, status: bytes, code: str, message: str) -> None:
        """An answer in the error shape, before (or instead of) the application's."""
        body = msgspec.json.encode({"error": {"code": code, "message": message}})
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)


BUSY = msgspec.json.encode(
    {
        "error": {
            "code": "server_busy",
            "message": "The server has too many open connections. Retry in a moment.",
        }
    }
)


async def _busy(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BUSY)).encode()),
                (b"retry-after", str(RETRY_AFTER_BUSY).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BUSY})
