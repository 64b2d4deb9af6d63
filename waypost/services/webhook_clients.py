"""The webhook dispatcher's HTTP clients: an ``httpx.AsyncClient`` for each slot of each
endpoint's lane that has calls to make (docs/playbooks.md, "Delivery").

httpx's connection pool does work in proportion to all the connections and calls it holds,
on every call: one pool for every call in flight would make each call slower the more
endpoints are busy and the more calls each takes at once, and a slow endpoint's connections
would weigh on the others' calls. A slot makes one call at a time, so its client holds one
connection, kept alive (HTTP/1.1) between calls, and is closed after a while unused. They
share one TLS context: loading the CA certificates takes milliseconds.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Container
from importlib.metadata import PackageNotFoundError, version

import httpx


def user_agent() -> str:
    """``Waypost-Webhooks/<version>``."""
    try:
        return f"Waypost-Webhooks/{version('waypost')}"
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "Waypost-Webhooks"


class EndpointClients:
    """The clients, by endpoint; with ``transport`` given (tests), one client for all."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.timeout = timeout
        self.transport = transport
        # Each slot's client, and when it was last used (the caller's clock, seconds).
        self._clients: dict[tuple[uuid.UUID, int], tuple[httpx.AsyncClient, float]] = {}
        self._shared: httpx.AsyncClient | None = None
        self._tls: ssl.SSLContext | None = None
        self._agent = user_agent()

    def get(self, endpoint: uuid.UUID, slot: int, now: float) -> httpx.AsyncClient:
        """The client of ``endpoint``'s ``slot``, made if it has none."""
        if self.transport is not None:
            if self._shared is None:
                self._shared = self._new()
            return self._shared
        entry = self._clients.get((endpoint, slot))
        client = entry[0] if entry is not None else self._new()
        self._clients[endpoint, slot] = (client, now)
        return client

    async def close_idle(self, now: float, idle: float, busy: Container[uuid.UUID]) -> None:
        """Close the clients unused for ``idle`` seconds, but those of ``busy`` endpoints."""
        for key, (client, used) in list(self._clients.items()):
            if now - used >= idle and key[0] not in busy:
                del self._clients[key]
                await client.aclose()

    async def close(self) -> None:
        """Close every client."""
        clients = [client for client, _ in self._clients.values()]
        self._clients.clear()
        if self._shared is not None:
            clients.append(self._shared)
            self._shared = None
        for client in clients:
            await client.aclose()

    def _new(self) -> httpx.AsyncClient:
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return httpx.AsyncClient(
            transport=self.transport,
            verify=self._tls,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            # One call at a time (a slot's), on one connection kept alive.
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={"user-agent": self._agent},
            # Where webhooks go is the endpoint's URL, checked; no proxy from the environment
            # in between.
            trust_env=False,
        )
