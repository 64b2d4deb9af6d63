"""One webhook attempt: the destination checked again, the signed POST, and what came back
(docs/playbooks.md, "Delivery").

The answer's body is read only so far (the first 1 KB is kept for the delivery log, a little
more is read so the connection can be used again); a receiver that sends more loses its
connection, not Waypost's memory. Bodies are asked for uncompressed, so what is kept is what
the receiver wrote.
"""

from __future__ import annotations

import asyncio
import codecs
import datetime as dt
import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import httpx

from waypost.clock import Clock
from waypost.domain.webhook_schedule import parse_retry_after
from waypost.domain.webhook_signing import message_id, signed_headers
from waypost.domain.webhook_urls import BadWebhookUrl, IPAddress, check_url, literal_address
from waypost.services.webhook_addresses import check_destination
from waypost.services.webhook_claims import Claimed
from waypost.services.webhook_clients import user_agent

log = logging.getLogger("waypost.webhooks")

KEEP_BYTES = 1024
# Beyond this much of an answer the connection is dropped instead of read to its end.
DRAIN_BYTES = 64 * 1024
USER_AGENT = user_agent()

TIMEOUT = "timeout"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_ERROR = "connection_error"
ADDRESS_REFUSED = "address_refused"

# Checks a destination (raising BadWebhookUrl), awaited before every attempt.
DestinationCheck = Callable[[str], Awaitable[None]]


def destination_check(allow_private: bool, executor: Executor) -> DestinationCheck:
    """The check of a URL before each attempt: on ``executor`` when a name is to be resolved
    (DNS can take seconds), right away when there is none (an IP address, or any host with
    ``allow_private``)."""

    async def check(url: str) -> None:
        literal = _literal(url)
        if allow_private:
            return  # the URL's form is all there is to check: no I/O
        if literal is not None:
            check_destination(url, allow_private)  # no name to resolve: no I/O
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, check_destination, url, allow_private)

    return check


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt found out. ``http_status`` None: no answer came, ``error`` says why."""

    at: dt.datetime
    http_status: int | None
    duration_ms: int
    error: str | None
    response: str
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


async def attempt(
    transport: httpx.AsyncBaseTransport,
    message: Claimed,
    clock: Clock,
    check: DestinationCheck,
    timeout: float,
) -> Answer:
    """Make one attempt of ``message`` within ``timeout`` seconds, all of it included, on
    ``transport`` (no redirect followed, no proxy)."""
    at = clock.now()
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    retry_after_text: str | None = None
    kept = bytearray()
    try:
        async with asyncio.timeout(timeout):
            try:
                await check(message.endpoint.url)
            except BadWebhookUrl:
                error = ADDRESS_REFUSED
            else:
                webhook_id = message_id(message.id)
                headers = signed_headers(
                    message.endpoint.secrets, webhook_id, int(clock.time()), message.body
                )
                headers["accept-encoding"] = "identity"
                headers["user-agent"] = USER_AGENT
                request = httpx.Request(
                    "POST",
                    _parsed(message.endpoint.url),
                    content=message.body.encode(),
                    headers=headers,
                )
                response = await transport.handle_async_request(request)
                try:
                    status = response.status_code
                    retry_after_text = response.headers.get("retry-after")
                    await _keep_start(response, kept)
                finally:
                    await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        # An answer that came but whose body did not finish in time still counts.
        if status is None:
            error = TIMEOUT
    except httpx.TransportError as exc:
        if status is None:
            error = _connection_error(exc)
    except Exception:  # a failed attempt, whatever broke; the next one may fare better
        log.exception("webhook attempt of message %s failed", message.id)
        if status is None:
            error = CONNECTION_ERROR
    duration_ms = int((time.perf_counter() - started) * 1000)
    retry_after = (
        parse_retry_after(retry_after_text, clock.now()) if retry_after_text is not None else None
    )
    return Answer(at, status, duration_ms, error, _text(bytes(kept)), retry_after)


async def _keep_start(response: httpx.Response, kept: bytearray) -> None:
    # Raw bytes, as they came: a body compressed against our asking is not inflated.
    read = 0
    try:
        async for chunk in response.aiter_raw():
            if len(kept) < KEEP_BYTES:
                kept += chunk[: KEEP_BYTES - len(kept)]
            read += len(chunk)
            if read > DRAIN_BYTES:
                return
    except httpx.StreamConsumed:
        # A transport that hands over the whole body at once (httpx's MockTransport).
        kept += response.content[:KEEP_BYTES]


@functools.lru_cache(maxsize=1024)
def _literal(url: str) -> IPAddress | None:
    # The URL's form checked (BadWebhookUrl, never cached, when it is wrong), and the address
    # its host spells, if it spells one: the same for every call to an endpoint. What a name
    # resolves to is looked up again for each attempt.
    host, _ = check_url(url)
    return literal_address(host)


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    # Parsing an endpoint's URL for every call cost more than the rest of building the
    # request; httpx.URL is immutable, so one serves all of an endpoint's calls.
    return httpx.URL(url)


def _connection_error(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError) or (
            isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED
        ):
            return CONNECTION_REFUSED
        seen = seen.__cause__ or seen.__context__
    # httpcore keeps the OSError's text but not always the OSError itself.
    if "connection refused" in str(exc).lower() or f"[errno {errno.ECONNREFUSED}]" in str(exc):
        return CONNECTION_REFUSED
    return CONNECTION_ERROR


def _text(body: bytes) -> str:
    # Kept as text for the delivery log, without the character the first 1 KB may have cut
    # in two; PostgreSQL's text holds no NUL.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(body, final=False)
    return text.replace("\x00", "\ufffd")
