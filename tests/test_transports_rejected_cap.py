"""The hourly cap on the rejected activities kept for a page's address: waypost/transports/
rejected_cap.py, docs/browser-tracking.md#rate-limits.

First ``submit_capped`` against a writer double, on the in-process limiter and on Redis: the
room taken before the jobs and shared among them, what they did not keep given back, the 429
with its headers, a failure that keeps nothing, a server's request not capped. Then over HTTP,
on both databases and both limiters: the browser endpoints and pages through PostHog, Snowplow
and analytics.js keep rejected activities up to the cap and are answered 429 past it, with
nothing more kept, while accepted activities are stored all the same; the window slides; a
server's requests are not capped; each address (an IPv6 client's /64) has a cap of its own.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import httpx2
import pytest
import redis
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.clock import FakeClock
from waypost.errors import ApiError, ErrorDetail, StorageUnavailable
from waypost.hub import Hub
from waypost.ids import new_id
from waypost.pipeline.catalog import ChannelInfo, TypeInfo
from waypost.pipeline.prepare import Accepted, Rejected
from waypost.pipeline.writer_decision import OVER_REJECTED_ROOM, ActivityResult, Job
from waypost.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, Taken
from waypost.records.contacts import contact_not_found
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate, ConsentText
from waypost.services.keys import CreatedKey
from waypost.settings import Settings, load_settings
from waypost.store import Store, make_engine
from waypost.store.schema import activities, rejected_activities
from waypost.transports.rejected_cap import (
    may_be_kept,
    rejected_limit,
    shares,
    submit_capped,
)

CAP = 4
START = 1_800_000_000.0
HOUR = 3600
T = TypeVar("T")


# -- the room, without a database -------------------------------------------------------------

CLICK = TypeInfo(new_id(), "click", "Click", True, True, (), "reject", None, None)
WEB = ChannelInfo(
    id=new_id(),
    kind="website",
    default_language="en",
    allowed_origins=frozenset(),
    tracking_consent=None,
    tracking_consent_id=None,
    enforce_consent=False,
    identity_secret="s",
)
BAD = Rejected(404, ErrorDetail("activity_type_not_found", "No such type.", "type"), b"{}", "x")
QUIET = Rejected(403, ErrorDetail("contact_erased", "Erased."), b"{}", "x", keep=False)
NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def click() -> Accepted:
    return Accepted(
        id=new_id(),
        type=CLICK,
        client_id=None,
        title="Click",
        value="v",
        url=None,
        referrer=None,
        fields=None,
        primary_value=None,
        flags=None,
        occurred_at=NOW,
        contact_fields=None,
        payload=b'{"type": "click", "value": "v"}',
    )


def job(*items: Accepted | Rejected) -> Job:
    return Job(WEB, new_id(), list(items), NOW, "browser")


def test_the_room_goes_to_what_is_rejected_already_then_to_what_may_be() -> None:
    jobs = [job(click(), BAD, QUIET), job(click(), click()), job(BAD, BAD)]
    assert [may_be_kept(j) for j in jobs] == [2, 2, 2]
    assert shares(jobs, 6) == [2, 2, 2]
    # Three known rejections take three; what is left goes to the accepted items, in order.
    assert shares(jobs, 4) == [2, 0, 2]
    assert shares(jobs, 2) == [1, 0, 1]
    assert shares(jobs, 0) == [0, 0, 0]
    assert shares([], 3) == []


@dataclass
class FakeWriter:
    """The writer as ``submit_capped`` sees it. Each job's rejected items are kept within its
    room and the rest refused, as writer_decision decides; ``reject_accepted`` rejects its
    accepted items too (as a consent not agreed to does), ``missing`` answers
    ``contact_not_found`` once they are kept, ``fail`` fails every job, keeping nothing."""

    reject_accepted: bool = False
    missing: bool = False
    fail: BaseException | None = None
    rooms: list[int | None] = field(default_factory=list)

    async def submit_job(self, job: Job) -> list[ActivityResult]:
        self.rooms.append(job.rejected_room)
        if self.fail is not None:
            # As a transaction rolled back after deciding may leave them.
            job.rejected_kept = job.rejected_refused = 99
            raise self.fail
        results: list[ActivityResult] = []
        kept = refused = 0
        for item in job.items:
            if isinstance(item, Accepted) and not (self.reject_accepted or self.missing):
                results.append(ActivityResult(202, item.id))
            elif isinstance(item, Rejected) and not item.keep:
                results.append(ActivityResult(item.status, error=item.error))
            elif job.rejected_room is not None and kept >= job.rejected_room:
                refused += 1
                results.append(ActivityResult(429, error=OVER_REJECTED_ROOM.detail))
            else:
                kept += 1
                results.append(ActivityResult(404, error=BAD.error))
        job.rejected_kept, job.rejected_refused = kept, refused
        job.missing_contact = self.missing
        if self.missing:
            raise contact_not_found(job.contact_id)
        return results


@dataclass
class FakeHub:
    """What of a hub ``submit_capped`` uses."""

    settings: Settings
    writer: FakeWriter
    rate_limiter: RateLimiter


@dataclass
class Capped:
    """``submit_capped`` on a hub of a writer double and a limiter on a fake clock, driven on
    an event loop of its own."""

    hub: FakeHub
    clock: FakeClock
    loop: asyncio.AbstractEventLoop
    address: str = field(default_factory=lambda: f"192.0.2.{uuid.uuid4().int % 250}")

    @property
    def writer(self) -> FakeWriter:
        return self.hub.writer

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(call)

    def submit(self, *jobs: Job, address: str | None = "") -> list[list[ActivityResult]]:
        where = self.address if address == "" else address
        return self.run(submit_capped(cast(Hub, self.hub), where, jobs))

    def room(self) -> int:
        """How many rejected activities the address may still have kept (found by taking
        them, then giving them back)."""
        limiter = self.hub.rate_limiter
        taken = self.run(limiter.take(rejected_limit(self.address, CAP), CAP + 1))
        self.run(limiter.give_back(taken, 0))
        return taken.count


@pytest.fixture(params=["memory", "redis"])
def capped(request: pytest.FixtureRequest) -> Iterator[Capped]:
    clock = FakeClock(START)
    loop = asyncio.new_event_loop()
    limiter: RateLimiter
    prefix = ""
    if request.param == "memory":
        limiter = MemoryRateLimiter(clock)
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix = f"waypost-test:{uuid.uuid4().hex}:"
        limiter = RedisRateLimiter(url, prefix=prefix, clock=clock)
    settings = load_settings({}, rejected_per_ip_per_hour=CAP)
    try:
        yield Capped(FakeHub(settings, FakeWriter(), limiter), clock, loop)
    finally:
        loop.run_until_complete(limiter.close())
        loop.close()
        if prefix:
            _drop_keys(url, prefix)


def _drop_keys(url: str, prefix: str) -> bool:
    """Delete the keys under ``prefix``; whether there were any."""
    with redis.Redis.from_url(url) as plain:
        names = list(plain.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            plain.delete(*names)
    return bool(names)


def test_jobs_keep_rejected_activities_in_the_room_taken_and_give_back_the_rest(
    capped: Capped,
) -> None:
    first, second = job(BAD, click(), BAD), job(BAD)
    [one, two] = capped.submit(first, second)
    assert [r.status for r in one] == [404, 202, 404]
    assert [r.status for r in two] == [404]
    # Room for every item that could be kept, known rejections first; the accepted one's
    # room, not used, was given back.
    assert capped.writer.rooms == [3, 1]
    assert capped.room() == CAP - 3


def test_past_the_cap_the_request_is_answered_429_and_nothing_more_is_kept(
    capped: Capped,
) -> None:
    capped.submit(job(BAD, BAD, BAD))
    capped.clock.advance(600)
    capped.writer.reject_accepted = True
    with pytest.raises(ApiError) as refused:
        capped.submit(job(click(), BAD, QUIET, click()))
    error = refused.value
    assert (error.status, error.code, error.field) == (429, "rate_limited", None)
    assert "2 rejected activities of this request were refused" in error.message
    # Until the oldest kept one leaves the window: an hour after it, 600 s ago.
    assert error.headers == {
        "retry-after": "3000",
        "ratelimit-limit": str(CAP),
        "ratelimit-remaining": "0",
        "ratelimit-reset": "3000",
    }
    assert capped.writer.rooms[-1] == 1
    assert capped.room() == 0
    with pytest.raises(ApiError, match="1 rejected activity of this request was refused"):
        capped.submit(job(BAD))
    # Accepted activities are not capped.
    capped.writer.reject_accepted = False
    [[stored]] = capped.submit(job(click()))
    assert stored.status == 202
    # The window slides: an hour after the first three, three have room again.
    capped.clock.advance(HOUR - 600)
    assert capped.room() == 3


def test_accepted_activities_use_up_none_of_the_cap(capped: Capped) -> None:
    for _ in range(10):
        [results] = capped.submit(job(click(), click(), click()))
        assert [r.status for r in results] == [202, 202, 202]
    assert capped.room() == CAP


def test_a_failure_keeps_nothing_and_gives_everything_back(capped: Capped) -> None:
    capped.writer.fail = StorageUnavailable("the database is down")
    with pytest.raises(StorageUnavailable):
        capped.submit(job(BAD, BAD), job(BAD))
    assert capped.room() == CAP


def test_a_limiter_that_fails_to_give_back_leaves_the_answer_as_it_is(
    capped: Capped, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The jobs are committed when the unused room is given back: a limiter failing then
    (Redis gone) made a stored request a 500, which the page would send again."""

    async def gone(taken: Taken, keep: int) -> None:
        raise ConnectionError("the limiter is gone")

    monkeypatch.setattr(capped.hub.rate_limiter, "give_back", gone)
    [results] = capped.submit(job(BAD, click()))
    assert [r.status for r in results] == [404, 202]


def test_a_request_cancelled_while_written_gives_back_what_its_jobs_did_not_use(
    capped: Capped,
) -> None:
    """A request cancelled while its jobs were written (the client gone) gave nothing back:
    the room of each of its activities stayed taken for the hour. Its jobs are answered all
    the same, and what they did not keep is given back then."""
    gate = asyncio.Event()
    real = capped.writer.submit_job

    async def held(job: Job) -> list[ActivityResult]:
        await gate.wait()
        return await real(job)

    capped.writer.submit_job = held  # type: ignore[method-assign]
    request = capped.loop.create_task(
        submit_capped(cast(Hub, capped.hub), capped.address, [job(BAD, click(), click())])
    )
    capped.run(asyncio.sleep(0.01))
    assert capped.room() == CAP - 3  # taken while written
    request.cancel()
    capped.run(asyncio.sleep(0))
    assert request.cancelled()
    gate.set()
    capped.run(asyncio.sleep(0.01))
    assert capped.room() == CAP - 1  # the one kept


def test_a_missing_contact_keeps_its_rejections_and_is_a_404_unless_the_cap_refused_some(
    capped: Capped,
) -> None:
    capped.writer.missing = True
    with pytest.raises(ApiError) as missing:
        capped.submit(job(click(), BAD))
    assert (missing.value.status, missing.value.code) == (404, "contact_not_found")
    assert capped.room() == CAP - 2
    # Past the cap the caller is told 429: a 404 would say its activities were kept.
    with pytest.raises(ApiError) as refused:
        capped.submit(job(click(), click(), BAD))
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert capped.room() == 0


def test_a_servers_request_is_not_capped(capped: Capped) -> None:
    for _ in range(3):
        [results] = capped.submit(job(BAD, BAD, BAD), address=None)
        assert [r.status for r in results] == [404, 404, 404]
    assert capped.writer.rooms == [None, None, None]
    assert capped.room() == CAP
    # Nor is a page's, with the cap set to 0.
    capped.hub.settings = load_settings({}, rejected_per_ip_per_hour=0)
    capped.submit(job(BAD, BAD, BAD, BAD, BAD))
    assert capped.writer.rooms[-1] is None


# -- over HTTP, on both databases ---------------------------------------------------------------

BANK = "https://bank.example"
SHOP = "https://shop.example"
CONSENT = "TrackingConsent"
LOAN = {"type": "loan", "value": "5000"}
NO_TYPE = {"type": "no_such_type"}
TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
# The limiter in process and in Redis (both on the test's fake clock).
BOTH_LIMITERS = pytest.mark.parametrize("hub", ["memory", "redis"], indirect=True)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The test database, and a cap of CAP rejected activities an hour for an address."""
    return make_settings(rejected_per_ip_per_hour=CAP)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub(request: pytest.FixtureRequest, settings: Settings, clock: FakeClock) -> Iterator[Hub]:
    """The hub on the fake clock: its limiter in process, or (``redis``) in Redis."""
    the_hub = Hub(settings, Store(make_engine(settings)), clock=clock)
    url = prefix = ""
    if getattr(request, "param", "memory") == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"waypost-test:{uuid.uuid4().hex}:"
        the_hub.rate_limiter = RedisRateLimiter(url, prefix=prefix, clock=clock)
    yield the_hub
    the_hub.close()
    if prefix:
        assert _drop_keys(url, prefix), "Redis was not used"


@dataclass
class Page:
    """A website channel's pages (``origin``) with its publishable key, and the database."""

    client: TestClient
    hub: Hub
    key: str
    origin: str
    tracking: str = ""

    def rejected(self) -> list[sa.Row[Any]]:
        with self.hub.store.read() as conn:
            return list(conn.execute(sa.select(rejected_activities)).all())

    def stored(self) -> int:
        with self.hub.store.read() as conn:
            found = conn.execute(sa.select(sa.func.count()).select_from(activities))
            return int(found.scalar_one())


@pytest.fixture
def bank(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    make_type: Callable[..., ActivityType],
) -> Page:
    """The bank's website, with waypost.js: a tracking consent, and a client-side type."""
    hub.consents.create(
        ConsentCreate(
            code_name=CONSENT,
            display_name="Tracking",
            texts={"en": ConsentText("We track.", "<p>We track your visits.</p>")},
        )
    )
    channel = make_channel(kind="website", allowed_origins=[BANK], tracking_consent=CONSENT)
    make_type(name="Loan calculator usage", code_name="loan", client_side=True)
    hub.catalog.invalidate()
    return Page(client, hub, make_key("publishable", channel.id).key, BANK)


def browser(
    page: Page, route: str, body: dict[str, Any], via: TestClient | None = None
) -> httpx2.Response:
    return (via or page.client).post(
        f"/browser/{route}",
        params={"key": page.key},
        content=json.dumps(body).encode(),
        headers={"Origin": page.origin, "Content-Type": "text/plain"},
    )


def log(
    page: Page,
    contact: str,
    activity: dict[str, Any],
    cookie_level: str = "visitor",
    via: TestClient | None = None,
) -> httpx2.Response:
    body = {"contact": contact, "cookieLevel": cookie_level, "activity": activity}
    return browser(page, "activity", body, via)


def visitor(page: Page) -> str:
    """A new visitor who agreed to the tracking consent: their contact."""
    answer = browser(page, "consent", {"consent": CONSENT, "agree": True})
    assert answer.status_code == 200, answer.text
    contact: str = answer.json()["contact"]
    return contact


def refused(answer: httpx2.Response, origin: str = BANK) -> dict[str, Any]:
    """The cap's 429, with its headers; the body."""
    assert answer.status_code == 429, answer.text
    assert 0 < int(answer.headers["Retry-After"]) <= HOUR
    assert answer.headers["RateLimit-Limit"] == str(CAP)
    assert answer.headers["RateLimit-Remaining"] == "0"
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    body: dict[str, Any] = answer.json()
    assert body["error"]["code"] == "rate_limited", body
    assert "rejected activities" in body["error"]["message"]
    return body


@BOTH_LIMITERS
def test_the_browser_endpoints_keep_rejected_activities_up_to_the_cap(
    bank: Page, clock: FakeClock, expect_error: Callable[..., dict[str, str]]
) -> None:
    agreed, revoked = visitor(bank), visitor(bank)
    answer = browser(bank, "consent", {"contact": revoked, "consent": CONSENT, "agree": False})
    assert answer.status_code == 200, answer.text
    for _ in range(3):
        assert log(bank, agreed, LOAN).status_code == 202
    # Refused before the writer (no such type, a cookie level below visitor) and by it (a
    # contact that does not exist, one that revoked the consent): each kept, with its reason.
    expect_error(log(bank, agreed, NO_TYPE), 404, "activity_type_not_found")
    expect_error(log(bank, agreed, LOAN, cookie_level="none"), 403, "consent_required")
    expect_error(log(bank, str(uuid.uuid4()), LOAN), 404, "contact_not_found")
    expect_error(log(bank, revoked, LOAN), 403, "consent_required")
    assert sorted(r.reason for r in bank.rejected()) == [
        "activity_type_not_found",
        "consent_required",
        "consent_required",
        "contact_not_found",
    ]
    # Past the cap, whatever would have rejected them: 429, and nothing more kept.
    for answer in (
        log(bank, agreed, NO_TYPE),
        log(bank, agreed, LOAN, cookie_level="none"),
        log(bank, str(uuid.uuid4()), LOAN),
        log(bank, revoked, LOAN),
    ):
        expect_error(answer, 429, "rate_limited")
        refused(answer)
    assert len(bank.rejected()) == CAP
    # Accepted activities are stored all the same.
    assert log(bank, agreed, LOAN).status_code == 202
    assert bank.stored() == 4
    # An hour after the first rejections, the window has room again.
    clock.advance(HOUR)
    expect_error(log(bank, agreed, NO_TYPE), 404, "activity_type_not_found")
    assert len(bank.rejected()) == CAP + 1


def test_each_address_has_a_cap_of_its_own_and_an_ipv6_64_is_one_address(
    bank: Page, client: TestClient, expect_error: Callable[..., dict[str, str]]
) -> None:
    def at(address: str) -> TestClient:
        return TestClient(client.app, client=(address, 40000))

    contact = visitor(bank)
    # Each address of one /64 is the same client: they share its cap.
    for i in range(1, CAP + 1):
        answer = log(bank, contact, NO_TYPE, via=at(f"2001:db8:1:2::{i:x}"))
        expect_error(answer, 404, "activity_type_not_found")
    refused(log(bank, contact, NO_TYPE, via=at("2001:db8:1:2:ffff:ffff:ffff:fffe")))
    # Another /64, and each IPv4 address, are others.
    for address in ("2001:db8:1:3::1", "192.0.2.1", "192.0.2.2"):
        expect_error(log(bank, contact, NO_TYPE, via=at(address)), 404, "activity_type_not_found")
    assert len(bank.rejected()) == CAP + 3


@pytest.fixture
def shop(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    make_type: Callable[..., ActivityType],
) -> Page:
    """A shop whose pages send through PostHog, Snowplow and analytics.js (no tracking
    consent, as those clients cannot give one), and whose servers send with a tracking key."""
    channel = make_channel(kind="website", allowed_origins=[SHOP])
    make_type(name="Signed up", code_name="signed_up", aliases=["user signed up"], client_side=True)
    hub.catalog.invalidate()
    key = make_key("publishable", channel.id).key
    return Page(client, hub, key, SHOP, make_key("tracking", channel.id).key)


def posthog_event(name: str) -> dict[str, Any]:
    return {"event": name, "distinct_id": "visitor-1", "uuid": str(uuid.uuid4())}


def posthog(page: Page, events: list[dict[str, Any]], key: str = "") -> httpx2.Response:
    """A batch from a page, or with ``key`` (a tracking key) from a server."""
    headers = {"Content-Type": "application/json"}
    if not key:
        headers["Origin"] = page.origin
    body = {"api_key": key or page.key, "batch": events}
    return page.client.post("/batch/", content=json.dumps(body).encode(), headers=headers)


@BOTH_LIMITERS
def test_posthog_from_a_page_stores_what_it_accepts_and_keeps_rejected_events_up_to_the_cap(
    shop: Page,
) -> None:
    signups = [posthog_event("user signed up") for _ in range(2)]
    autocaptured = [posthog_event("$autocapture") for _ in range(CAP + 2)]
    events = [signups[0], *autocaptured, signups[1]]
    body = refused(posthog(shop, events), SHOP)
    # PostHog's shape, Waypost's error beside it.
    assert body["code"] == "rate_limited"
    assert body["detail"] == body["error"]["message"]
    assert "2 rejected activities of this request were refused" in body["detail"]
    assert shop.stored() == 2
    assert {r.reason for r in shop.rejected()} == {"activity_type_not_found"}
    assert len(shop.rejected()) == CAP
    # Sent again, as a client retries a 429: nothing stored twice, nothing more kept.
    refused(posthog(shop, events), SHOP)
    assert (shop.stored(), len(shop.rejected())) == (2, CAP)
    # A server's requests are not capped.
    server = posthog(shop, [posthog_event("$autocapture") for _ in range(CAP + 2)], shop.tracking)
    assert server.status_code == 200, server.text
    assert len(shop.rejected()) == 2 * CAP + 2


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_pages_share_one_cap_across_snowplow_analytics_js_and_the_pixel(
    shop: Page, expect_error: Callable[..., dict[str, str]]
) -> None:
    def structured() -> dict[str, str]:
        return {
            "aid": shop.key,
            "e": "se",
            "se_ca": "media",
            "se_ac": "never-defined",
            "eid": str(uuid.uuid4()),
            "duid": "browser-1",
        }

    data = {"schema": PAYLOAD, "data": [structured() for _ in range(CAP - 1)]}
    answer = shop.client.post(
        TP2,
        content=json.dumps(data).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "Origin": SHOP},
    )
    assert answer.status_code == 200, answer.text
    assert len(shop.rejected()) == CAP - 1
    # analytics.js, from the same address: one more is kept, the other refused.
    messages = [
        {"type": "track", "event": "Never Defined", "anonymousId": "a-1", "messageId": str(i)}
        for i in range(2)
    ]
    answer = shop.client.post(
        "/v1/batch",
        content=json.dumps({"batch": messages, "writeKey": shop.key}).encode(),
        headers={"Content-Type": "text/plain", "Origin": SHOP, **basic(shop.key)},
    )
    expect_error(answer, 429, "rate_limited")
    refused(answer, SHOP)
    assert len(shop.rejected()) == CAP
    # Snowplow's pixel, from an <img> of the shop's pages.
    query = urllib.parse.urlencode(structured())
    pixel = shop.client.get(f"/i?{query}", headers={"Referer": f"{SHOP}/catalog"})
    expect_error(pixel, 429, "rate_limited")
    assert len(shop.rejected()) == CAP
