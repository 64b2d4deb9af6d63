"""The webhook dispatcher's HTTP transports: one for each slot of each endpoint's lane that
has calls to make (docs/playbooks.md, "Delivery").

A slot makes one call at a time, so its transport (``webhook_transport``) holds one
connection, kept alive (HTTP/1.1) between calls, and is closed after a while unused: a slow
endpoint's connections never weigh on another's calls. Calls go straight to the transport,
without an ``httpx.AsyncClient`` in between: a webhook call needs none of a client's cookies,
redirects, authentication or proxies, and its per-call work cost as much CPU as the rest of
the call. They share one TLS context: loading the CA certificates takes milliseconds.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Container
from importlib.metadata import PackageNotFoundError, version

import httpx

from waypost.services.webhook_transport import WebhookTransport


def user_agent() -> str:
    """``Waypost-Webhooks/<version>``."""
    try:
        return f"Waypost-Webhooks/{version('waypost')}"
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "Waypost-Webhooks"


class EndpointClients:
    """The transports, by endpoint and slot; with ``transport`` given (tests), that one for
    all."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.timeout = timeout
        self.transport = transport
        # Each slot's transport, and when it was last used (the caller's clock, seconds).
        self._transports: dict[tuple[uuid.UUID, int], tuple[WebhookTransport, float]] = {}
        self._tls: ssl.SSLContext | None = None

    def get(self, endpoint: uuid.UUID, slot: int, now: float) -> httpx.AsyncBaseTransport:
        """The transport of ``endpoint``'s ``slot``, made if it has none."""
        if self.transport is not None:
            return self.transport
        entry = self._transports.get((endpoint, slot))
        if entry is None:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            transport = WebhookTransport(self._tls)
        else:
            transport = entry[0]
        self._transports[endpoint, slot] = (transport, now)
        return transport

    async def close_idle(self, now: float, idle: float, busy: Container[uuid.UUID]) -> None:
        """Close the transports unused for ``idle`` seconds, but those of ``busy`` endpoints."""
        for key, (transport, used) in list(self._transports.items()):
            if now - used >= idle and key[0] not in busy:
                del self._transports[key]
                await transport.aclose()

    async def close(self) -> None:
        """Close every transport, the one given included."""
        transports: list[httpx.AsyncBaseTransport] = [t for t, _ in self._transports.values()]
        self._transports.clear()
        if self.transport is not None:
            transports.append(self.transport)
        for transport in transports:
            await transport.aclose()
