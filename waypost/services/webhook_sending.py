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
from waypost.domain.webhook_signing import (
    CONTENT_TYPE,
    message_id,
    signature_header,
    signed_headers,
)
from waypost.domain.webhook_urls import BadWebhookUrl, IPAddress, check_url, literal_address
from waypost.services.webhook_addresses import check_destination
from waypost.services.webhook_claims import Claimed
from waypost.services.webhook_clients import user_agent
from waypost.services.webhook_transport import Reply, Target, WebhookTransport, target

log = logging.getLogger("waypost.webhooks")

KEEP_BYTES = 1024
# Beyond this much of an answer the connection is dropped instead of read to its end.
DRAIN_BYTES = 64 * 1024
USER_AGENT = user_agent()
# The headers of every call but the three that sign it; Host and Content-Length are the
# transport's.
_FIXED = (
    f"content-type: {CONTENT_TYPE}\r\naccept-encoding: identity\r\nuser-agent: {USER_AGENT}\r\n"
).encode()

TIMEOUT = "timeout"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_ERROR = "connection_error"
ADDRESS_REFUSED = "address_refused"

# Checks a destination (raising BadWebhookUrl), awaited before every attempt; returns the
# addresses checked, which the attempt connects to (None: nothing checked, the transport
# resolves the name itself).
DestinationCheck = Callable[[str], Awaitable[tuple[str, ...] | None]]


def destination_check(allow_private: bool, executor: Executor) -> DestinationCheck:
    """The check of a URL before each attempt: on ``executor`` when a name is to be resolved
    (DNS can take seconds), right away when there is none (an IP address, or any host with
    ``allow_private``). It returns the addresses it checked: the attempt connects to one of
    them, without resolving the name again (which could answer another address)."""

    async def check(url: str) -> tuple[str, ...] | None:
        literal = _literal(url)
        if allow_private:
            return None  # the URL's form is all there is to check: no I/O
        if literal is not None:
            return check_destination(url, allow_private)  # no name to resolve: no I/O
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, check_destination, url, allow_private)

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
                addresses = await check(message.endpoint.url)
            except BadWebhookUrl:
                error = ADDRESS_REFUSED
            else:
                webhook_id = message_id(message.id)
                reply = await _call(transport, message, webhook_id, int(clock.time()), addresses)
                try:
                    status = reply.status
                    retry_after_text = reply.header(b"retry-after")
                    await reply.read_start(kept, KEEP_BYTES, DRAIN_BYTES)
                finally:
                    await reply.aclose()
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


async def _call(
    transport: httpx.AsyncBaseTransport,
    message: Claimed,
    webhook_id: str,
    timestamp: int,
    addresses: tuple[str, ...] | None,
) -> Reply | _HttpxReply:
    # The signed POST, its answer's head read; a new connection goes to one of ``addresses``
    # (those the destination check passed), or, when None, to what the host name resolves to.
    body = message.body
    secrets = message.endpoint.secrets
    if isinstance(transport, WebhookTransport):
        signature = signature_header(secrets, webhook_id, timestamp, body).encode()
        headers = b"%swebhook-id: %s\r\nwebhook-timestamp: %d\r\nwebhook-signature: %s\r\n" % (
            _FIXED,
            webhook_id.encode(),
            timestamp,
            signature,
        )
        return await transport.post(
            _target(message.endpoint.url), headers, body.encode(), addresses
        )
    # Any other httpx transport (tests put httpx.MockTransport here): the same call, through
    # httpx's Request and Response.
    fields = signed_headers(secrets, webhook_id, timestamp, body)
    fields["accept-encoding"] = "identity"
    fields["user-agent"] = USER_AGENT
    url = _parsed(message.endpoint.url)
    request = httpx.Request("POST", url, content=body.encode(), headers=fields)
    return _HttpxReply(await transport.handle_async_request(request))


class _HttpxReply:
    # An httpx Response as the attempt reads a Reply.

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code

    def header(self, name: bytes) -> str | None:
        value: str | None = self.response.headers.get(name.decode())
        return value

    async def read_start(self, kept: bytearray, _keep: int, _most: int) -> None:
        await _keep_start(self.response, kept)

    async def aclose(self) -> None:
        await self.response.aclose()


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
def _target(url: str) -> Target:
    # Where an endpoint's calls go, and how each starts: parsed once per endpoint URL.
    return target(url)


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
