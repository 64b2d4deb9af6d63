"""Slow clients are timed out and connections are limited, on a real ``waypost serve``."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from waypost.connections import MAX_HEADER_BYTES

if TYPE_CHECKING:
    from tests.sdk_support import WaypostServer, running_server
else:
    from sdk_support import WaypostServer, running_server

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 2.5
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    with running_server(
        tmp_path_factory.mktemp("connections"),
        header_timeout_seconds=str(HEADER_TIMEOUT),
        body_timeout_seconds=str(BODY_TIMEOUT),
        max_connections=str(MAX_CONNECTIONS),
    ) as running:
        yield running


def connect(server: WaypostServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setblocking(False)
    return sock


def trickle(socks: list[socket.socket], data: bytes, every: float, limit: float) -> list[bytes]:
    """Send ``data`` on each socket one byte every ``every`` seconds until the server closes
    it; what the server answered on each, or fail after ``limit`` seconds."""
    answers = dict.fromkeys(socks, b"")
    sent = dict.fromkeys(socks, 0)
    open_ = set(socks)
    deadline = time.monotonic() + limit
    try:
        while open_:
            assert time.monotonic() < deadline, f"{len(open_)} connections still open"
            for sock in open_:
                if sent[sock] < len(data):
                    with contextlib.suppress(OSError):  # closed: the reads below see it
                        sent[sock] += sock.send(data[sent[sock] : sent[sock] + 1])
            end = time.monotonic() + every
            while open_ and (wait := end - time.monotonic()) > 0:
                readable, _, _ = select.select(list(open_), [], [], wait)
                for sock in readable:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        chunk = b""
                    answers[sock] += chunk
                    if not chunk:
                        open_.discard(sock)
    finally:
        for sock in socks:
            sock.close()
    return [answers[sock] for sock in socks]


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_headers_sent_too_slowly_get_408_and_the_connection_is_closed(
    server: WaypostServer,
) -> None:
    request = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    socks = [connect(server) for _ in range(20)]
    started = time.monotonic()
    answers = trickle(socks, request, every=0.25, limit=HEADER_TIMEOUT + 4)
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.1
    for answer in answers:
        status, body = status_and_body(answer)
        assert status == 408
        assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
        assert b"connection: close" in answer.lower()


def send_all_and_read(server: WaypostServer, chunks: Iterator[bytes]) -> bytes:
    """Send ``chunks`` until the server closes the connection; what it answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in chunks:
                sock.sendall(chunk)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


def fifty_megabytes_after(*start: bytes) -> Iterator[bytes]:
    """``start``, then 50 MB of one header's or trailer's value, if nothing stops it."""
    yield from start
    for _ in range(50 * 1024 * 1024 // 65536):
        yield b"a" * 65536


def refused_as_too_large(answer: bytes) -> str:
    """The message of a ``431 headers_too_large`` answer."""
    status, body = status_and_body(answer)
    assert status == 431
    assert body["error"]["code"] == "headers_too_large"  # type: ignore[index]
    return str(body["error"]["message"])  # type: ignore[index]


def test_headers_over_the_limit_get_431_and_the_connection_is_closed(
    server: WaypostServer,
) -> None:
    huge_header = fifty_megabytes_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ")
    message = refused_as_too_large(send_all_and_read(server, huge_header))
    assert f"over {MAX_HEADER_BYTES} bytes" in message
    # So do many headers, each short.
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))
    answer = send_all_and_read(server, iter([b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many]))
    assert status_and_body(answer)[0] == 431
    # A request after another's large body in the same read is not charged for that body.
    large = b"x" * 100_000
    first = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(large)
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = send_all_and_read(server, iter([first + large + second[:20], second[20:]]))
    assert answer.count(b"HTTP/1.1 ") == 2
    assert b"431" not in answer
    # Headers within the limit are answered as ever.
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 30_000 + b"\r\n"
    answer = send_all_and_read(server, iter([request + b"Connection: close\r\n\r\n"]))
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
        b"POST /tracking/activities HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /tracking/activities HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /?" + b"a=1&" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["method", "nul", "length-and-chunked", "negative-length", "long-url"],
)
def test_what_is_not_http_gets_400_in_the_error_shape(
    server: WaypostServer, request_bytes: bytes
) -> None:
    answer = send_all_and_read(server, iter([request_bytes]))
    status, body = status_and_body(answer)
    assert status == 400
    assert body["error"]["code"] == "http_error"  # type: ignore[index]
    assert b"content-type: application/json" in answer.lower()


def chunked_tracking_head(server: WaypostServer) -> bytes:
    return (
        f"POST /tracking/activities HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {server.tracking_key}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()


def test_trailer_fields_over_the_limit_get_431_and_the_connection_is_closed(
    server: WaypostServer,
) -> None:
    body = json.dumps({"channel": server.channel, "contact": "x", "activities": []}).encode()

    huge_trailer = fifty_megabytes_after(
        chunked_tracking_head(server), b"%x\r\n%s\r\n0\r\nX-Trailer: " % (len(body), body)
    )
    assert "trailer fields" in refused_as_too_large(send_all_and_read(server, huge_trailer))
    # So do many trailer fields, each short, sent a read at a time.
    many = [b"X-T%d: v\r\n" % i for i in range(20_000)]
    answer = send_all_and_read(
        server,
        iter([chunked_tracking_head(server), b"%x\r\n%s\r\n0\r\n" % (len(body), body), *many]),
    )
    assert status_and_body(answer)[0] == 431
    # Answered early (a wrong key), the body goes unread; a trailer after it is bounded all the
    # same: the connection is closed, and a request after it is not answered.
    head = chunked_tracking_head(server).replace(server.tracking_key.encode(), b"wpt_nope")
    megabyte = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
    later = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    trailer = [b"0\r\nX-Big: ", *[b"a" * 65536] * 16, b"\r\n\r\n" + later]  # 1 MB
    answer = send_all_and_read(server, iter([head, *[megabyte] * 8, *trailer]))
    assert answer.count(b"HTTP/1.1 ") == 1
    assert status_and_body(answer)[0] == 401


def test_a_body_in_small_chunks_with_a_trailer_is_stored(server: WaypostServer) -> None:
    contact = httpx.post(
        f"{server.url}/tracking/contacts",
        headers={"Authorization": f"Bearer {server.tracking_key}"},
        json={},
    ).json()["contact"]
    activity = {"type": "click", "value": "x" * 2000}
    body = json.dumps({"channel": server.channel, "contact": contact, "activities": [activity]})
    chunks = [b"%x\r\n%s\r\n" % (1, byte.to_bytes(1, "big")) for byte in body.encode()]
    end = b"0\r\nX-Checksum: " + b"c" * 1000 + b"\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with sock:
        sock.sendall(chunked_tracking_head(server))
        for chunk in chunks:  # one read each, as far as the network keeps them apart
            sock.sendall(chunk)
        sock.sendall(end)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            answer += sock.recv(65536)
    status, result = status_and_body(answer)
    assert status == 207, result
    assert result["results"][0]["status"] == 202  # type: ignore[index]


def test_a_connection_that_sends_nothing_is_closed(server: WaypostServer) -> None:
    assert trickle([connect(server)], b"", every=0.25, limit=HEADER_TIMEOUT + 4) == [b""]


def test_a_body_sent_too_slowly_gets_408_and_the_connection_is_closed(
    server: WaypostServer,
) -> None:
    body = json.dumps({"channel": server.channel, "contact": "x", "activities": []}).encode()
    head = (
        f"POST /tracking/activities HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {server.tracking_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + 1000}\r\n\r\n"
    ).encode()
    sock = connect(server)
    sock.sendall(head)
    started = time.monotonic()
    [answer] = trickle([sock], body + b" " * 1000, every=0.25, limit=BODY_TIMEOUT + 4)
    assert time.monotonic() - started >= BODY_TIMEOUT - 0.1
    status, error = status_and_body(answer)
    assert status == 408
    assert error["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_requests_in_time_are_not_affected(server: WaypostServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(3):
            assert http.get("/api/openapi.json").status_code == 200
            time.sleep(HEADER_TIMEOUT / 2)
    # A body that takes a while, but less than the deadline, is read whole.
    contact = httpx.post(
        f"{server.url}/tracking/contacts",
        headers={"Authorization": f"Bearer {server.tracking_key}"},
        json={},
    ).json()["contact"]

    def slow_body() -> Iterator[bytes]:
        yield json.dumps(
            {
                "channel": server.channel,
                "contact": contact,
                "activities": [{"type": "click", "value": "x"}],
            }
        ).encode()[:-3]
        time.sleep(min(HEADER_TIMEOUT, BODY_TIMEOUT) * 0.6)
        yield b"}]}"

    answer = httpx.post(
        f"{server.url}/tracking/activities",
        headers={
            "Authorization": f"Bearer {server.tracking_key}",
            "Content-Type": "application/json",
        },
        content=slow_body(),
        timeout=10,
    )
    assert answer.status_code == 207, answer.text


def test_beyond_the_connection_limit_requests_get_503(server: WaypostServer) -> None:
    held = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        answer = httpx.get(f"{server.url}/api/openapi.json", timeout=10)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "server_busy"
        assert answer.headers["retry-after"]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server.url}/api/openapi.json", timeout=10).status_code == 200
