"""The webhook transport against raw HTTP servers on loopback: keep-alive, answers of every
framing, connections the receiver closes, refused, malformed or abandoned; connections to the
addresses the destination check passed, the name kept for Host and TLS."""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from waypost.services.webhook_transport import WebhookTransport, target

# Reads one request (head and Content-Length body) and writes the answer it returns; None
# closes the connection.
Answerer = Callable[[bytes, int], bytes | None]
# An answer that never comes.
HANG = b"hang"
# In an answer: the server closes the connection after it, without saying so.
CLOSE_AFTER = b"x-test: close-after\r\n"


class Server:
    """A raw HTTP/1.1 server: counts connections and requests, answers as told."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = self.answer(head + body, self.connections)
                if answer is None:
                    break
                if answer == HANG:
                    await asyncio.sleep(5)
                    break
                writer.write(answer)
                await writer.drain()
                lower = answer.lower()
                framed = b"content-length" in lower or b"chunked" in lower
                if b"connection: close" in lower or CLOSE_AFTER in answer or not framed:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def call(transport: WebhookTransport, url: str, content: bytes = b"{}") -> tuple[int, bytes]:
    request = httpx.Request("POST", url, content=content, headers={"webhook-id": "msg_1"})
    response = await transport.handle_async_request(request)
    try:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return response.status_code, body


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def new_transport() -> WebhookTransport:
    return WebhookTransport(httpx.create_ssl_context())


def test_calls_share_one_connection_kept_alive() -> None:
    async def test() -> None:
        async with Server(lambda _r, _c: ok(b"hello", b"Retry-After: 3\r\n")) as server:
            transport = new_transport()
            for _ in range(3):
                assert await call(transport, server.url, b'{"a":1}') == (200, b"hello")
            assert server.connections == 1
            first = server.requests[0]
            assert first.startswith(b"POST /hooks?x=1 HTTP/1.1\r\n")
            assert b"webhook-id: msg_1\r\n" in first.lower()
            assert b"content-length: 7\r\n" in first.lower()
            assert first.endswith(b'\r\n\r\n{"a":1}')
            request = httpx.Request("POST", server.url, content=b"{}")
            response = await transport.handle_async_request(request)
            assert response.headers["retry-after"] == "3"
            await response.aclose()
            await transport.aclose()

    run(test)


def test_a_call_elsewhere_does_not_reuse_the_kept_connection() -> None:
    # An endpoint whose URL changed: its next call goes to the new receiver, not over the
    # connection still open to the old one.
    async def test() -> None:
        async with (
            Server(lambda _r, _c: ok(b"old")) as old,
            Server(lambda _r, _c: ok(b"new")) as new,
        ):
            transport = new_transport()
            assert await call(transport, old.url) == (200, b"old")
            assert await call(transport, new.url) == (200, b"new")
            assert await call(transport, new.url) == (200, b"new")
            assert (old.connections, len(old.requests)) == (1, 1)
            assert (new.connections, len(new.requests)) == (1, 2)
            await transport.aclose()

    run(test)


def test_a_closing_answer_and_one_without_length_end_their_connection() -> None:
    answers = [
        ok(b"bye", b"Connection: close\r\n"),
        b"HTTP/1.1 500 Oops\r\n\r\nuntil the end",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ok(),
    ]

    async def test() -> None:
        async with Server(lambda _r, _c: answers[len(server.requests) - 1]) as server:
            transport = new_transport()
            assert await call(transport, server.url) == (200, b"bye")
            assert await call(transport, server.url) == (500, b"until the end")
            assert await call(transport, server.url) == (201, b"abcde")
            assert await call(transport, server.url) == (200, b"ok")
            assert server.connections == 3  # the chunked answer kept its connection
            await transport.aclose()

    run(test)


def test_a_kept_alive_connection_the_receiver_dropped_is_replaced() -> None:
    async def test() -> None:
        # The second request on the first connection gets no answer: it is closed.
        def answer(_request: bytes, connection: int) -> bytes | None:
            return ok() if connection > 1 or len(server.requests) == 1 else None

        async with Server(answer) as server:
            transport = new_transport()
            assert await call(transport, server.url) == (200, b"ok")
            assert await call(transport, server.url) == (200, b"ok")
            assert server.connections == 2
            await transport.aclose()

    run(test)


def test_a_refused_connection_says_so() -> None:
    async def test() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(httpx.ConnectError) as caught:
            await call(new_transport(), f"http://127.0.0.1:{port}/")
        cause = caught.value.__cause__
        assert isinstance(cause, OSError)
        assert cause.errno == errno.ECONNREFUSED

    run(test)


def test_a_malformed_answer_is_a_protocol_error() -> None:
    async def test() -> None:
        async with Server(lambda _r, _c: b"NOT HTTP AT ALL\r\n\r\n") as server:
            with pytest.raises(httpx.RemoteProtocolError):
                await call(new_transport(), server.url)

    run(test)


def test_an_answer_not_read_to_its_end_or_cancelled_drops_its_connection() -> None:
    big = b"x" * 2_000_000

    async def test() -> None:
        def answer(_request: bytes, connection: int) -> bytes | None:
            if connection == 2:
                return HANG  # the call is cancelled by its timeout
            return ok(big)

        async with Server(answer) as server:
            transport = new_transport()
            response = await transport.handle_async_request(
                httpx.Request("POST", server.url, content=b"{}")
            )
            async for _chunk in response.aiter_raw():
                break
            await response.aclose()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await call(transport, server.url)
            assert await call(transport, server.url) == (200, big)
            assert server.connections == 3
            await transport.aclose()

    run(test)


def test_a_connection_closed_between_calls_is_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        # Kept alive as far as the answer says, then closed by the receiver.
        async with Server(lambda _r, _c: ok(b"bye", CLOSE_AFTER)) as server:
            transport = new_transport()
            assert await call(transport, server.url) == (200, b"bye")
            await asyncio.sleep(0.05)  # the receiver's close arrives while the connection idles
            assert await call(transport, server.url) == (200, b"bye")
            assert server.connections == 2
            await transport.aclose()

    run(test)
    gc.collect()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def unresolvable(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Make resolving ``name`` fail; the list returned records each try."""
    real = socket.getaddrinfo
    tries: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            tries.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "resolved again")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return tries


def test_a_connection_goes_to_the_addresses_given_and_the_name_is_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tries = unresolvable(monkeypatch, "receiver.example")

    async def test() -> None:
        async with Server(lambda _r, _c: ok()) as server:
            port = server.url.split(":")[2].split("/")[0]
            to = target(f"http://receiver.example:{port}/hooks?x=1")
            transport = new_transport()
            # Nothing listens on 127.0.0.2: the next address is tried.
            for _ in range(2):
                reply = await transport.post(to, b"", b"{}", ["127.0.0.2", "127.0.0.1"])
                kept = bytearray()
                await reply.read_start(kept, 1024, 65536)
                await reply.aclose()
                assert (reply.status, bytes(kept)) == (200, b"ok")
            assert server.connections == 1  # kept alive, as with the name
            assert server.requests[0].startswith(
                b"POST /hooks?x=1 HTTP/1.1\r\nhost: receiver.example:%s\r\n" % port.encode()
            )
            await transport.aclose()
            # When none answers, the error is a refused connection, as for a name.
            with pytest.raises(httpx.ConnectError) as caught:
                await new_transport().post(to, b"", b"{}", ["127.0.0.2", "127.0.0.3"])
            assert isinstance(caught.value.__cause__, OSError)
            assert caught.value.__cause__.errno == errno.ECONNREFUSED

    run(test)
    assert tries == []


def test_https_to_an_address_verifies_the_certificate_against_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server reads the TLS ClientHello and hangs up: the name in it (SNI) is the one
    # the certificate is verified against (the context checks host names).
    tries = unresolvable(monkeypatch, "receiver.example")
    hellos: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = await reader.readexactly(5)  # a TLS record's type, version and length
        hellos.append(record + await reader.readexactly(int.from_bytes(record[3:5], "big")))
        writer.close()

    async def test() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = new_transport()
        assert transport.tls.check_hostname
        assert transport.tls.verify_mode == ssl.CERT_REQUIRED
        to = target(f"https://receiver.example:{port}/hooks")
        try:
            with pytest.raises(httpx.ConnectError):
                await transport.post(to, b"", b"{}", ["127.0.0.1"])
        finally:
            server.close()
        [hello] = hellos
        assert hello[:1] == b"\x16"  # a TLS handshake record
        assert b"receiver.example" in hello

    run(test)
    assert tries == []
