"""The browser endpoints over HTTP, on both databases: docs/browser-tracking.md, issue 5 (2, 4).

Publishable keys of website channels only, from allowed origins only (with CORS answers),
client-side types only, cookie levels, the channel's tracking consent, rate limits (on a fake
clock, so that windows can pass without waiting), rejected activities, body media types, and a
publishable key that can read nothing anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
import redis
import sqlalchemy as sa
import uvicorn
from starlette.testclient import TestClient

from waypost.app import WaypostApp, admin_operations
from waypost.clientip import parse_trusted_proxies, uvicorn_proxy_options
from waypost.clock import FakeClock
from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.ratelimit import RedisRateLimiter
from waypost.services.activities import ActivityQuery
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate, ConsentText
from waypost.services.erasure import Actor
from waypost.services.keys import CreatedKey
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import (
    activities,
    browser_consent_requests,
    channels,
    consent_agreements,
    contact_external_ids,
    contacts,
    rejected_activities,
)
from waypost.transports.browser import BrowserApp

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck

ORIGIN = "https://bank.example"
SECOND_ORIGIN = "https://loans.example"
PARTNER_ORIGIN = "https://partner.example"  # allowed on another channel only
FOREIGN_ORIGIN = "https://evil.example"  # allowed nowhere
CONSENT = "TrackingConsent"
DAY = 86400


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub(settings: Settings, clock: FakeClock) -> Iterator[Hub]:
    """The shared hub on the fake clock (its rate limiter in process)."""
    the_hub = Hub(settings, Store(make_engine(settings)), clock=clock)
    yield the_hub
    the_hub.close()


@dataclass
class Site:
    """A website channel with a publishable key, as the pages on its origins call it."""

    client: TestClient
    hub: Hub
    channel: Channel
    key: str

    def post(
        self,
        route: str,
        body: object,
        *,
        key: str | None = "",
        origin: str | None = ORIGIN,
        content_type: str | None = "text/plain",
        client: TestClient | None = None,
    ) -> httpx2.Response:
        """POST /browser/{route}; ``key`` "" is the site's key, None none at all."""
        headers = {}
        if origin is not None:
            headers["Origin"] = origin
        if content_type is not None:
            headers["Content-Type"] = content_type
        params = {"key": self.key if key == "" else key} if key is not None else {}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return (client or self.client).post(
            f"/browser/{route}", params=params, content=content, headers=headers
        )

    def consent(
        self,
        contact: str | None = None,
        agree: bool = True,
        consent: str = CONSENT,
        request_id: str | None = None,
    ) -> httpx2.Response:
        body: dict[str, Any] = {"consent": consent, "agree": agree}
        if contact is not None:
            body["contact"] = contact
        if request_id is not None:
            body["id"] = request_id
        return self.post("consent", body)

    def visitor(self) -> str:
        """A new visitor who agreed to the tracking consent: their contact."""
        answer = self.consent()
        assert answer.status_code == 200, answer.text
        contact = answer.json()["contact"]
        assert isinstance(contact, str)
        return contact

    def log(
        self,
        contact: str,
        activity: dict[str, Any],
        cookie_level: str = "visitor",
        **options: Any,
    ) -> httpx2.Response:
        body = {"contact": contact, "cookieLevel": cookie_level, "activity": activity}
        return self.post("activity", body, **options)

    def rejected(self) -> list[sa.Row[Any]]:
        with self.hub.store.read() as conn:
            return list(
                conn.execute(
                    sa.select(rejected_activities)
                    .where(rejected_activities.c.channel_id == self.channel.id)
                    .order_by(rejected_activities.c.received_at, rejected_activities.c.id)
                ).all()
            )

    def stored(self, contact: str) -> int:
        with self.hub.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(activities)
                    .where(activities.c.contact_id == uuid.UUID(contact))
                ).scalar_one()
            )


@pytest.fixture
def tracking_consent(hub: Hub) -> str:
    hub.consents.create(
        ConsentCreate(
            code_name=CONSENT,
            display_name="Tracking",
            texts={"en": ConsentText("We track.", "<p>We track your visits.</p>")},
        )
    )
    return CONSENT


@pytest.fixture
def make_site(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Callable[..., Site]:
    def make(**fields: Any) -> Site:
        fields.setdefault("kind", "website")
        fields.setdefault("allowed_origins", [ORIGIN, SECOND_ORIGIN])
        channel = make_channel(**fields)
        site = Site(client, hub, channel, make_key("publishable", channel.id).key)
        hub.catalog.invalidate()
        return site

    return make


@pytest.fixture
def site(make_site: Callable[..., Site], tracking_consent: str) -> Site:
    """The bank's website: two origins, and the tracking consent required before tracking."""
    return make_site(tracking_consent=tracking_consent)


@pytest.fixture
def loan(make_type: Callable[..., ActivityType], hub: Hub) -> ActivityType:
    """The custom client-side type of the Kentico reference."""
    kind = make_type(
        name="Loan calculator usage", code_name="custom_loan_calculator", client_side=True
    )
    hub.catalog.invalidate()
    return kind


LOAN = {"type": "custom_loan_calculator", "value": "5000"}
PAGE = {"type": "pagevisit", "url": "https://bank.example/loans"}


def set_limits(
    client: TestClient, admin_headers: dict[str, str], kind: ActivityType, limits: object
) -> None:
    answer = client.patch(
        f"/api/activity-types/{kind.id}", json={"rate_limits": limits}, headers=admin_headers
    )
    assert answer.status_code == 200, answer.text


# -- keys ---------------------------------------------------------------------------------------


ROUTES = ["consent", "activity", "identify"]


def route_body(route: str, contact: str) -> dict[str, Any]:
    if route == "consent":
        return {"contact": contact, "consent": CONSENT, "agree": True}
    if route == "identify":
        return {"contact": contact, "cookieLevel": "visitor", "email": "john@example.com"}
    return {"contact": contact, "cookieLevel": "visitor", "activity": LOAN}


def test_a_publishable_key_of_the_website_channel_works(site: Site, loan: ActivityType) -> None:
    contact = site.visitor()
    for route in ROUTES:
        answer = site.post(route, route_body(route, contact))
        assert answer.status_code in (200, 202), answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert answer.headers["Vary"] == "Origin"


@pytest.mark.parametrize("route", ROUTES)
def test_only_publishable_keys_of_website_channels(
    site: Site,
    loan: ActivityType,
    route: str,
    hub: Hub,
    client: TestClient,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
) -> None:
    contact = site.visitor()
    body = route_body(route, contact)
    headless = make_channel(kind="headless")
    tracking_of_headless = make_key("tracking", headless.id).key
    tracking_of_website = make_key("tracking", site.channel.id).key
    admin = make_key("admin").key
    disabled = make_key("publishable", site.channel.id)
    turned_off = client.patch(
        f"/api/keys/{disabled.id}", json={"enabled": False}, headers=admin_headers
    )
    assert turned_off.status_code == 200, turned_off.text
    # A publishable key whose channel became headless behind the API's back.
    moved = make_channel(kind="website", allowed_origins=[ORIGIN])
    moved_key = make_key("publishable", moved.id).key
    with hub.store.write() as conn:
        conn.execute(channels.update().where(channels.c.id == moved.id).values(kind="headless"))
    hub.catalog.invalidate()
    before = site.stored(contact)

    expect_error(site.post(route, body, key=None), 401, "unauthorized")
    expect_error(site.post(route, body, key="wpp_" + "x" * 40), 401, "unauthorized")
    expect_error(site.post(route, body, key="nonsense"), 401, "unauthorized")
    for key in (tracking_of_headless, tracking_of_website, admin, disabled.key, moved_key):
        expect_error(site.post(route, body, key=key), 403, "forbidden")
    # The key goes in the query, never in a header.
    in_header = site.client.post(
        f"/browser/{route}",
        content=json.dumps(body),
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {site.key}"},
    )
    expect_error(in_header, 401, "unauthorized")
    # Nothing of these requests is stored, not even as rejected activities.
    assert site.stored(contact) == before
    assert site.rejected() == []
    assert hub.contacts.get(uuid.UUID(contact)).email is None


# -- origins and CORS --------------------------------------------------------------------------


def test_the_origin_must_be_one_of_the_channel(
    site: Site, loan: ActivityType, make_site: Callable[..., Site], expect_error: ErrorCheck
) -> None:
    make_site(allowed_origins=[PARTNER_ORIGIN])
    contact = site.visitor()
    for origin in (ORIGIN, SECOND_ORIGIN):
        answer = site.log(contact, LOAN, origin=origin)
        assert answer.status_code == 202, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert answer.headers["Vary"] == "Origin"
    refused: list[str | None] = [None, FOREIGN_ORIGIN, PARTNER_ORIGIN, "null", ORIGIN + ":8443"]
    for other in refused:
        answer = site.log(contact, LOAN, origin=other)
        expect_error(answer, 403, "forbidden")
        assert "Access-Control-Allow-Origin" not in answer.headers, other
        assert answer.headers["Vary"] == "Origin"
    assert site.stored(contact) == 2
    assert site.rejected() == []  # refused before the key and origin were accepted


def test_other_origins_are_refused_on_every_route(site: Site, expect_error: ErrorCheck) -> None:
    contact = site.visitor()
    for route in ROUTES:
        for origin in (None, FOREIGN_ORIGIN):
            answer = site.post(route, route_body(route, contact), origin=origin)
            expect_error(answer, 403, "forbidden")
            assert "Access-Control-Allow-Origin" not in answer.headers
            assert answer.headers["Vary"] == "Origin"
    assert site.hub.contacts.get(uuid.UUID(contact)).email is None


def test_errors_on_an_allowed_origin_can_be_read_by_the_page(
    site: Site, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    answers = [
        site.log(contact, {"type": "no_such_type"}),
        site.post("activity", b"{not json"),
        site.post("consent", {"consent": CONSENT, "agree": True}, key=None),
        site.post("consent", {"consent": CONSENT}, content_type="application/xml"),
    ]
    for answer in answers:
        assert answer.status_code >= 400
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert answer.headers["Vary"] == "Origin"


@pytest.mark.parametrize("route", ROUTES)
def test_preflight(site: Site, route: str, make_site: Callable[..., Site]) -> None:
    """Any origin of any channel may ask (the key is not sent with a preflight), others not."""
    make_site(allowed_origins=[PARTNER_ORIGIN])
    request = {"Access-Control-Request-Method": "POST"}
    for origin in (ORIGIN, SECOND_ORIGIN, PARTNER_ORIGIN):
        answer = site.client.options(
            f"/browser/{route}",
            params={"key": site.key},
            headers={
                **request,
                "Origin": origin,
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert answer.status_code == 204
        assert answer.content == b""
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in answer.headers["Access-Control-Allow-Methods"]
        allowed = answer.headers["Access-Control-Allow-Headers"].lower()
        assert "content-type" in allowed
        assert int(answer.headers["Access-Control-Max-Age"]) > 0
        assert answer.headers["Vary"] == "Origin"
        assert "Access-Control-Allow-Credentials" not in answer.headers
    for origin in (FOREIGN_ORIGIN, "null"):
        answer = site.client.options(f"/browser/{route}", headers={**request, "Origin": origin})
        assert answer.status_code == 204
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert "Access-Control-Allow-Methods" not in answer.headers
        assert answer.headers["Vary"] == "Origin"


# -- activity types ------------------------------------------------------------------------------


def test_client_side_types_only(
    site: Site,
    loan: ActivityType,
    make_type: Callable[..., ActivityType],
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
) -> None:
    make_type(name="Server only", code_name="server_only")
    make_type(
        name="Loan request",
        code_name="loan_request",
        fields=[{"name": "amount", "type": "decimal", "required": True}],
    )
    make_type(name="Old widget", code_name="old_widget", client_side=True, enabled=False)
    site.hub.catalog.invalidate()
    contact = site.visitor()
    for activity in (LOAN, PAGE, {"type": "click", "value": "btnCTA"}):
        answer = site.log(contact, activity)
        assert answer.status_code == 202, answer.text
        assert uuid.UUID(answer.json()["id"])
    refused: list[dict[str, Any]] = [
        {"type": "server_only", "value": "x"},
        {"type": "no_such_type"},
        {"type": "datainput", "value": "Registration form"},
        # Nothing about a server-side type shows, not even its fields or its rules.
        {"type": "loan_request"},
        {"type": "datainput"},
        {"type": "datainput", "value": "x", "contactFields": {"ContactEmail": "not-an-email"}},
        {"type": "server_only", "url": "ftp://nope"},
        # Disabled is the same 404 to a page.
        {"type": "old_widget", "value": "x"},
    ]
    for bad in refused:
        expect_error(site.log(contact, bad), 404, "activity_type_not_found", "type")
    # A type turned client-side, then off again, follows at once.
    later = f"/api/activity-types/{make_type(name='Later', code_name='later').id}"
    made_public = client.patch(later, json={"client_side": True}, headers=admin_headers)
    assert made_public.status_code == 200, made_public.text
    assert site.log(contact, {"type": "later"}).status_code == 202
    made_private = client.patch(later, json={"client_side": False}, headers=admin_headers)
    assert made_private.status_code == 200, made_private.text
    expect_error(site.log(contact, {"type": "later"}), 404, "activity_type_not_found")
    refused.append({"type": "later"})
    assert site.stored(contact) == 4
    rows = site.rejected()
    assert [(r.reason, r.status, r.source) for r in rows] == [
        ("activity_type_not_found", 404, "browser")
    ] * len(refused)
    assert [r.type_code for r in rows] == [a["type"] for a in refused]
    assert {r.contact_id for r in rows} == {uuid.UUID(contact)}
    assert all(r.channel_id == site.channel.id for r in rows)


def test_contact_fields_are_refused(
    site: Site, loan: ActivityType, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    for activity in (
        {**LOAN, "contactFields": {"ContactEmail": "john@example.com"}},
        {"type": "click", "value": "x", "contactFields": {"ContactFirstName": "John"}},
    ):
        expect_error(site.log(contact, activity), 400, "invalid_field", "contactFields")
    assert site.hub.contacts.get(uuid.UUID(contact)).email is None
    assert site.hub.contacts.get(uuid.UUID(contact)).first_name is None
    assert [(r.reason, r.source) for r in site.rejected()] == [("invalid_field", "browser")] * 2


def test_ortto_system_keys_are_refused_too(
    site: Site, loan: ActivityType, expect_error: ErrorCheck
) -> None:
    # waypost.js sends them as an identify; sent here, they would set contact fields.
    contact = site.visitor()
    activity = {**LOAN, "fields": {"str::email": "john@example.com"}}
    expect_error(site.log(contact, activity), 400, "invalid_field", "contactFields")
    assert site.hub.contacts.get(uuid.UUID(contact)).email is None


def test_a_type_by_alias_or_as_orttos_snippet_names_it(
    site: Site, make_type: Callable[..., ActivityType], hub: Hub
) -> None:
    make_type(name="Login", code_name="login", client_side=True)
    make_type(name="Payment made", code_name="payment_made", client_side=True)
    make_type(name="Signed up", aliases=["act:cm:sign-up", "Signed Up"], client_side=True)
    hub.catalog.invalidate()
    contact = site.visitor()
    for sent in ("act:cm:login", "act:cm:payment-made", "act:cm:sign-up", "Signed Up"):
        answer = site.log(contact, {"type": sent})
        assert answer.status_code == 202, answer.text
    log = site.hub.activities.contact_log(uuid.UUID(contact), ActivityQuery(limit=10)).data
    assert sorted(a.type for a in log) == ["login", "payment_made", "signed_up", "signed_up"]
    unknown = site.log(contact, {"type": "act:cm:nothing"})
    assert unknown.status_code == 404
    assert site.rejected()[-1].type_code == "act:cm:nothing"


def test_malformed_activities_are_kept_as_rejected(
    site: Site, loan: ActivityType, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    expect_error(site.log(contact, {"type": "pagevisit"}), 400, "missing_field", "url")
    expect_error(site.log(contact, {**LOAN, "occurredAt": "yesterday"}), 400, "invalid_field")
    assert [(r.type_code, r.source) for r in site.rejected()] == [
        ("pagevisit", "browser"),
        ("custom_loan_calculator", "browser"),
    ]
    # A body that is no request at all is a 400 on its own, with no activity to keep.
    expect_error(site.post("activity", b"[1, 2"), 400, "invalid_json")
    expect_error(
        site.post("activity", {"contact": contact, "activity": LOAN}),
        400,
        "missing_field",
        "cookieLevel",
    )
    expect_error(
        site.post("activity", {"contact": "nope", "cookieLevel": "all", "activity": LOAN}),
        400,
        "invalid_field",
        "contact",
    )
    # A body that is not UTF-8 is no JSON either (the activity is kept undecoded until later).
    body = f'{{"contact": "{contact}", "cookieLevel": "all", "activity": '.encode()
    expect_error(
        site.post("activity", body + b'{"type": "click", "value": "\xff"}}'), 400, "invalid_json"
    )
    assert len(site.rejected()) == 2


def test_a_huge_bad_email_is_not_echoed_back_whole(site: Site, expect_error: ErrorCheck) -> None:
    contact = site.visitor()
    email = "a" * 1_000_000
    answer = site.post("identify", {"contact": contact, "cookieLevel": "all", "email": email})
    error = expect_error(answer, 400, "invalid_field", "email")
    assert len(error["message"]) < 300
    assert "1000000 characters" in error["message"]


def test_unknown_contacts(site: Site, loan: ActivityType, expect_error: ErrorCheck) -> None:
    nobody = str(uuid.uuid4())
    expect_error(site.log(nobody, LOAN), 404, "contact_not_found")
    expect_error(site.consent(nobody), 404, "contact_not_found")
    expect_error(
        site.post("identify", {"contact": nobody, "cookieLevel": "all", "email": "a@example.com"}),
        404,
        "contact_not_found",
    )


def test_unknown_routes_and_methods(site: Site, expect_error: ErrorCheck) -> None:
    expect_error(site.post("activities", {}), 404, "not_found")
    for route in ROUTES:
        answer = site.client.get(
            f"/browser/{route}", params={"key": site.key}, headers={"Origin": ORIGIN}
        )
        expect_error(answer, 405, "method_not_allowed")
        assert answer.headers["Allow"] == "POST"


# -- cookie levels and consent -------------------------------------------------------------------


def test_cookie_level_visitor_or_all(
    site: Site, loan: ActivityType, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    for level in ("none", "essential"):
        expect_error(site.log(contact, LOAN, level), 403, "consent_required", "cookieLevel")
    for level in ("visitor", "all"):
        assert site.log(contact, LOAN, level).status_code == 202
    assert site.stored(contact) == 2
    rows = site.rejected()
    assert [(r.reason, r.status, r.source) for r in rows] == [
        ("consent_required", 403, "browser")
    ] * 2


def test_a_long_cookie_level_is_quoted_cut_in_the_refusal_and_the_rejected_activity(
    site: Site, loan: ActivityType, expect_error: ErrorCheck
) -> None:
    """The cookie level is outside the activity (at most 16 KB): the message that quotes it,
    kept with the rejected activity, cuts it after 100 characters (it held the whole level,
    up to the request's 2 MB, in every row a page could make)."""
    contact = site.visitor()
    answer = site.log(contact, LOAN, "n" * 100_000)
    error = expect_error(answer, 403, "consent_required", "cookieLevel")
    assert len(error["message"]) < 300
    [row] = site.rejected()
    assert row.message == error["message"]


def test_the_tracking_consent_is_required_until_agreed_and_after_revoking(
    site: Site, loan: ActivityType, hub: Hub, expect_error: ErrorCheck
) -> None:
    hub.consents.create(ConsentCreate(code_name="Newsletter", display_name="Newsletter"))
    # Agreeing to another consent makes a contact, but not one that may be tracked.
    answer = site.consent(consent="Newsletter")
    assert answer.status_code == 200, answer.text
    contact = answer.json()["contact"]
    expect_error(site.log(contact, LOAN), 403, "consent_required")
    expect_error(site.log(contact, PAGE, "all"), 403, "consent_required")

    agreed = site.consent(contact)
    assert agreed.status_code == 200
    assert agreed.json() == {"contact": contact, "isAgreed": True}
    assert site.log(contact, LOAN).status_code == 202

    revoked = site.consent(contact, agree=False)
    assert revoked.json() == {"contact": contact, "isAgreed": False}
    expect_error(site.log(contact, LOAN), 403, "consent_required")

    assert site.consent(contact).json()["isAgreed"] is True
    assert site.log(contact, LOAN).status_code == 202

    assert site.stored(contact) == 2
    with hub.store.read() as conn:
        versions = conn.execute(
            sa.select(activities.c.consent_agreed, activities.c.consent_version).where(
                activities.c.contact_id == uuid.UUID(contact)
            )
        ).all()
    assert [tuple(v) for v in versions] == [(True, 1), (True, 1)]
    rows = site.rejected()
    assert [(r.reason, r.status, r.source) for r in rows] == [
        ("consent_required", 403, "browser")
    ] * 3
    history = [a.agreed for a in hub.consents.history(uuid.UUID(contact)) if a.consent == CONSENT]
    assert history == [True, False, True]  # newest first


def test_consent_answers(site: Site, hub: Hub, expect_error: ErrorCheck) -> None:
    with hub.store.read() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one()
    # Declining without a contact creates nothing.
    declined = site.consent(agree=False)
    assert declined.status_code == 200
    assert declined.json() == {"contact": None, "isAgreed": False}
    with hub.store.read() as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one()
    assert after == before
    # An unknown consent is refused before any contact is made.
    expect_error(site.consent(consent="NoSuchConsent"), 404, "not_found")
    assert count(hub, contacts) == before
    agreement = hub.consents.history(uuid.UUID(site.visitor()))[0]
    assert agreement.channel == site.channel.id
    # The browser's names are matched as written: a name in another case is unknown, so two
    # that differ in case only never leave one of them to be taken.
    made = count(hub, contacts)
    for body, key in [
        (b'{"consent": "TrackingConsent", "Agree": true, "agree": false}', "Agree"),
        (b'{"consent": "TrackingConsent", "agree": true, "Agree": false}', "Agree"),
    ]:
        expect_error(site.post("consent", body), 400, "unknown_field", key)
    assert count(hub, contacts) == made


def count(hub: Hub, table: sa.Table) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def history(hub: Hub, contact: str) -> list[bool]:
    """The contact's agreements (True) and revocations (False) of the tracking consent, newest
    first."""
    return [a.agreed for a in hub.consents.history(uuid.UUID(contact)) if a.consent == CONSENT]


def request_id() -> str:
    return uuid.uuid4().hex  # as waypost.js makes them: 32 random hex digits


def test_a_first_agreement_sent_again_with_its_id_gets_the_same_contact(
    site: Site, hub: Hub, make_site: Callable[..., Site]
) -> None:
    first_id = request_id()
    first = site.consent(request_id=first_id)
    assert first.status_code == 200, first.text
    contact = first.json()["contact"]
    assert first.json() == {"contact": contact, "isAgreed": True}
    made = (count(hub, contacts), count(hub, consent_agreements))

    # The page went away before the answer: the next page sends it again, maybe twice.
    for _ in range(2):
        assert site.consent(request_id=first_id).json() == {"contact": contact, "isAgreed": True}
    assert (count(hub, contacts), count(hub, consent_agreements)) == made
    assert history(hub, contact) == [True]

    # Another id is another visitor, and an id is one channel's own.
    assert site.consent(request_id=request_id()).json()["contact"] != contact
    other = make_site(tracking_consent=CONSENT)
    assert other.consent(request_id=first_id).json()["contact"] not in (contact, None)
    # With a contact, the id plays no part: the contact agrees again, as without one.
    again = site.consent(contact, request_id=first_id)
    assert again.json() == {"contact": contact, "isAgreed": True}
    assert history(hub, contact) == [True, True]


def test_a_revocation_with_the_id_of_an_agreement_whose_answer_was_lost(
    site: Site, hub: Hub
) -> None:
    the_id = request_id()
    contact = site.consent(request_id=the_id).json()["contact"]
    # The visitor declines before the browser learned its contact: the id finds it.
    revoked = site.consent(agree=False, request_id=the_id)
    assert revoked.json() == {"contact": contact, "isAgreed": False}
    assert history(hub, contact) == [False, True]
    # A late copy of the agreement does not undo the revocation, nor make a contact.
    contacts_before = count(hub, contacts)
    assert site.consent(request_id=the_id).json() == {"contact": contact, "isAgreed": False}
    assert history(hub, contact) == [False, True]
    assert count(hub, contacts) == contacts_before


def test_a_revocation_that_arrives_before_its_agreement(site: Site, hub: Hub) -> None:
    before = (count(hub, contacts), count(hub, consent_agreements))
    the_id = request_id()
    assert site.consent(agree=False, request_id=the_id).json() == {
        "contact": None,
        "isAgreed": False,
    }
    # The agreement the visitor then took back comes late: no contact is made for it.
    assert site.consent(request_id=the_id).json() == {"contact": None, "isAgreed": False}
    assert (count(hub, contacts), count(hub, consent_agreements)) == before


def test_a_merged_contact_is_answered_with_the_contact_it_was_merged_into(
    site: Site, hub: Hub
) -> None:
    the_id = request_id()
    contact = site.consent(request_id=the_id).json()["contact"]
    known = hub.contacts.identify(
        site.channel.id, site.channel.identity_secret, None, "known@example.com", {}, None
    ).contact
    secret = site.channel.identity_secret.encode()
    signed = hmac.new(secret, b"known@example.com", hashlib.sha256).hexdigest()
    body = {"contact": contact, "cookieLevel": "visitor", "email": "known@example.com"}
    merged = site.post("identify", {**body, "hash": signed})
    assert merged.json() == {"contact": str(known), "merged": True}, merged.text
    assert site.consent(request_id=the_id).json() == {"contact": str(known), "isAgreed": True}


def test_an_id_is_remembered_for_a_day(site: Site, hub: Hub) -> None:
    old_id, the_id = request_id(), request_id()
    old = site.consent(request_id=old_id).json()["contact"]
    contact = site.consent(request_id=the_id).json()["contact"]
    with hub.store.write() as conn:
        conn.execute(
            browser_consent_requests.update()
            .where(browser_consent_requests.c.request_id == old_id)
            .values(created_at=utcnow() - dt.timedelta(days=1, seconds=1))
        )
    # A day on, the id is forgotten: sent again, it is a new visitor's first agreement.
    again = site.consent(request_id=old_id).json()["contact"]
    assert again not in (old, None)
    assert site.consent(request_id=old_id).json()["contact"] == again
    assert site.consent(request_id=the_id).json()["contact"] == contact

    # Forgotten ids are deleted (at most every few minutes per process).
    with hub.store.write() as conn:
        conn.execute(
            browser_consent_requests.update()
            .where(browser_consent_requests.c.request_id == the_id)
            .values(created_at=utcnow() - dt.timedelta(days=2))
        )
    assert site.consent(request_id=request_id()).status_code == 200
    assert count(hub, browser_consent_requests) == 3  # swept a moment ago: not yet
    hub.browser_consents._swept = None
    assert site.consent(request_id=request_id()).status_code == 200
    with hub.store.read() as conn:
        kept = set(conn.execute(sa.select(browser_consent_requests.c.request_id)).scalars())
    assert the_id not in kept
    assert old_id in kept
    assert len(kept) == 3


def test_the_same_first_agreement_from_many_requests_at_once_makes_one_contact(
    site: Site, hub: Hub
) -> None:
    before = count(hub, contacts)
    the_id = request_id()
    start = threading.Barrier(8)

    def agree(_: int) -> uuid.UUID | None:
        start.wait()
        return hub.browser_consents.give(site.channel.id, None, CONSENT, True, the_id).contact

    with ThreadPoolExecutor(8) as pool:
        answers = set(pool.map(agree, range(8)))
    assert len(answers) == 1
    [contact] = answers
    assert contact is not None
    assert count(hub, contacts) == before + 1
    assert history(hub, str(contact)) == [True]


def test_the_request_id_is_checked(site: Site, hub: Hub, expect_error: ErrorCheck) -> None:
    before = count(hub, contacts)
    for bad in ("", "short", "x" * 101, 12345678901234567890):
        body = {"consent": CONSENT, "agree": True, "id": bad}
        expect_error(site.post("consent", body), 400, "invalid_field", "id")
    # An unknown consent with an id makes neither a contact nor a remembered id.
    expect_error(site.consent(consent="NoSuchConsent", request_id=request_id()), 404, "not_found")
    assert count(hub, contacts) == before
    assert count(hub, browser_consent_requests) == 0


def test_without_a_tracking_consent_only_the_cookie_level_counts(
    make_site: Callable[..., Site], loan: ActivityType, tracking_consent: str
) -> None:
    open_site = make_site()
    contact = open_site.visitor()  # consent to something still makes the contact
    assert open_site.log(contact, LOAN).status_code == 202
    assert open_site.log(contact, LOAN, "essential").status_code == 403


# -- rate limits ---------------------------------------------------------------------------------


def rate_headers(answer: httpx2.Response) -> tuple[str, str, str]:
    h = answer.headers
    return h["RateLimit-Limit"], h["RateLimit-Remaining"], h["RateLimit-Reset"]


def test_the_eleventh_activity_of_a_type_in_a_day_is_rate_limited(
    site: Site, loan: ActivityType, clock: FakeClock, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    for i in range(10):
        answer = site.log(contact, LOAN)
        assert answer.status_code == 202, (i, answer.text)
        assert rate_headers(answer) == ("10", str(9 - i), str(DAY))
        assert "Retry-After" not in answer.headers
    clock.advance(0.7)  # part of a second: the headers round up, never down
    answer = site.log(contact, LOAN)
    expect_error(answer, 429, "rate_limited")
    assert answer.headers["Retry-After"] == str(DAY)
    assert rate_headers(answer) == ("10", "0", str(DAY))
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN

    clock.advance(3600)
    answer = site.log(contact, LOAN)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == str(DAY - 3600)
    # Other types, and other contacts, have their own windows.
    assert site.log(contact, PAGE).status_code == 202
    assert site.log(site.visitor(), LOAN).status_code == 202

    assert site.stored(contact) == 11
    rows = site.rejected()
    assert [(r.reason, r.status, r.source, r.type_code) for r in rows] == [
        ("rate_limited", 429, "browser", "custom_loan_calculator")
    ] * 2
    assert rows[0].payload == LOAN  # kept as the page sent it, to replay later


def test_the_day_slides(site: Site, loan: ActivityType, clock: FakeClock) -> None:
    """5 in the morning, 5 in the evening: the next morning frees 5, not 10."""
    contact = site.visitor()
    for _ in range(5):
        assert site.log(contact, LOAN).status_code == 202
    clock.advance(12 * 3600)
    for _ in range(5):
        assert site.log(contact, LOAN).status_code == 202
    clock.advance(12 * 3600 - 1)
    refused = site.log(contact, LOAN)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    clock.advance(1)
    for i in range(5):
        answer = site.log(contact, LOAN)
        assert answer.status_code == 202, i
    refused = site.log(contact, LOAN)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(12 * 3600)


def test_the_default_per_ip_limit_is_100_an_hour(
    site: Site, loan: ActivityType, client: TestClient, admin_headers: dict[str, str]
) -> None:
    contact = site.visitor()
    answer = site.log(contact, LOAN)
    # Both defaults apply; the headers show the tighter one.
    assert rate_headers(answer) == ("10", "9", str(DAY))
    set_limits(client, admin_headers, loan, {"per_contact": None})
    answer = site.log(contact, LOAN)
    assert rate_headers(answer) == ("100", "98", "3600")


def test_per_ip_limits(
    site: Site,
    loan: ActivityType,
    client: TestClient,
    admin_headers: dict[str, str],
    clock: FakeClock,
    settings: Settings,
    expect_error: ErrorCheck,
) -> None:
    set_limits(
        client,
        admin_headers,
        loan,
        {"per_contact": None, "per_ip": {"limit": 3, "window_seconds": 60}},
    )
    visitors = [site.visitor() for _ in range(4)]
    for i in range(3):
        answer = site.log(visitors[i], LOAN)
        assert answer.status_code == 202
        assert rate_headers(answer) == ("3", str(2 - i), "60")
    answer = site.log(visitors[3], LOAN)
    expect_error(answer, 429, "rate_limited")
    assert answer.headers["Retry-After"] == "60"
    assert rate_headers(answer) == ("3", "0", "60")
    # Another address has its own window.
    with TestClient(client.app, client=("203.0.113.9", 40000)) as elsewhere:
        assert site.log(visitors[3], LOAN, client=elsewhere).status_code == 202
        assert site.log(visitors[0], LOAN, client=elsewhere).status_code == 202
    clock.advance(60)
    assert site.log(visitors[3], LOAN).status_code == 202
    assert [r.reason for r in site.rejected()] == ["rate_limited"]


def test_custom_limits_per_type(
    site: Site,
    loan: ActivityType,
    client: TestClient,
    admin_headers: dict[str, str],
    clock: FakeClock,
) -> None:
    set_limits(
        client,
        admin_headers,
        loan,
        {"per_contact": {"limit": 2, "window_seconds": 30}, "per_ip": None},
    )
    contact = site.visitor()
    assert [site.log(contact, LOAN).status_code for _ in range(3)] == [202, 202, 429]
    clock.advance(29)
    refused = site.log(contact, LOAN)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    clock.advance(1)
    assert [site.log(contact, LOAN).status_code for _ in range(3)] == [202, 202, 429]
    # The built-in page visit keeps the defaults.
    assert [site.log(contact, PAGE).status_code for _ in range(11)] == [202] * 10 + [429]


def test_null_turns_a_limit_off(
    site: Site, loan: ActivityType, client: TestClient, admin_headers: dict[str, str]
) -> None:
    set_limits(client, admin_headers, loan, {"per_contact": None, "per_ip": None})
    contact = site.visitor()
    for _ in range(15):
        answer = site.log(contact, LOAN)
        assert answer.status_code == 202
        assert "RateLimit-Limit" not in answer.headers
    set_limits(client, admin_headers, loan, {"per_contact": {"limit": 20, "window_seconds": 60}})
    answer = site.log(contact, LOAN)
    # per_ip left out of the object keeps its default.
    assert rate_headers(answer) == ("20", "19", "60")


def test_a_refused_activity_uses_up_no_other_limit(
    site: Site, loan: ActivityType, client: TestClient, admin_headers: dict[str, str]
) -> None:
    set_limits(
        client,
        admin_headers,
        loan,
        {
            "per_contact": {"limit": 2, "window_seconds": 600},
            "per_ip": {"limit": 3, "window_seconds": 600},
        },
    )
    first, second = site.visitor(), site.visitor()
    assert [site.log(first, LOAN).status_code for _ in range(3)] == [202, 202, 429]
    # The third of the first visitor was refused per contact: the address has used 2 of 3.
    assert [site.log(second, LOAN).status_code for _ in range(2)] == [202, 429]


# -- bodies --------------------------------------------------------------------------------------


def test_json_bodies_as_text_or_json(site: Site, loan: ActivityType) -> None:
    """sendBeacon and a CORS-simple fetch send text/plain; both kinds of JSON are fine."""
    contact = site.visitor()
    media_types = [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/json",
        "application/json; charset=utf-8",
        None,
    ]
    for content_type in media_types:
        for route in ROUTES:
            answer = site.post(route, route_body(route, contact), content_type=content_type)
            assert answer.status_code in (200, 202), (route, content_type, answer.text)
    assert site.stored(contact) == len(media_types)


def test_other_media_types_are_415(
    site: Site, loan: ActivityType, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    for content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "text/html",
    ):
        for route in ROUTES:
            answer = site.post(route, route_body(route, contact), content_type=content_type)
            expect_error(answer, 415, "unsupported_media_type")
            assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert site.stored(contact) == 0
    assert site.rejected() == []
    assert site.hub.contacts.get(uuid.UUID(contact)).email is None


# -- a publishable key reads nothing -----------------------------------------------------------


def test_a_publishable_key_reads_nothing_in_the_admin_api(
    site: Site, loan: ActivityType, client: TestClient, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    assert site.log(contact, LOAN).status_code == 202
    ids = {
        "channel_id": str(site.channel.id),
        "contact_id": contact,
        "type_id": str(loan.id),
        "key_id": str(uuid.uuid4()),
        "consent_id": str(uuid.uuid4()),
        "rejected_id": str(uuid.uuid4()),
    }
    operations = admin_operations()
    assert len(operations) > 20
    for operation in operations:
        path = re.sub(r"\{(\w+)\}", lambda m: ids.get(m[1], str(uuid.uuid4())), operation.path)
        with_header = client.request(
            operation.method,
            path,
            json={},
            headers={"Authorization": f"Bearer {site.key}", "Origin": ORIGIN},
        )
        expect_error(with_header, 403, "forbidden")
        in_query = client.request(
            operation.method, path, json={}, params={"key": site.key}, headers={"Origin": ORIGIN}
        )
        expect_error(in_query, 401, "unauthorized")
        for answer in (with_header, in_query):
            assert contact not in answer.text
            assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("prefix", ["/tracking", "/Kentico.Tracking"])
def test_a_publishable_key_reads_nothing_in_the_tracking_api(
    site: Site, loan: ActivityType, prefix: str, expect_error: ErrorCheck
) -> None:
    contact = site.visitor()
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/contacts", None),
        (
            "POST",
            "/activities",
            {"channel": str(site.channel.id), "contact": contact, "activities": [LOAN]},
        ),
        ("GET", f"/consents/{CONSENT}", None),
        ("GET", f"/contacts/{contact}/consents/{CONSENT}", None),
        ("POST", f"/contacts/{contact}/consents/{CONSENT}", {"agree": False}),
    ]
    for method, path, body in requests:
        with_header = site.client.request(
            method,
            prefix + path,
            json=body,
            headers={"Authorization": f"Bearer {site.key}", "Origin": ORIGIN},
        )
        expect_error(with_header, 403, "forbidden")
        in_query = site.client.request(
            method, prefix + path, json=body, params={"key": site.key}, headers={"Origin": ORIGIN}
        )
        expect_error(in_query, 401, "unauthorized")
    assert site.stored(contact) == 0
    assert site.hub.consents.state(uuid.UUID(contact), CONSENT).agreed is True


# -- limits that follow the client's address and the contact ------------------------------------


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, hub: Hub, client: TestClient) -> Iterator[str]:
    """The hub's rate limiter: in process on the fake clock, or in Redis (real time)."""
    if request.param == "memory":
        yield "memory"
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"waypost:test:{uuid.uuid4().hex}:"
    hub.rate_limiter = RedisRateLimiter(url, prefix=prefix)
    # The app was made with the hub's first limiter.
    app = client.app
    assert isinstance(app, WaypostApp)
    app.ingest.transport(BrowserApp).limiter = hub.rate_limiter
    yield "redis"
    with redis.Redis.from_url(url) as plain:
        assert any(True for _ in plain.scan_iter(f"{prefix}*")), "Redis was not used"
        for key in plain.scan_iter(f"{prefix}*"):
            plain.delete(key)


def behind_uvicorn(app: Any, trusted: str, peer: str, forwarded_for: str) -> TestClient:
    """The app as ``waypost serve`` has uvicorn serve it, from ``peer``, with a forwarded
    address."""
    config = uvicorn.Config(app, log_config=None, **uvicorn_proxy_options(trusted))
    config.load()
    return TestClient(
        config.loaded_app, client=(peer, 40000), headers={"X-Forwarded-For": forwarded_for}
    )


def test_new_contacts_are_limited_per_address(
    site: Site,
    loan: ActivityType,
    hub: Hub,
    client: TestClient,
    backend: str,
    expect_error: ErrorCheck,
) -> None:
    assert hub.settings.new_contacts_per_ip_per_hour == 100
    first = site.visitor()
    # A request that fails makes no contact and uses up nothing.
    unknown = {"contact": str(uuid.uuid4()), "cookieLevel": "visitor", "email": "a@example.com"}
    expect_error(site.post("identify", unknown), 404, "contact_not_found")
    expect_error(site.consent(consent="NoSuchConsent"), 404, "not_found")
    for i in range(97):
        answer = site.consent()
        assert answer.status_code == 200, answer.text
        assert answer.headers["RateLimit-Remaining"] == str(98 - i)
    # An identify that makes a contact (another email in this browser) counts; one that names
    # the browser's own contact does not, nor does anything sent with a contact.
    emails = ["new@example.com", "new@example.com", "other@example.com", "more@example.com"]
    answers = [
        site.post("identify", {"contact": first, "cookieLevel": "visitor", "email": email})
        for email in emails
    ]
    assert [a.json()["contact"] == first for a in answers] == [True, True, False, False]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["1", "1", "1", "0"]
    assert site.consent(first).status_code == 200
    assert site.consent(agree=False).json() == {"contact": None, "isAgreed": False}

    refused = site.consent()
    expect_error(refused, 429, "rate_limited")
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["RateLimit-Limit"] == "100"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    body = {"cookieLevel": "visitor", "email": "third@example.com"}
    expect_error(site.post("identify", body), 429, "rate_limited")
    # A revocation without a contact stores its id (so that its agreement makes no contact
    # later): it counts too, where one without an id stores nothing and does not.
    revoke = {"consent": CONSENT, "agree": False, "id": "revoke-0123456789abcdef"}
    expect_error(site.post("consent", revoke), 429, "rate_limited")
    # Visitors who have their contact carry on.
    assert site.log(first, LOAN).status_code == 202
    assert count(hub, contacts) == 100
    if backend == "memory":  # the Redis client belongs to the main client's event loop
        with TestClient(client.app, client=("203.0.113.9", 40000)) as elsewhere:
            answer = site.post("consent", {"consent": CONSENT, "agree": True}, client=elsewhere)
            assert answer.status_code == 200, answer.text


def test_a_rotating_forwarded_address_does_not_escape_the_per_ip_limit(
    site: Site, loan: ActivityType, client: TestClient, admin_headers: dict[str, str], hub: Hub
) -> None:
    set_limits(
        client,
        admin_headers,
        loan,
        {"per_contact": None, "per_ip": {"limit": 3, "window_seconds": 60}},
    )
    visitor = site.visitor()
    answers = [
        site.log(visitor, LOAN, client=behind_uvicorn(client.app, "", "127.0.0.1", f"192.0.2.{i}"))
        for i in range(4)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    # Behind a trusted proxy, the forwarded address is the client's.
    hub.trusted_proxies = parse_trusted_proxies("127.0.0.1")
    for i in range(4):
        via = behind_uvicorn(client.app, "127.0.0.1", "127.0.0.1", f"198.51.100.1, 192.0.2.{i}")
        assert site.log(visitor, LOAN, client=via).status_code == 202


def test_the_per_ip_limit_counts_an_ipv6_client_by_its_64(
    site: Site, loan: ActivityType, client: TestClient, admin_headers: dict[str, str]
) -> None:
    """Whoever has one address of a /64 may use any of its 2^64: going through them does not
    escape the type's limit per address, and another /64 has a limit of its own."""
    set_limits(
        client,
        admin_headers,
        loan,
        {"per_contact": None, "per_ip": {"limit": 3, "window_seconds": 60}},
    )
    visitor = site.visitor()

    def at(address: str) -> TestClient:
        return TestClient(client.app, client=(address, 40000))

    answers = [site.log(visitor, LOAN, client=at(f"2001:db8:aa:bb::{i}")) for i in range(1, 5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert site.log(visitor, LOAN, client=at("2001:db8:aa:bc::1")).status_code == 202
    # An IPv4 client, as a dual-stack socket reports it, is its IPv4 address.
    for address in ("192.0.2.50", "::ffff:192.0.2.50", "192.0.2.50"):
        assert site.log(visitor, LOAN, client=at(address)).status_code == 202
    assert site.log(visitor, LOAN, client=at("::ffff:192.0.2.50")).status_code == 429


def test_the_per_contact_limit_follows_a_merge(
    site: Site, loan: ActivityType, hub: Hub, backend: str
) -> None:
    # As in the demo: a visitor uses the calculator, logs in, and uses it on.
    known = hub.contacts.identify(
        site.channel.id, site.channel.identity_secret, None, "known@example.com", {}, None
    ).contact
    visitor = site.visitor()
    assert [site.log(visitor, LOAN).status_code for _ in range(3)] == [202] * 3
    signed = hmac.new(
        site.channel.identity_secret.encode(), b"known@example.com", hashlib.sha256
    ).hexdigest()
    body = {"contact": visitor, "cookieLevel": "visitor", "email": "known@example.com"}
    merged = site.post("identify", {**body, "hash": signed})
    assert merged.json() == {"contact": str(known), "merged": True}, merged.text
    answers = [site.log(str(known), LOAN) for _ in range(8)]
    assert [a.status_code for a in answers] == [202] * 7 + [429]
    assert answers[0].headers["RateLimit-Remaining"] == "6"
    assert site.stored(str(known)) == 10


def test_the_per_contact_limit_follows_a_segment_alias(
    site: Site,
    loan: ActivityType,
    hub: Hub,
    make_key: Callable[..., CreatedKey],
    backend: str,
) -> None:
    write_key = make_key("tracking", site.channel.id).key

    def segment(route: str, body: dict[str, Any]) -> uuid.UUID | None:
        answer = site.client.post(f"/v1/{route}", json=body, auth=(write_key, ""))
        assert answer.status_code == 200, answer.text
        with hub.store.read() as conn:
            return conn.execute(
                sa.select(contact_external_ids.c.contact_id).where(
                    contact_external_ids.c.value == body.get("anonymousId", body.get("userId"))
                )
            ).scalar_one_or_none()

    known = segment("identify", {"userId": "user-1"})
    visitor = segment("identify", {"anonymousId": "anon-1"})
    assert known is not None
    assert visitor not in (None, known)
    assert site.consent(str(visitor)).status_code == 200
    assert [site.log(str(visitor), LOAN).status_code for _ in range(3)] == [202] * 3
    segment("alias", {"previousId": "anon-1", "userId": "user-1"})
    answers = [site.log(str(known), LOAN).status_code for _ in range(8)]
    assert answers == [202] * 7 + [429]


@pytest.mark.parametrize("depth", [65, 100_000])
@pytest.mark.parametrize("route", ["activity", "identify", "consent"])
def test_json_nested_too_deep_is_a_400(
    site: Site, expect_error: ErrorCheck, route: str, depth: int
) -> None:
    contact = site.visitor()
    deep = "[" * depth + "]" * depth
    bodies = {
        "activity": f'{{"contact": "{contact}", "cookieLevel": "visitor", "activity": '
        f'{{"type": "click", "value": "x", "fields": {{"a": {deep}}}}}}}',
        "identify": f'{{"email": "a@example.com", "cookieLevel": "visitor", "first": {deep}}}',
        "consent": f'{{"consent": "{CONSENT}", "agree": true, "contact": {deep}}}',
    }
    answer = site.post(route, bodies[route].encode())
    if route == "activity" and depth == 65:
        # Deep, but decodable: the activity is refused and kept as rejected.
        error = expect_error(answer, 400, "invalid_json")
        assert len(site.rejected()) == 1
    elif depth == 65:
        error = expect_error(answer, 400, "invalid_field")
    else:
        error = expect_error(answer, 400, "invalid_json")
    assert error["message"]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("identify", '{"email": "a@example.com", "cookieLevel": "visitor", "first": "A\\u0000"}'),
        ("identify", '{"email": "a\\u0000@example.com", "cookieLevel": "visitor"}'),
        ("consent", '{"consent": "Tracking\\u0000Consent", "agree": true}'),
    ],
)
def test_a_nul_character_in_a_body_is_a_400(
    site: Site, expect_error: ErrorCheck, route: str, body: str
) -> None:
    # PostgreSQL text cannot hold NUL; it is refused before it reaches the database.
    error = expect_error(site.post(route, body.encode()), 400, "invalid_field")
    assert "NUL" in error["message"]


def test_an_erased_person_is_refused_by_identify_and_activities_and_nothing_is_kept(
    site: Site, loan: ActivityType, hub: Hub, expect_error: ErrorCheck
) -> None:
    visitor = site.visitor()
    body = {"contact": visitor, "cookieLevel": "all", "email": "Gone@Example.com"}
    named = site.post("identify", body)
    assert named.status_code == 200, named.text
    hub.erasure.erase(uuid.UUID(named.json()["contact"]), Actor("key", None))
    before = len(site.rejected())
    # Another browser names the email; the erased browser keeps sending its contact.
    other = site.visitor()
    refused = site.post("identify", {**body, "contact": other, "email": "gone@example.com"})
    expect_error(refused, 403, "contact_erased")
    expect_error(site.post("identify", body), 403, "contact_erased")
    activity = {"type": loan.code_name, "value": "1"}
    expect_error(site.log(visitor, activity, "all"), 403, "contact_erased")
    assert len(site.rejected()) == before
    assert site.log(other, activity, "all").status_code == 202


def test_an_activity_refused_for_another_reason_naming_an_erased_email_is_kept_nowhere(
    site: Site, loan: ActivityType, hub: Hub, expect_error: ErrorCheck
) -> None:
    """A page's activity naming an erased person's email (Ortto's str::email) whose type is
    not one a page may log, or that is refused for another reason too, was kept as a
    rejected activity (404, 400) with the email in its payload. It is 403 contact_erased,
    and kept nowhere."""
    visitor = site.visitor()
    body = {"contact": visitor, "cookieLevel": "all", "email": "gone@example.com"}
    named = site.post("identify", body)
    assert named.status_code == 200, named.text
    hub.erasure.erase(uuid.UUID(named.json()["contact"]), Actor("key", None))
    hub.catalog.invalidate()
    before = len(site.rejected())
    other = site.visitor()
    claims = {"str::email": "Gone@Example.com"}
    for activity in (
        {"type": "nope", "value": "1", "fields": claims},
        {"type": "datainput", "value": "1", "fields": claims},
        {**LOAN, "fields": claims, "occurredAt": "yesterday"},
        {**LOAN, "contactFields": {"ContactEmail": "gone@example.com"}},
    ):
        expect_error(site.log(other, activity, "all"), 403, "contact_erased")
    assert len(site.rejected()) == before
