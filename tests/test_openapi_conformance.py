"""The server against its own OpenAPI document, with schemathesis.

Schemathesis generates requests for every documented operation from the document the server
serves at /api/openapi.json: valid ones, and invalid ones where the document says what is
invalid. Every answer must be what the document promises (status, content type, body schema),
never a 5xx, and a request the document calls invalid must be refused. Each operation is sent
with the key its security scheme names, and path identifiers are now and then ones that exist,
so that answers other than 401 and 404 are checked too. SQLite is enough: the document is
about the HTTP layer.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from waypost.app import WaypostApp, api_document, create_app
from waypost.hub import Hub
from waypost.ids import new_id, utcnow
from waypost.records.outbox import OutboxMessage, enqueue
from waypost.services.channels import ChannelCreate
from waypost.services.keys import KeyCreate
from waypost.services.webhook_endpoints import WebhookEndpointCreate, WebhookEndpointService
from waypost.settings import load_settings
from waypost.store import Store, make_engine

ORIGIN = "https://site.example"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Per operation and generation mode; with the coverage phase, the whole run stays near a minute.
MAX_EXAMPLES = 40


class Served:
    """The application under test: schemathesis gets this at import, the ``served`` fixture
    gives it a fresh Waypost for each operation's test."""

    def __init__(self) -> None:
        self.app: WaypostApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "use the 'served' fixture"
        await self.app(scope, receive, send)


SERVED = Served()
schema = schemathesis.openapi.from_dict(api_document())
schema.app = SERVED
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    # Missing and wrong keys are tested on their own (tests/test_api_errors.py): the examples
    # go to the requests themselves.
    with_security_parameters=False,
)


@dataclass(frozen=True)
class World:
    """The keys each security scheme takes, and identifiers of things that exist."""

    admin: str
    tracking: str
    publishable: str
    known: list[str]


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[World]:
    path = tmp_path / "waypost.db"
    shutil.copy(sqlite_template, path)
    settings = load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})
    hub = Hub(settings, Store(make_engine(settings)))
    channel = hub.channels.create(
        ChannelCreate(name="Site", kind="website", allowed_origins=[ORIGIN])
    )
    # A webhook endpoint on loopback (which the server's own settings refuse) and a message.
    loopback = load_settings(
        {"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}, webhook_allow_private=True
    )
    endpoints = WebhookEndpointService(hub.store, loopback, hub.clock)
    endpoint = endpoints.create(WebhookEndpointCreate(url="http://127.0.0.1:9/hooks"))
    message = OutboxMessage(new_id(), endpoint.id, "activity.performed", "{}", utcnow())
    with hub.store.write() as conn:
        enqueue(conn, [message])
    world = World(
        admin=hub.keys.create(KeyCreate(access="admin", name="conformance")).key,
        tracking=hub.keys.create(KeyCreate(access="tracking", channel=channel.id)).key,
        publishable=hub.keys.create(KeyCreate(access="publishable", channel=channel.id)).key,
        known=[
            str(channel.id),
            str(hub.contacts.create_anonymous().contact),
            str(endpoint.id),
            str(message.id),
        ],
    )
    SERVED.app = create_app(settings, hub=hub)
    try:
        yield world
    finally:
        SERVED.app = None
        hub.close()


def credentials(case: schemathesis.Case[Any], world: World) -> dict[str, str]:
    """The headers (or query) that authenticate ``case`` the way its operation asks."""
    security: list[dict[str, Any]] | None = case.operation.definition.raw.get("security")
    if security is None:
        return {"Authorization": f"Bearer {world.admin}"}
    schemes = {name for requirement in security for name in requirement}
    if "trackingKey" in schemes:
        return {"Authorization": f"Bearer {world.tracking}", "Origin": ORIGIN}
    if "writeKey" in schemes:
        basic = base64.b64encode(f"{world.tracking}:".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if "publishableKey" in schemes:
        case.query = {**(case.query or {}), "key": world.publishable}
        return {"Origin": ORIGIN}
    return {}


@schema.parametrize()
@schema.given(data=st.data())
@hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_server_keeps_to_its_document(
    case: schemathesis.Case[Any], data: st.DataObject, served: World
) -> None:
    # Random identifiers name nothing: now and then, one that exists.
    for name, value in (case.path_parameters or {}).items():
        case.path_parameters[name] = data.draw(st.sampled_from([value, *served.known]))
    case.call_and_validate(headers=credentials(case, served), checks=CHECKS)
