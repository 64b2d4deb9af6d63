"""The dispatcher's HTTP transports: one per slot of an endpoint's lane, closed when unused,
one for all when a transport stands in for the network."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from waypost.services.webhook_clients import EndpointClients, user_agent
from waypost.services.webhook_transport import WebhookTransport


def test_one_client_per_slot_closed_once_unused() -> None:
    async def run() -> None:
        clients = EndpointClients(15.0)
        a, b = uuid.uuid4(), uuid.uuid4()
        first = clients.get(a, 0, now=0)
        assert clients.get(a, 0, now=10) is first
        second = clients.get(a, 1, now=10)
        other = clients.get(b, 0, now=0)
        assert len({id(first), id(second), id(other)}) == 3
        assert isinstance(first, WebhookTransport)
        assert isinstance(other, WebhookTransport)
        assert isinstance(second, WebhookTransport)
        # b unused for 60 s but busy; a used 50 s ago.
        await clients.close_idle(now=60, idle=60, busy={b})
        assert not first.closed
        assert not other.closed
        await clients.close_idle(now=70, idle=60, busy=set())
        assert first.closed
        assert other.closed
        assert second.closed
        assert clients.get(a, 0, now=80) is not first
        await clients.close()

    asyncio.run(run())


def test_a_transport_given_is_the_one_for_all() -> None:
    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    async def run() -> None:
        given = httpx.MockTransport(handler)
        clients = EndpointClients(15.0, given)
        assert clients.get(uuid.uuid4(), 0, now=0) is given
        assert clients.get(uuid.uuid4(), 1, now=0) is given
        await clients.close()

    asyncio.run(run())


def test_the_user_agent_names_waypost_and_its_version() -> None:
    assert user_agent().startswith("Waypost-Webhooks/")
