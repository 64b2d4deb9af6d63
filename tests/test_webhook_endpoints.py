"""The webhook endpoint service, on both databases: secrets, the URL rule, disabling, rotation,
deletion and the change feed."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from waypost.clock import FakeClock
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.records import webhook_endpoints as endpoint_records
from waypost.records.outbox import DELIVERED, FAILED, PENDING
from waypost.services.webhook_endpoints import (
    ROTATION_OVERLAP,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointService,
    WebhookEndpointUpdate,
)
from waypost.settings import Settings
from waypost.store import Change, Store, make_engine
from waypost.store.schema import playbooks, webhook_attempts, webhook_endpoints, webhook_messages

if TYPE_CHECKING:
    from tests.webhook_support import T0, add_message, make_endpoint, message_row
else:
    from webhook_support import T0, add_message, make_endpoint, message_row


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_private=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def hub(settings: Settings, clock: FakeClock) -> Iterator[Hub]:
    the_hub = Hub(settings, Store(make_engine(settings)), clock)
    yield the_hub
    the_hub.close()


def stored(hub: Hub, endpoint_id: uuid.UUID) -> Any:
    with hub.store.read() as conn:
        return conn.execute(
            sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        ).one()


def refused(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_create_makes_a_secret_shown_in_the_answer_only(hub: Hub) -> None:
    created = make_endpoint(hub, description="CRM")
    assert created.secret.startswith("whsec_")
    assert len(base64.b64decode(created.secret.removeprefix("whsec_"))) == 32
    assert (created.url, created.description, created.enabled) == (
        "http://127.0.0.1:9/hooks",
        "CRM",
        True,
    )
    assert created.created_at == created.updated_at == T0
    assert created.disabled_reason is None
    assert stored(hub, created.id).secret == created.secret
    got = hub.webhook_endpoints.get(created.id)
    assert type(got) is WebhookEndpoint
    assert not hasattr(got, "secret")
    [listed] = hub.webhook_endpoints.list_page(ListQuery()).data
    assert type(listed) is WebhookEndpoint
    assert make_endpoint(hub).secret != created.secret


def test_the_secret_is_one_standard_webhooks_libraries_take(hub: Hub) -> None:
    secret = make_endpoint(hub).secret
    hook = Webhook(secret)
    now = dt.datetime.now(dt.UTC)
    body = '{"type": "activity.performed"}'
    signature = hook.sign("msg_1", now, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert hook.verify(body, headers) == {"type": "activity.performed"}


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1/hooks", "WAYPOST_WEBHOOK_ALLOW_PRIVATE=1"),
        ("http://localhost:8080/hooks", "not a public address"),
        ("https://10.1.2.3/hooks", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://[::1]/hooks", "not a public address"),
        ("http://[::ffff:192.168.0.1]/hooks", "not a public address"),
        ("https://no-such-host.invalid/hooks", "does not resolve"),
    ],
)
def test_private_addresses_are_refused_without_the_setting(
    hub: Hub, clock: FakeClock, make_settings: Callable[..., Settings], url: str, words: str
) -> None:
    strict = WebhookEndpointService(hub.store, make_settings(), clock)
    error = refused(lambda: strict.create(WebhookEndpointCreate(url=url)))
    assert (error.status, error.code, error.field) == (400, "invalid_field", "url")
    assert words in error.message
    assert error.message[0].isupper()
    assert strict.list_page(ListQuery()).data == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "no spaces"),
        ("example.com/hooks", "starts with https://"),
        ("ftp://files.example.com/hooks", "starts with https://"),
        ("https://user:secret@example.com/hooks", "no user name or password"),
        ("https://example.com/hooks#part", "no #fragment"),
        ("https://hooks.example.com:0/", "port is from 1 to 65535"),
        ("https://", "names a host"),
        ("https://example.com:99999/", "Not a URL"),
        ("https://example.com/" + "a" * 2000, "at most 2000 characters"),
    ],
)
def test_malformed_urls_are_refused_even_with_the_setting(hub: Hub, url: str, words: str) -> None:
    error = refused(lambda: make_endpoint(hub, url))
    assert (error.status, error.code, error.field) == (400, "invalid_field", "url")
    assert words in error.message


def test_a_url_change_is_checked_again(
    hub: Hub, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    endpoint = make_endpoint(hub)
    strict = WebhookEndpointService(hub.store, make_settings(), clock)
    error = refused(lambda: strict.update(endpoint.id, WebhookEndpointUpdate(url=endpoint.url)))
    assert error.field == "url"
    changed = hub.webhook_endpoints.update(
        endpoint.id, WebhookEndpointUpdate(url="http://127.0.0.1:8/other", description="new")
    )
    assert (changed.url, changed.description) == ("http://127.0.0.1:8/other", "new")
    assert stored(hub, endpoint.id).secret == endpoint.secret


def test_disabling_fails_the_pending_messages(hub: Hub, clock: FakeClock) -> None:
    endpoint = make_endpoint(hub)
    other = make_endpoint(hub)
    pending = add_message(hub, endpoint.id)
    retrying = add_message(hub, endpoint.id, attempts=[{"http_status": 500}])
    delivered = add_message(hub, endpoint.id, status=DELIVERED, attempts=[{"http_status": 200}])
    given_up = add_message(hub, endpoint.id, status=FAILED, last_error="HTTP 500")
    elsewhere = add_message(hub, other.id)
    clock.advance(60)
    changed = hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=False))
    assert changed.enabled is False
    assert changed.disabled_reason is None  # a person disabled it
    assert changed.updated_at == T0 + dt.timedelta(seconds=60)
    for message_id in (pending, retrying):
        row = message_row(hub, message_id)
        assert (row.status, row.last_error, row.next_attempt_at) == (
            FAILED,
            "endpoint_disabled",
            None,
        )
    assert message_row(hub, delivered).status == DELIVERED
    assert (message_row(hub, given_up).status, message_row(hub, given_up).last_error) == (
        FAILED,
        "HTTP 500",
    )
    assert message_row(hub, elsewhere).status == PENDING


def test_enabling_clears_why_it_was_disabled(hub: Hub, clock: FakeClock) -> None:
    endpoint = make_endpoint(hub)
    with hub.store.write() as conn:
        conn.execute(
            webhook_endpoints.update()
            .where(webhook_endpoints.c.id == endpoint.id)
            .values(failing_since=T0 - dt.timedelta(days=6))
        )
        endpoint_records.disable(conn, endpoint.id, endpoint_records.FAILING, T0)
    found = hub.webhook_endpoints.get(endpoint.id)
    assert (found.enabled, found.disabled_reason) == (False, "failing")
    assert found.failing_since == T0 - dt.timedelta(days=6)
    # Disabled again by a person: the first reason stays.
    hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=False))
    assert hub.webhook_endpoints.get(endpoint.id).disabled_reason == "failing"
    enabled = hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=True))
    assert (enabled.enabled, enabled.disabled_reason, enabled.failing_since) == (True, None, None)


def test_a_disabled_endpoint_can_be_created(hub: Hub) -> None:
    created = make_endpoint(hub, enabled=False)
    assert hub.webhook_endpoints.get(created.id).enabled is False


def test_rotation_keeps_the_previous_secret_for_a_day(hub: Hub, clock: FakeClock) -> None:
    endpoint = make_endpoint(hub)
    clock.advance(3600)
    first = hub.webhook_endpoints.rotate_secret(endpoint.id)
    assert first.secret.startswith("whsec_")
    assert first.secret != endpoint.secret
    row = stored(hub, endpoint.id)
    assert (row.secret, row.previous_secret) == (first.secret, endpoint.secret)
    expires = T0 + dt.timedelta(hours=1) + ROTATION_OVERLAP
    assert row.previous_secret_expires_at == expires
    assert hub.webhook_endpoints.get(endpoint.id).previous_secret_expires_at == expires
    assert hub.webhook_endpoints.holds_secret(endpoint.id, first.secret)
    assert not hub.webhook_endpoints.holds_secret(endpoint.id, endpoint.secret)
    # A second rotation: the secret of the first one signs beside the new one; the oldest
    # signs no more.
    second = hub.webhook_endpoints.rotate_secret(endpoint.id)
    row = stored(hub, endpoint.id)
    assert (row.secret, row.previous_secret) == (second.secret, first.secret)
    assert refused(lambda: hub.webhook_endpoints.rotate_secret(uuid.uuid4())).status == 404


def test_delete_removes_the_delivery_log(hub: Hub) -> None:
    endpoint = make_endpoint(hub)
    kept = make_endpoint(hub)
    add_message(hub, endpoint.id, status=FAILED, attempts=[{"http_status": 500}] * 2)
    other = add_message(hub, kept.id, attempts=[{"http_status": 503}])
    hub.webhook_endpoints.delete(endpoint.id)
    assert refused(lambda: hub.webhook_endpoints.get(endpoint.id)).status == 404
    assert refused(lambda: hub.webhook_endpoints.delete(endpoint.id)).status == 404
    with hub.store.read() as conn:
        messages = conn.execute(sa.select(webhook_messages.c.id)).scalars().all()
        attempts = conn.execute(sa.select(webhook_attempts.c.message_id)).scalars().all()
    assert messages == [other]
    assert attempts == [other]


def test_an_endpoint_a_playbook_sends_to_is_not_deleted(hub: Hub) -> None:
    endpoint = make_endpoint(hub)
    with hub.store.write() as conn:
        conn.execute(
            playbooks.insert().values(
                id=uuid.uuid4(),
                name="Big loans",
                description="",
                enabled=True,
                trigger={"event": "activity", "type": "loan"},
                audience=None,
                cadence={"mode": "every_time"},
                actions=[{"kind": "webhook", "endpoint": str(endpoint.id)}],
                created_at=T0,
                updated_at=T0,
            )
        )
    error = refused(lambda: hub.webhook_endpoints.delete(endpoint.id))
    assert (error.status, error.code) == (409, "conflict")
    assert "'Big loans'" in error.message
    assert hub.webhook_endpoints.get(endpoint.id).id == endpoint.id


def test_changes_are_announced_after_commit(hub: Hub) -> None:
    seen: list[Change] = []
    hub.store.changes.subscribe(seen.append)
    endpoint = make_endpoint(hub)
    hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(description="x"))
    hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=False))
    hub.webhook_endpoints.rotate_secret(endpoint.id)
    hub.webhook_endpoints.delete(endpoint.id)
    refused(lambda: make_endpoint(hub, "ftp://example.com/"))
    assert seen == [Change("webhook_endpoint", endpoint.id)] * 5


def test_the_list_is_paged_in_creation_order(hub: Hub) -> None:
    made = [make_endpoint(hub, description=str(n)).id for n in range(5)]
    first = hub.webhook_endpoints.list_page(ListQuery(limit=3))
    assert [e.id for e in first.data] == made[:3]
    assert first.next is not None
    rest = hub.webhook_endpoints.list_page(ListQuery(limit=3, cursor=first.next))
    assert [e.id for e in rest.data] == made[3:]
    assert rest.next is None
