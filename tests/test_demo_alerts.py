"""The demo's loan alerts: the backend's receiver verifies Standard Webhooks signatures, keeps
each message once, and the playbook and endpoint are prepared with the demo's data."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import msgspec
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from waypost.demo import create_demo_app, prepare_demo
from waypost.demo.alerts import PLAYBOOK_NAME, THRESHOLD, AlertInbox
from waypost.demo.data import LOAN_TYPE, DemoSetup
from waypost.domain.webhook_signing import signed_headers
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.settings import Settings


@pytest.fixture
def hub_allowing_private(make_settings: Callable[..., Settings]) -> Iterator[Hub]:
    the_hub = Hub(make_settings(webhook_allow_private=True))
    yield the_hub
    the_hub.close()


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SITE = "http://127.0.0.1:8001"


def message(contact: str = "0190c0de-0000-7000-8000-000000000001", amount: str = "150000") -> str:
    data = {"type": "activity.performed", "timestamp": "2026-12-03T08:00:00Z", "data": {
        "playbook": {"id": str(uuid.uuid4()), "name": PLAYBOOK_NAME},
        "contact": {"id": contact, "email": "ann@example.com"},
        "activity": {"type": LOAN_TYPE, "fields": {"amount": amount}},
    }}  # fmt: skip
    return json.dumps(data)


def test_a_signed_message_is_kept_once() -> None:
    inbox = AlertInbox(SECRET)
    body = message()
    headers = signed_headers([SECRET], "msg_1", int(time.time()), body)
    # The same headers an independent implementation accepts.
    Webhook(SECRET).verify(body, headers)
    assert inbox.receive(headers, body.encode()) == 204
    assert inbox.receive(headers, body.encode()) == 204  # a retry of the same message
    assert [(a.amount, a.email) for a in inbox.alerts] == [("150000", "ann@example.com")]


def test_what_is_not_signed_by_the_secret_is_refused() -> None:
    inbox = AlertInbox(SECRET)
    body = message()
    now = int(time.time())
    other = "whsec_" + "a" * 32
    assert inbox.receive(signed_headers([other], "msg_1", now, body), body.encode()) == 401
    stale = signed_headers([SECRET], "msg_1", now - 3600, body)
    assert inbox.receive(stale, body.encode()) == 401
    changed = signed_headers([SECRET], "msg_1", now, body)
    assert inbox.receive(changed, message(amount="999999").encode()) == 401
    assert inbox.receive({}, body.encode()) == 401
    # During a rotation both signatures travel; either one will do.
    both = signed_headers([other, SECRET], "msg_2", now, body)
    assert inbox.receive(both, body.encode()) == 204
    assert AlertInbox(None).receive(both, body.encode()) == 401
    assert len(inbox.alerts) == 1


def test_a_signed_body_that_is_not_a_message_is_a_400() -> None:
    inbox = AlertInbox(SECRET)
    body = "[1, 2]"
    headers = signed_headers([SECRET], "msg_1", int(time.time()), body)
    assert inbox.receive(headers, body.encode()) == 400
    assert not inbox.alerts


def test_prepare_demo_makes_the_playbook_and_its_endpoint(hub_allowing_private: Hub) -> None:
    hub = hub_allowing_private
    first = prepare_demo(hub, [SITE])
    again = prepare_demo(hub, [SITE])
    assert first.alerts_secret
    assert again.alerts_secret
    assert first.alerts_secret != again.alerts_secret  # shown once: a start rotates it
    endpoints = hub.webhook_endpoints.list_page(ListQuery()).data
    assert [e.url for e in endpoints] == [f"{SITE}/webhooks/waypost"]
    playbooks = hub.playbooks.list_page(ListQuery()).data
    assert [p.name for p in playbooks] == [PLAYBOOK_NAME]
    trigger = msgspec.to_builtins(playbooks[0].trigger)
    assert trigger == {
        "event": "activity",
        "type": LOAN_TYPE,
        "fields": {"amount": {"gte": THRESHOLD}},
    }


def test_without_private_webhooks_the_demo_runs_without_alerts(hub: Hub) -> None:
    setup = prepare_demo(hub, [SITE])
    assert setup.alerts_secret is None
    assert hub.playbooks.list_page(ListQuery()).data == []
    with TestClient(create_demo_app(setup, "http://127.0.0.1:8000")) as site:
        page = site.get("/alerts").text
    assert "Loan alerts are off" in page


def test_the_alerts_page_lists_what_arrived(hub_allowing_private: Hub) -> None:
    setup: DemoSetup = prepare_demo(hub_allowing_private, [SITE])
    assert setup.alerts_secret is not None
    body = message(contact="0190c0de-0000-7000-8000-0000000000aa")
    headers = signed_headers([setup.alerts_secret], "msg_9", int(time.time()), body)
    with TestClient(create_demo_app(setup, "http://127.0.0.1:8000")) as site:
        assert site.post("/webhooks/waypost", content=body, headers=headers).status_code == 204
        assert site.post("/webhooks/waypost", content=body).status_code == 401
        page = site.get("/alerts").text
    assert "0190c0de-0000-7000-8000-0000000000aa" in page
    assert "150000" in page
