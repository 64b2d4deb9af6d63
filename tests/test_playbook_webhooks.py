"""Playbooks end to end, on both databases: what fires them goes in through the tracking API,
the dispatcher sends the messages to a real receiver on loopback, and the receiver checks them
with the ``standardwebhooks`` library. Each trigger kind under each cadence, the audience at
trigger time, retries under one webhook-id as the delivery log shows them, and a slow endpoint
beside a fast one.

The bad input of the playbooks' and the endpoints' API (unknown type, group or endpoint, an
audience that does not parse, a loopback URL without the setting, a non-URL) is covered by
tests/test_api_playbooks.py and tests/test_api_webhooks.py.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from waypost.clock import Clock, FakeClock, SystemClock
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.settings import Settings
from waypost.store import Store, make_engine

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import Groups, make_groups, parse_time
    from tests.playbook_support import LOANS, Playbooks, loan_trigger, messages
    from tests.webhook_receiver import Received, Receiver, Reply, eventually, receiving
else:
    from group_support import Groups, make_groups, parse_time
    from playbook_support import LOANS, Playbooks, loan_trigger, messages
    from webhook_receiver import Received, Receiver, Reply, eventually, receiving

FAST = {
    "webhook_allow_private": True,
    "webhook_retry_schedule": "0.1s,0.2s",
    "webhook_poll_seconds": 0.5,
}
EMAIL = "ann@example.com"
IN_BRNO = {"contact": {"field": "city", "equals": "Brno"}}
MESSAGE_TYPES = {
    "activity": "activity.performed",
    "group_entered": "group.entered",
    "group_exited": "group.exited",
    "consent_agreed": "consent.agreed",
    "consent_revoked": "consent.revoked",
}
# How many of three firings (the third 7 days after the first two) each cadence sends.
CADENCES: dict[str, tuple[dict[str, Any], list[bool]]] = {
    "every_time": ({"mode": "every_time"}, [True, True, True]),
    "once": ({"mode": "once"}, [True, False, False]),
    "once_per_7_days": ({"mode": "once_per", "days": 7}, [True, False, True]),
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST)


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """The system's clock; a FakeClock at the system's now when parametrized ``"fake"``."""
    return FakeClock() if getattr(request, "param", "system") == "fake" else SystemClock()


@pytest.fixture
def hub(settings: Settings, clock: Clock) -> Iterator[Hub]:
    the_hub = Hub(settings, Store(make_engine(settings)), clock=clock)
    yield the_hub
    the_hub.close()


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[{"name": "amount", "type": "decimal"}],
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as the_receiver:
        yield the_receiver


def loan(amount: str = "20000.50") -> dict[str, Any]:
    return {"type": LOANS, "value": amount, "fields": {"amount": amount}}


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    secret: str


@dataclass
class Site:
    """The admin and tracking APIs of one in-process server, and its hub."""

    hub: Hub
    api: Groups
    books: Playbooks

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.books.get(path, **params)

    def endpoint(self, url: str) -> Endpoint:
        answer = self.api.client.post(
            "/api/webhook-endpoints", json={"url": url}, headers=self.api.headers
        )
        assert answer.status_code == 201, answer.text
        return Endpoint(uuid.UUID(answer.json()["id"]), answer.json()["secret"])

    def consent(self, code_name: str) -> dict[str, Any]:
        body = {
            "code_name": code_name,
            "display_name": code_name,
            "texts": {"en": {"short_text": "Short", "full_text": "<p>Full</p>"}},
        }
        answer = self.api.client.post("/api/consents", json=body, headers=self.api.headers)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    def activity(self, contact: str, activity_id: str) -> dict[str, Any]:
        """The activity as ``GET /api/activities`` shows it."""
        page = self.get("/api/activities", contact=contact, type=LOANS, limit=1000)
        shown: list[dict[str, Any]] = [a for a in page["data"] if a["id"] == activity_id]
        assert len(shown) == 1, page
        return shown[0]

    def deliveries(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        return self.api.walk(f"/api/webhook-endpoints/{endpoint.id}/deliveries")

    def all_delivered(self, endpoint: Endpoint, count: int) -> bool:
        found = self.deliveries(endpoint)
        return len(found) == count and all(d["status"] == "delivered" for d in found)


@pytest.fixture
def site(hub: Hub, client: TestClient, admin_headers: dict[str, str], tracker: Tracker) -> Site:
    return Site(hub, make_groups(client, admin_headers, tracker), Playbooks(client, admin_headers))


def verified(request: Received, secret: str) -> Any:
    """The body, its signature checked by ``standardwebhooks``: ``verify`` when the timestamp
    is within the library's five minutes of now; when a FakeClock has moved days on, the
    signature the library makes for the header's timestamp must be among those sent."""
    stamp = int(request.headers["webhook-timestamp"])
    hook = Webhook(secret)
    if abs(stamp - time.time()) < 240:
        return hook.verify(request.body, request.headers)
    at = dt.datetime.fromtimestamp(stamp, dt.UTC)
    expected = hook.sign(request.webhook_id, at, request.body)
    assert expected in request.headers["webhook-signature"].split(" ")
    return json.loads(request.body)


# -- each trigger kind, once per cadence -------------------------------------------------------


class Firing:
    """Sets off one kind of trigger for a contact through the APIs, and undoes what it did so
    that it can fire again; :meth:`fire` answers the message's expected subject."""

    def __init__(self, kind: str, site: Site) -> None:
        self.kind = kind
        self.site = site
        self.subject: dict[str, Any] = {}
        if kind == "activity":
            self.trigger = loan_trigger(amount={"gte": "10000"})
        elif kind.startswith("group_"):
            group = site.api.create(IN_BRNO, "In Brno")
            self.trigger = {"event": kind, "group": group["id"]}
            self.subject = {"group": {"id": group["id"], "name": "In Brno"}}
        else:
            consent = site.consent("Newsletter")
            self.trigger = {"event": kind, "consent": "Newsletter"}
            self.subject = {"consent": {"code_name": "Newsletter", "version": consent["version"]}}

    def _state(self, contact: str, on: bool) -> None:
        if self.kind.startswith("group_"):
            self.site.api.data_input(contact, City="Brno" if on else "Prague")
            assert self.site.hub.group_updates.wait_idle()
        else:
            self.site.api.agree(contact, "Newsletter", on)

    @property
    def _leaving(self) -> bool:
        return self.kind in ("group_exited", "consent_revoked")

    def prepare(self, contact: str) -> None:
        if self._leaving:
            self._state(contact, True)

    def fire(self, contact: str) -> dict[str, Any]:
        if self.kind != "activity":
            self._state(contact, not self._leaving)
            return self.subject
        # One activity the filter lets through, one it does not: one message.
        _small, big = self.site.api.log(contact, loan("9999.99"), loan("20000.50"))
        return {"activity": self.site.activity(contact, big)}

    def reset(self, contact: str) -> None:
        if self.kind != "activity":
            self._state(contact, self._leaving)


def check_body(
    body: Any, kind: str, book: dict[str, Any], contact: dict[str, Any], subject: dict[str, Any]
) -> None:
    assert body["type"] == MESSAGE_TYPES[kind]
    data = body["data"]
    assert set(data) == {"playbook", "contact", *subject}
    assert data["playbook"] == {"id": book["id"], "name": book["name"]}
    sent = data["contact"]
    assert {"id", "email", "first_name", "last_name", "city"} <= set(sent) <= set(contact)
    assert sent == {k: contact[k] for k in sent}
    assert sent["email"] == EMAIL
    for key, value in subject.items():
        if key != "activity":
            assert data[key] == value
    if "activity" in subject:
        # The activity exactly as GET /api/activities shows it.
        assert data["activity"] == subject["activity"]


@pytest.mark.parametrize("clock", ["fake"], indirect=True)
@pytest.mark.parametrize("cadence", list(CADENCES))
@pytest.mark.parametrize("kind", list(MESSAGE_TYPES))
def test_each_trigger_is_delivered_once_per_cadence(
    site: Site,
    loans: ActivityType,
    receiver: Receiver,
    clock: FakeClock,
    kind: str,
    cadence: str,
) -> None:
    mode, sends = CADENCES[cadence]
    endpoint = site.endpoint(receiver.url)
    firing = Firing(kind, site)
    book = site.books.create(firing.trigger, endpoint.id, mode, name=f"On {kind}")
    contact = site.api.new_contact()
    site.api.data_input(contact, Email=EMAIL, FirstName="Ann")
    firing.prepare(contact)
    got = 0
    for n, sent in enumerate(sends):
        if n:
            firing.reset(contact)
        if n == 2:
            clock.advance(7 * 86400)
        subject = firing.fire(contact)
        if not sent:
            continue
        got += 1
        request = receiver.wait_for(got)[-1]
        body = verified(request, endpoint.secret)
        check_body(body, kind, book, site.get(f"/api/contacts/{contact}"), subject)
        assert parse_time(body["timestamp"]) == clock.now()
        assert int(request.headers["webhook-timestamp"]) == int(clock.time())
    # What the cadence held back was never written: the outbox holds what was sent.
    assert len(messages(site.hub)) == got == sends.count(True)
    eventually(lambda: site.all_delivered(endpoint, got))
    time.sleep(0.2)
    assert len(receiver.requests) == got
    assert len({r.webhook_id for r in receiver.requests}) == got
    runs = site.get(f"/api/playbooks/{book['id']}/runs")["data"]
    assert [r["event"] for r in runs] == [kind] * got


# -- the audience ------------------------------------------------------------------------------


def test_the_audience_is_the_one_at_trigger_time(
    site: Site, loans: ActivityType, receiver: Receiver
) -> None:
    endpoint = site.endpoint(receiver.url)
    site.books.create(loan_trigger(), endpoint.id, audience=IN_BRNO)
    inside, outside = site.api.new_contact(), site.api.new_contact()
    site.api.data_input(inside, Email=EMAIL, City="Brno")
    site.api.log(outside, loan())
    [first] = site.api.log(inside, loan())
    # The one outside moves in: what it does from then on is sent, not what it did before.
    site.api.data_input(outside, City="Brno")
    [second] = site.api.log(outside, loan())
    # And the one inside moves out.
    site.api.data_input(inside, City="Prague")
    site.api.log(inside, loan())
    requests = receiver.wait_for(2)
    eventually(lambda: site.all_delivered(endpoint, 2))
    time.sleep(0.2)
    assert len(receiver.requests) == 2
    sent = sorted(
        (verified(r, endpoint.secret)["data"] for r in requests),
        key=lambda data: data["activity"]["received_at"],
    )
    assert [(d["contact"]["id"], d["activity"]["id"]) for d in sent] == [
        (inside, first),
        (outside, second),
    ]
    assert [d["contact"]["city"] for d in sent] == ["Brno", "Brno"]


# -- retries -----------------------------------------------------------------------------------


def test_500_twice_then_200_is_three_attempts_of_one_message_in_the_log(
    site: Site, loans: ActivityType
) -> None:
    def respond(_request: Received, n: int) -> Reply:
        return Reply(500, b"not yet") if n < 2 else Reply(200, b"thanks")

    with receiving(respond) as receiver:
        endpoint = site.endpoint(receiver.url)
        book = site.books.create(loan_trigger(), endpoint.id)
        contact = site.api.new_contact()
        site.api.data_input(contact, Email=EMAIL)
        [activity] = site.api.log(contact, loan())
        requests = receiver.wait_for(3)
        eventually(lambda: site.all_delivered(endpoint, 1))
        time.sleep(0.3)
        assert len(receiver.requests) == 3
    [delivery] = site.deliveries(endpoint)
    assert {r.webhook_id for r in requests} == {delivery["webhook_id"]}
    assert delivery["webhook_id"] == f"msg_{uuid.UUID(delivery['id']).hex}"
    assert len({r.body for r in requests}) == 1
    for request in requests:
        body = verified(request, endpoint.secret)
        assert body["data"]["activity"]["id"] == activity
    assert (delivery["status"], delivery["attempt_count"], delivery["last_status"]) == (
        "delivered",
        3,
        200,
    )
    assert (delivery["playbook"], delivery["contact"]) == (book["id"], contact)
    assert [(a["attempt"], a["http_status"], a["response"]) for a in delivery["attempts"]] == [
        (1, 500, "not yet"),
        (2, 500, "not yet"),
        (3, 200, "thanks"),
    ]
    shown = site.get(f"/api/webhook-deliveries/{delivery['id']}")
    assert shown["payload"] == requests[0].body


# -- a slow endpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_slow_endpoint_does_not_delay_the_other_one_of_a_playbook(
    site: Site, loans: ActivityType
) -> None:
    with receiving(lambda _r, _n: Reply(delay=10)) as slow, receiving() as fast:
        stuck, quick = site.endpoint(slow.url), site.endpoint(fast.url)
        answer = site.books.post(
            name="To both",
            trigger=loan_trigger(),
            cadence={"mode": "every_time"},
            actions=[
                {"kind": "webhook", "endpoint": str(stuck.id)},
                {"kind": "webhook", "endpoint": str(quick.id)},
            ],
        )
        assert answer.status_code == 201, answer.text
        contact = site.api.new_contact()
        # The slow endpoint's lane fills: its calls in flight, and more claimed behind them.
        site.api.log(contact, *[loan()] * 8)
        slow.wait_for(site.hub.webhooks.concurrency)
        fast.wait_for(8)
        logged: dict[str, float] = {}
        for _ in range(40):
            sent = time.monotonic()
            [activity] = site.api.log(contact, loan())
            logged[activity] = sent
        arrived = fast.wait_for(48, timeout=5)[8:]
        lags = sorted(
            r.at - logged[verified(r, quick.secret)["data"]["activity"]["id"]] for r in arrived
        )
        assert len(slow.requests) == site.hub.webhooks.concurrency
        slow.release()
    print(f"fast endpoint beside a slow one: lag p50 {lags[20]:.3f} s, max {lags[-1]:.3f} s")
    assert lags[-1] < 1.0, lags
