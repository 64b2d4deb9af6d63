"""The delivery log, retry and replay, on both databases, with messages written through the
outbox and attempts inserted as the dispatcher writes them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from waypost.clock import FakeClock
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.records.outbox import DELIVERED, FAILED, PENDING
from waypost.services.webhook_deliveries import (
    DeliveryQuery,
    ReplayRange,
    WebhookDeliveryService,
)
from waypost.services.webhook_endpoints import WebhookEndpointUpdate
from waypost.settings import Settings
from waypost.store import Store, make_engine

if TYPE_CHECKING:
    from tests.webhook_support import T0, add_message, make_endpoint, message_row
else:
    from webhook_support import T0, add_message, make_endpoint, message_row

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_private=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + dt.timedelta(hours=1))


@pytest.fixture
def hub(settings: Settings, clock: FakeClock) -> Iterator[Hub]:
    the_hub = Hub(settings, Store(make_engine(settings)), clock)
    yield the_hub
    the_hub.close()


class Waker:
    """A dispatcher's ``wake`` that records the status of a message each time it is called,
    read in a transaction of its own: what it sees has committed."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.watched: uuid.UUID | None = None
        self.seen: list[str | None] = []

    def __call__(self) -> None:
        watched = self.watched
        self.seen.append(message_row(self.hub, watched).status if watched else None)


@pytest.fixture
def waker(hub: Hub) -> Waker:
    return Waker(hub)


@pytest.fixture
def deliveries(hub: Hub, clock: FakeClock, waker: Waker) -> WebhookDeliveryService:
    return WebhookDeliveryService(hub.store, clock, waker)


def refused(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_the_log_is_newest_first_with_each_message_s_attempts(
    hub: Hub, deliveries: WebhookDeliveryService
) -> None:
    endpoint = make_endpoint(hub)
    contact, playbook = uuid.uuid4(), uuid.uuid4()
    answer = "x" * 1024
    old = add_message(
        hub,
        endpoint.id,
        status=DELIVERED,
        contact_id=contact,
        playbook_id=playbook,
        attempts=[
            {"http_status": 500, "response": answer, "duration_ms": 40},
            {"http_status": None, "error": "timeout", "duration_ms": 15000},
            {"http_status": 204, "duration_ms": 7},
        ],
    )
    new = add_message(hub, endpoint.id, created_at=T0 + MINUTE, event_type="group.entered")
    page = deliveries.list_page(endpoint.id, DeliveryQuery())
    assert [d.id for d in page.data] == [new, old]
    assert page.next is None
    fresh, done = page.data
    assert (fresh.status, fresh.attempt_count, fresh.attempts) == (PENDING, 0, [])
    assert fresh.type == "group.entered"
    assert fresh.next_attempt_at == T0 + MINUTE
    assert done.webhook_id == f"msg_{old.hex}"
    assert (done.endpoint, done.contact, done.playbook) == (endpoint.id, contact, playbook)
    assert (done.status, done.attempt_count, done.last_status) == (DELIVERED, 3, 204)
    assert done.delivered_at == T0 + dt.timedelta(seconds=3)
    assert done.created_at == T0
    assert [(a.attempt, a.http_status, a.error, a.duration_ms) for a in done.attempts] == [
        (1, 500, None, 40),
        (2, None, "timeout", 15000),
        (3, 204, None, 7),
    ]
    assert done.attempts[0].response == answer
    assert done.attempts[0].at == T0 + dt.timedelta(seconds=1)


def test_the_log_pages_through_messages_of_one_time(
    hub: Hub, deliveries: WebhookDeliveryService
) -> None:
    endpoint = make_endpoint(hub)
    other = make_endpoint(hub)
    made = [add_message(hub, endpoint.id) for _ in range(5)]
    add_message(hub, other.id)
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = deliveries.list_page(endpoint.id, DeliveryQuery(limit=2, cursor=cursor))
        assert len(page.data) <= 2
        seen += [d.id for d in page.data]
        cursor = page.next
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)


def test_the_log_filters_by_status(hub: Hub, deliveries: WebhookDeliveryService) -> None:
    endpoint = make_endpoint(hub)
    failed = add_message(hub, endpoint.id, status=FAILED, last_error="endpoint_disabled")
    add_message(hub, endpoint.id, status=DELIVERED, attempts=[{"http_status": 200}])
    add_message(hub, endpoint.id)
    [only] = deliveries.list_page(endpoint.id, DeliveryQuery(status="failed")).data
    assert (only.id, only.last_error) == (failed, "endpoint_disabled")
    assert len(deliveries.list_page(endpoint.id, DeliveryQuery()).data) == 3


def test_unknown_endpoints_messages_and_cursors(
    hub: Hub, deliveries: WebhookDeliveryService
) -> None:
    endpoint = make_endpoint(hub)
    assert refused(lambda: deliveries.list_page(uuid.uuid4(), DeliveryQuery())).status == 404
    assert refused(lambda: deliveries.get(uuid.uuid4())).status == 404
    error = refused(lambda: deliveries.list_page(endpoint.id, DeliveryQuery(cursor="bm9wZQ")))
    assert (error.status, error.field) == (400, "cursor")


def test_one_message_shows_its_body(hub: Hub, deliveries: WebhookDeliveryService) -> None:
    endpoint = make_endpoint(hub)
    message_id = add_message(hub, endpoint.id, attempts=[{"http_status": 502}])
    found = deliveries.get(message_id)
    assert found.payload == message_row(hub, message_id).body
    assert found.payload.startswith('{"type": "activity.performed"')
    assert [a.http_status for a in found.attempts] == [502]


@pytest.mark.parametrize("status", [FAILED, DELIVERED, PENDING])
def test_retry_makes_a_message_due_now_and_wakes_after_commit(
    hub: Hub, deliveries: WebhookDeliveryService, waker: Waker, clock: FakeClock, status: str
) -> None:
    endpoint = make_endpoint(hub)
    message_id = add_message(hub, endpoint.id, status=status, attempts=[{"http_status": 500}])
    waker.watched = message_id
    retried = deliveries.retry(message_id)
    assert (retried.id, retried.status, retried.next_attempt_at) == (
        message_id,
        PENDING,
        clock.now(),
    )
    assert retried.attempt_count == 1  # the log keeps its attempts
    assert waker.seen == [PENDING]


def test_retry_is_refused_while_the_endpoint_is_disabled(
    hub: Hub, deliveries: WebhookDeliveryService, waker: Waker
) -> None:
    endpoint = make_endpoint(hub)
    message_id = add_message(hub, endpoint.id)
    hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=False))
    error = refused(lambda: deliveries.retry(message_id))
    assert (error.status, error.code) == (409, "conflict")
    assert message_row(hub, message_id).status == FAILED
    assert waker.seen == []
    assert refused(lambda: deliveries.retry(uuid.uuid4())).status == 404
    hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=True))
    assert deliveries.retry(message_id).status == PENDING
    assert waker.seen == [None]


def test_replay_sends_again_what_failed_in_the_range(
    hub: Hub, deliveries: WebhookDeliveryService, waker: Waker, clock: FakeClock
) -> None:
    endpoint = make_endpoint(hub)
    other = make_endpoint(hub)

    def failed_at(minutes: int, where: uuid.UUID = endpoint.id) -> uuid.UUID:
        at = T0 + minutes * MINUTE
        return add_message(hub, where, status=FAILED, created_at=at, last_error="HTTP 500")

    before, first, middle, at_until = failed_at(-1), failed_at(0), failed_at(5), failed_at(10)
    elsewhere = failed_at(5, other.id)
    delivered = add_message(hub, endpoint.id, status=DELIVERED, created_at=T0 + MINUTE)
    waker.watched = middle
    window = ReplayRange(since=T0, until=T0 + 10 * MINUTE)
    assert deliveries.replay(endpoint.id, window).count == 2
    assert waker.seen == [PENDING]
    for message_id in (first, middle):
        row = message_row(hub, message_id)
        assert (row.status, row.next_attempt_at) == (PENDING, clock.now())
    for message_id in (before, at_until, elsewhere):
        assert message_row(hub, message_id).status == FAILED
    assert message_row(hub, delivered).status == DELIVERED
    # Nothing left to replay: no wake.
    assert deliveries.replay(endpoint.id, window).count == 0
    assert waker.seen == [PENDING]


def test_replay_refuses_bad_ranges_and_disabled_endpoints(
    hub: Hub, deliveries: WebhookDeliveryService
) -> None:
    endpoint = make_endpoint(hub)
    naive = T0.replace(tzinfo=None)
    error = refused(lambda: deliveries.replay(endpoint.id, ReplayRange(naive, T0)))
    assert (error.status, error.field) == (400, "since")
    error = refused(lambda: deliveries.replay(endpoint.id, ReplayRange(T0, T0)))
    assert (error.status, error.field) == (400, "until")
    unknown = refused(lambda: deliveries.replay(uuid.uuid4(), ReplayRange(T0, T0 + MINUTE)))
    assert unknown.status == 404
    hub.webhook_endpoints.update(endpoint.id, WebhookEndpointUpdate(enabled=False))
    error = refused(lambda: deliveries.replay(endpoint.id, ReplayRange(T0, T0 + MINUTE)))
    assert (error.status, error.code) == (409, "conflict")
