"""The webhook dispatcher's HTTP/1.1 transport: one kept-alive connection, answers parsed by
httptools (docs/playbooks.md, "Delivery").

httpx's own transport (httpcore and h11, pure Python) costs more CPU per call than the rest of
an attempt together; at thousands of deliveries a second it is what the dispatcher's thread
spends its time on. This one does only what a webhook call needs: one request at a time on
one connection (a lane's slot makes one call at a time), kept alive while the receiver allows
it, TLS through the shared context, no proxy, no redirect, no compression. The dispatcher
calls :meth:`WebhookTransport.post` with the request's head as bytes; the class is also an
``httpx.AsyncBaseTransport``, so it serves httpx requests, and tests put any other httpx
transport (``httpx.MockTransport``) in its place.

A new connection goes to the addresses the destination check passed
(``webhook_addresses.check_destination``), tried in order; the name is not resolved again, as
it could then answer another address (DNS rebinding). The name stays the Host header and, for
https, the name TLS sends (SNI) and verifies the certificate against.

How long a call may take is the caller's business (the attempt's own timeout): a call
cancelled half way leaves its connection in an unknown state, so it is closed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httptools
import httpx

# Past this much of an answer not yet read, the connection stops reading from the socket.
HIGH_WATER = 256 * 1024


class _Connection(asyncio.Protocol):
    # One connection; the callbacks of ``httptools.HttpResponseParser`` fill in the answer.

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: BaseException | None = None
        self._reset()

    def _reset(self) -> None:
        self.got_bytes = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.head_done = asyncio.get_running_loop().create_future()
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.more = asyncio.Event()
        self.paused = False

    def begin(self) -> None:
        """Ready for the next request's answer."""
        self._reset()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the receiver switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))

    def eof_received(self) -> bool | None:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done.done() and not self.complete:
            # An answer without a length ends with its connection; one cut short too.
            self.complete = True
            self.more.set()
        elif not self.head_done.done():
            error = httpx.ReadError("the receiver closed the connection")
            if exc is not None:
                error.__cause__ = exc
            self.head_done.set_exception(error)

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:
            # An interim answer (100 Continue): the final one follows.
            self.headers.clear()
            return
        self.keep_alive = self.parser.should_keep_alive()
        if not self.head_done.done():
            self.head_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        self.more.set()
        if self.buffered > HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return
        self.complete = True
        self.more.set()

    # -- the caller -----------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        self.error = error
        if not self.head_done.done():
            self.head_done.set_exception(error)
        self.complete = True
        self.more.set()
        self.close()

    def take(self) -> bytes | None:
        """The next part of the body read, b"" when none is yet, None once it all was."""
        if self.body:
            chunk = self.body.popleft()
            self.buffered -= len(chunk)
            if self.paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            return chunk
        if self.complete:
            return None
        self.more.clear()
        return b""

    @property
    def reusable(self) -> bool:
        return (
            not self.closed
            and self.complete
            and self.error is None
            and not self.body
            and self.keep_alive
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Body(httpx.AsyncByteStream):
    # An answer's body, as it comes; closing it before its end closes the connection.

    def __init__(self, owner: WebhookTransport, connection: _Connection) -> None:
        self.owner = owner
        self.connection = connection

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self.connection
        while True:
            chunk = connection.take()
            if chunk is None:
                if connection.error is not None:
                    raise connection.error
                return
            if chunk:
                yield chunk
            else:
                await connection.more.wait()

    async def aclose(self) -> None:
        self.owner.done(self.connection)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a call goes, parsed once per URL: the host (a name or an address) and port, and
    the request line and Host header every call to it starts with."""

    host: str
    port: int
    https: bool
    start: bytes


def target(url: str) -> Target:
    """The Target of an absolute http or https URL (raises httpx.InvalidURL)."""
    parsed = httpx.URL(url)
    https = parsed.scheme == "https"
    port = parsed.port or (443 if https else 80)
    start = b"POST %s HTTP/1.1\r\nhost: %s\r\n" % (parsed.raw_path, parsed.netloc)
    return Target(parsed.host, port, https, start)


class Reply:
    """The answer to :meth:`WebhookTransport.post`, its head read; the body is read with
    :meth:`read_start`, and :meth:`aclose` must follow, read or not."""

    __slots__ = ("_connection", "_owner", "status")

    def __init__(self, owner: WebhookTransport, connection: _Connection) -> None:
        self._owner = owner
        self._connection = connection
        self.status = connection.status

    def header(self, name: bytes) -> str | None:
        """The first value of the header ``name`` (lower case), if the answer has it."""
        for key, value in self._connection.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    async def read_start(self, kept: bytearray, keep: int, most: int) -> None:
        """Add the body's first ``keep`` bytes to ``kept``; read no more than ``most`` (the
        connection is then dropped, not read to the end)."""
        connection = self._connection
        read = 0
        while read <= most:
            chunk = connection.take()
            if chunk is None:
                if connection.error is not None:
                    raise connection.error
                return
            if chunk:
                if len(kept) < keep:
                    kept += chunk[: keep - len(kept)]
                read += len(chunk)
            else:
                await connection.more.wait()

    async def aclose(self) -> None:
        """Done with the answer: its connection serves the next call if it can."""
        self._owner.done(self._connection)


class WebhookTransport(httpx.AsyncBaseTransport):
    """Calls over one connection at a time, kept alive between them; ``tls`` verifies
    https receivers.

    :meth:`post` is the dispatcher's call: the head as bytes, no httpx ``Request`` or
    ``Response`` built (they cost a fifth of a delivery's CPU); as an httpx transport
    (:meth:`handle_async_request`) it serves any httpx request the same way."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.tls = tls
        self._connection: _Connection | None = None
        # Where the kept connection goes (host, port, https): a call elsewhere (the endpoint's
        # URL changed) opens a connection of its own rather than reaching the old receiver.
        self._to: tuple[str, int, bool] | None = None
        self._busy = False
        self.closed = False

    async def post(
        self, to: Target, headers: bytes, body: bytes, addresses: Sequence[str] | None
    ) -> Reply:
        """POST ``body`` to ``to`` with ``headers`` (each line ending in CRLF, without Host
        or Content-Length); return once the answer's head came.

        A new connection goes to ``addresses``, tried in order (the addresses the destination
        check passed: the name is not resolved again, as it could then answer another), or,
        when None, to what ``to.host`` resolves to. The host name is the Host header either
        way, and the name TLS verifies the certificate against."""
        head = b"%scontent-length: %d\r\n%s\r\n" % (to.start, len(body), headers)
        return Reply(self, await self._send(to.host, to.port, to.https, head + body, addresses))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return once its answer's head came; its body streams. A new
        connection goes to what the URL's host resolves to: nothing here checked it."""
        url = request.url
        https = url.scheme == "https"
        port = url.port or (443 if https else 80)
        connection = await self._send(url.host, port, https, _head(request) + request.content, None)
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self, connection),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _send(
        self, host: str, port: int, https: bool, data: bytes, addresses: Sequence[str] | None
    ) -> _Connection:
        if self._busy:
            raise RuntimeError("one call at a time on a webhook transport")
        self._busy = True
        self.closed = False
        try:
            connection = self._connection
            if connection is not None and not connection.closed and self._to == (host, port, https):
                connection.begin()
                try:
                    return await self._exchange(connection, data)
                except httpx.TransportError:
                    # A kept-alive connection the receiver closed while unused: a new one
                    # sends the request again only when nothing at all came back on this one.
                    if connection.got_bytes:
                        raise
            connection = await self._connect(host, port, https, addresses)
            return await self._exchange(connection, data)
        except BaseException:
            self._drop()
            raise

    async def _connect(
        self, host: str, port: int, https: bool, addresses: Sequence[str] | None
    ) -> _Connection:
        self._drop()
        loop = asyncio.get_running_loop()
        errors: list[OSError] = []
        # Each address is an IP address: asyncio connects to it without resolving anything.
        for address in (host,) if addresses is None else addresses:
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    address,
                    port,
                    ssl=self.tls if https else None,
                    server_hostname=host if https else None,
                )
            except ssl.SSLError as exc:
                # The address answered, the TLS handshake failed: no other address is tried.
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            except OSError as exc:
                errors.append(exc)
                continue
            self._connection = connection
            self._to = (host, port, https)
            return connection
        error = _one_error(errors)
        raise httpx.ConnectError(str(error) or type(error).__name__) from error

    @staticmethod
    async def _exchange(connection: _Connection, data: bytes) -> _Connection:
        assert connection.transport is not None
        connection.transport.write(data)
        await connection.head_done
        return connection

    def done(self, connection: _Connection) -> None:
        """The answer on ``connection`` was read, or given up on."""
        self._busy = False
        if connection is self._connection and not connection.reusable:
            self._drop()

    def _drop(self) -> None:
        self._busy = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def aclose(self) -> None:
        """Close the connection; a call after this opens another."""
        self.closed = True
        self._drop()


def _one_error(errors: list[OSError]) -> OSError:
    # The error of a connection to several addresses: the first, when they all failed alike
    # (each refused: the attempt's error is connection_refused), else all of them, as
    # asyncio's create_connection says it.
    if not errors:
        return OSError("no address to connect to")
    first = errors[0]
    if all(
        str(e) == str(first) or (e.errno is not None and e.errno == first.errno) for e in errors
    ):
        return first
    return OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


def _head(request: httpx.Request) -> bytes:
    # httpx's Request already holds Host and Content-Length.
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines.extend(b"%s: %s" % (name, value) for name, value in request.headers.raw)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
