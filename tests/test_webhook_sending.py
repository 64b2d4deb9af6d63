"""One webhook attempt through httpx's transport seam: the signed request, the answer kept,
and each way of failing named."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import errno
import socket
import ssl
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from waypost.clock import FakeClock, SystemClock
from waypost.domain.webhook_urls import BadWebhookUrl
from waypost.services.webhook_claims import Claimed, Destination
from waypost.services.webhook_sending import Answer, attempt, destination_check
from waypost.services.webhook_transport import WebhookTransport

if TYPE_CHECKING:
    from tests.webhook_receiver import Reply, receiving
else:
    from webhook_receiver import Reply, receiving

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_c2Vjb25kIHNlY3JldCBvZiB0aGUgcm90YXRpb24="
BODY = '{"type": "activity.performed", "data": {}}'

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def claimed(url: str = "https://receiver.example/hook") -> Claimed:
    now = dt.datetime.now(dt.UTC)
    return Claimed(
        id=uuid.UUID("0190d0a4-7a5b-7c3d-8e9f-0123456789ab"),
        endpoint=Destination(uuid.uuid4(), url, (SECRET,)),
        attempt=1,
        body=BODY,
        created_at=now,
        lease_until=now + dt.timedelta(seconds=35),
    )


async def allowed(_url: str) -> None:
    return None


def send(
    handler: Handler, *, timeout: float = 5.0, check: Callable[[str], Awaitable[None]] = allowed
) -> Answer:
    async def run() -> Answer:
        transport = httpx.MockTransport(handler)
        return await attempt(transport, claimed(), SystemClock(), check, timeout)

    return asyncio.run(run())


def test_the_request_is_signed_and_the_answer_kept() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, content=b"queued")

    answer = send(handler)
    [request] = seen
    assert request.method == "POST"
    assert request.content == BODY.encode()
    assert request.headers["webhook-id"] == "msg_0190d0a47a5b7c3d8e9f0123456789ab"
    assert request.headers["accept-encoding"] == "identity"
    assert Webhook(SECRET).verify(request.content, dict(request.headers)) == {
        "type": "activity.performed",
        "data": {},
    }
    assert answer.succeeded
    assert (answer.http_status, answer.error, answer.response) == (202, None, "queued")
    assert answer.duration_ms >= 0


def test_the_timestamp_is_the_clock_s() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    clock = FakeClock(1_800_000_000)

    async def run() -> Answer:
        return await attempt(httpx.MockTransport(handler), claimed(), clock, allowed, 5.0)

    answer = asyncio.run(run())
    assert seen[0].headers["webhook-timestamp"] == "1800000000"
    assert answer.at == clock.now()


@pytest.mark.parametrize("status", [199, 300, 301, 400, 404, 500, 503])
def test_anything_but_2xx_is_a_failure(status: int) -> None:
    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"location": "https://elsewhere.example/"})

    answer = send(handler)
    assert not answer.succeeded
    assert (answer.http_status, answer.error) == (status, None)


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    async def seconds(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "30"})

    assert send(seconds).retry_after == 30
    later = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120), usegmt=True
    )

    async def date(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"retry-after": later})

    assert 110 <= (send(date).retry_after or 0) <= 120


def test_only_the_first_kilobyte_is_kept() -> None:
    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=b"x" * 100_000)

    answer = send(handler)
    assert answer.response == "x" * 1024


def test_a_refused_address_makes_no_request() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def refuse(_url: str) -> None:
        raise BadWebhookUrl("loopback")

    answer = send(handler, check=refuse)
    assert seen == []
    assert (answer.http_status, answer.error, answer.response) == (None, "address_refused", "")


@pytest.mark.parametrize(
    ("error", "named"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection_refused"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "connection_error"),
        (httpx.RemoteProtocolError("illegal status line"), "connection_error"),
        (httpx.ReadTimeout("timed out"), "timeout"),
        (httpx.ConnectTimeout("timed out"), "timeout"),
        (RuntimeError("a bug"), "connection_error"),
    ],
)
def test_each_failure_is_named(error: Exception, named: str) -> None:
    async def handler(_request: httpx.Request) -> httpx.Response:
        raise error

    answer = send(handler)
    assert (answer.http_status, answer.error) == (None, named)


def test_the_refusal_is_found_behind_httpx_s_own_error() -> None:
    async def handler(_request: httpx.Request) -> httpx.Response:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError as exc:
            raise httpx.ConnectError("All connection attempts failed") from exc

    assert send(handler).error == "connection_refused"


def test_the_timeout_covers_the_whole_call() -> None:
    async def handler(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    answer = send(handler, timeout=0.2)
    assert (answer.http_status, answer.error) == (None, "timeout")
    assert 150 <= answer.duration_ms < 2000


# -- the dispatcher's own transport, to a real receiver -----------------------------------------


def send_over_the_network(message: Claimed) -> Answer:
    async def run() -> Answer:
        transport = WebhookTransport(ssl.create_default_context())
        try:
            return await attempt(transport, message, SystemClock(), allowed, 5.0)
        finally:
            await transport.aclose()

    return asyncio.run(run())


def test_the_dispatcher_s_transport_sends_the_same_signed_call() -> None:
    with receiving(
        lambda _r, _n: Reply(202, b"q" * 3000, headers={"Retry-After": "7"})
    ) as receiver:
        message = claimed(f"{receiver.url}?x=1")
        rotated = replace(message, endpoint=replace(message.endpoint, secrets=(SECRET, OTHER)))
        answers = [send_over_the_network(message), send_over_the_network(rotated)]
        [first, second] = receiver.wait_for(2)
    assert [(a.http_status, a.error, a.retry_after) for a in answers] == [(202, None, 7.0)] * 2
    assert answers[0].response == "q" * 1024
    assert first.path == "/hook?x=1"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["user-agent"].startswith("Waypost-Webhooks")
    assert first.headers["webhook-id"] == "msg_0190d0a47a5b7c3d8e9f0123456789ab"
    assert first.body == BODY
    for received, secrets in ((first, [SECRET]), (second, [SECRET, OTHER])):
        assert len(received.headers["webhook-signature"].split(" ")) == len(secrets)
        for secret in secrets:
            Webhook(secret).verify(received.body, received.headers)


def test_the_dispatcher_s_transport_names_a_refused_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    answer = send_over_the_network(claimed(f"http://127.0.0.1:{port}/hooks"))
    assert (answer.http_status, answer.error) == (None, "connection_refused")


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_reached_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: a name with TTL 0 answers a public address to the check, then loopback.
    # The attempt connects to the address checked, never resolving the name again; that
    # public address stands for a receiver on the internet, here one that refuses.
    real_getaddrinfo = socket.getaddrinfo
    resolutions: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        resolutions.append(host)
        address = "93.184.216.34" if len(resolutions) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    connected: list[str] = []

    async def run(url: str) -> list[Answer]:
        loop = asyncio.get_running_loop()
        real_connect = loop.create_connection

        async def connect(factory: Any, host: str, port: int, **kwargs: Any) -> Any:
            connected.append(host)
            if host == "93.184.216.34":
                raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
            return await real_connect(factory, host, port, **kwargs)

        monkeypatch.setattr(loop, "create_connection", connect)
        transport = WebhookTransport(ssl.create_default_context())
        with ThreadPoolExecutor(1) as dns:
            check = destination_check(False, dns)
            try:
                return [
                    await attempt(transport, claimed(url), SystemClock(), check, 5.0)
                    for _ in range(2)
                ]
            finally:
                await transport.aclose()

    with receiving() as receiver:
        first, second = asyncio.run(run(f"http://rebind.example:{receiver.port}/hook"))
        assert receiver.requests == []
    # The first attempt went to the address it checked, and only there.
    assert (first.http_status, first.error) == (None, "connection_refused")
    assert connected == ["93.184.216.34"]
    # The next one resolved the name once more, found loopback and made no request at all.
    assert (second.http_status, second.error, second.response) == (None, "address_refused", "")
    assert resolutions == ["rebind.example"] * 2
