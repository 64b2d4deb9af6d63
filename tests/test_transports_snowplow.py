"""Snowplow's collector endpoints through the in-process client, on both databases:
docs/collectors.md."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.parse
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.erasure import Actor
from waypost.services.keys import CreatedKey
from waypost.settings import Settings
from waypost.store.schema import contacts
from waypost.transports.snowplow import PIXEL

if TYPE_CHECKING:
    from tests.collector_support import ORIGIN, Collector
    from tests.conftest import ErrorCheck
else:
    from collector_support import ORIGIN, Collector

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
Event = dict[str, Any]


class Snowplow(Collector):
    """Calls made the way Snowplow's trackers make them."""

    def post(self, body: object, headers: dict[str, str] | None = None) -> httpx2.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return self.client.post(TP2, content=raw, headers=sent)

    def send(self, *events: Event, key: str | None = None) -> None:
        data = [{"aid": key or self.tracking, **e} for e in events]
        answer = self.post({"schema": PAYLOAD, "data": data})
        assert answer.status_code == 200, answer.text
        assert answer.content == b""

    def pixel(self, event: Event, headers: dict[str, str] | None = None) -> httpx2.Response:
        query = urllib.parse.urlencode({"aid": self.tracking, **event})
        return self.client.get(f"/i?{query}", headers=headers or {})


@pytest.fixture
def snowplow(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Snowplow:
    channel = make_channel(kind="website", allowed_origins=[ORIGIN])
    tracking = make_key("tracking", channel.id).key
    publishable = make_key("publishable", channel.id).key
    return Snowplow(client, hub, channel, tracking, publishable)


@pytest.fixture
def loan(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator",
        code_name="loan_calc",
        aliases=["iglu:com.acme/loan_calc/jsonschema/1-*-*"],
        fields=[{"name": "amount", "type": "decimal"}],
        client_side=True,
    )


@pytest.fixture
def play(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Video played",
        code_name="video_played",
        aliases=["media/play"],
        fields=[{"name": "value", "type": "decimal"}],
        client_side=True,
    )


def pv(duid: str = "browser-1", **fields: Any) -> Event:
    return {
        "e": "pv",
        "eid": str(uuid.uuid4()),
        "duid": duid,
        "url": "https://shop.example/",
        **fields,
    }


def ue(schema: str, data: dict[str, Any], encoded: bool = False, **fields: Any) -> Event:
    envelope = json.dumps({"schema": UNSTRUCT, "data": {"schema": schema, "data": data}})
    if encoded:
        parameter = {"ue_px": base64.urlsafe_b64encode(envelope.encode()).decode().rstrip("=")}
    else:
        parameter = {"ue_pr": envelope}
    return {"e": "ue", "eid": str(uuid.uuid4()), "duid": "browser-1", **parameter, **fields}


def millis(when: dt.datetime) -> str:
    return str(int(when.timestamp() * 1000))


# -- events --------------------------------------------------------------------------------------


def test_a_page_view_is_a_page_visit(snowplow: Snowplow) -> None:
    snowplow.send(pv(page="Home", refr="https://search.example/"))
    [visit] = snowplow.activities()
    assert (visit.type, visit.url, visit.value, visit.referrer) == (
        "pagevisit",
        "https://shop.example/",
        "Home",
        "https://search.example/",
    )
    assert visit.contact_id == snowplow.contact_of("snowplow_duid", "browser-1")


def test_page_pings_are_ignored(snowplow: Snowplow) -> None:
    snowplow.send({"e": "pp", "duid": "b", "url": "https://shop.example/", "pp_mix": "0"})
    assert snowplow.activities() == []
    assert snowplow.rejected() == []
    assert snowplow.count(contacts) == 0


def test_a_structured_event_by_its_category_and_action(
    snowplow: Snowplow, play: ActivityType
) -> None:
    snowplow.send(
        {
            "e": "se",
            "duid": "b",
            "se_ca": "media",
            "se_ac": "play",
            "se_la": "intro.mp4",
            "se_pr": "autoplay",
            "se_va": "12.5",
        }
    )
    [stored] = snowplow.activities()
    # The label is the value; se_va fills the declared field "value", se_pr no declared one.
    assert (stored.type, stored.value, stored.fields) == (
        "video_played",
        "intro.mp4",
        {"value": "12.5"},
    )


@pytest.mark.parametrize("encoded", [False, True], ids=["ue_pr", "ue_px"])
def test_a_self_describing_event_by_its_schema_within_a_major_version(
    snowplow: Snowplow, loan: ActivityType, encoded: bool
) -> None:
    snowplow.send(
        ue("iglu:com.acme/loan_calc/jsonschema/1-0-2", {"amount": "50000.10"}, encoded),
        ue("iglu:com.acme/loan_calc/jsonschema/1-3-0", {"amount": "10"}, encoded),
        ue("iglu:com.acme/loan_calc/jsonschema/2-0-0", {"amount": "10"}, encoded),
    )
    assert [(a.type, a.fields) for a in snowplow.activities()] == [
        ("loan_calc", {"amount": "50000.10"}),
        ("loan_calc", {"amount": "10"}),
    ]
    [rejected] = snowplow.rejected()
    assert (rejected.reason, rejected.type_code, rejected.source) == (
        "activity_type_not_found",
        "iglu:com.acme/loan_calc/jsonschema/2-0-0",
        "snowplow",
    )


def test_contexts_are_kept_as_a_flag(snowplow: Snowplow) -> None:
    context = {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"tier": "gold"}}
    envelope = json.dumps({"schema": CONTEXTS, "data": [context]})
    snowplow.send(
        pv(co=envelope),
        pv(cx=base64.urlsafe_b64encode(envelope.encode()).decode()),
    )
    for stored in snowplow.activities():
        [flag] = stored.flags
        assert (flag["field"], flag["code"], flag["value"]) == (
            "contexts",
            "snowplow_contexts",
            [context],
        )


def test_user_ids_join_the_browsers_contact(snowplow: Snowplow) -> None:
    snowplow.send(pv(duid="d1"))
    anonymous = snowplow.contact_of("snowplow_duid", "d1")
    snowplow.send(pv(duid="d2", uid="ann"))
    known = snowplow.contact_of("snowplow_uid", "ann")
    # The same user on the first browser: that browser's visitor is merged into the user.
    snowplow.send(pv(duid="d1", uid="ann", nuid="n1"))
    assert snowplow.surviving(anonymous) == known
    assert [(s, t, r) for s, t, r in snowplow.merges()] == [(anonymous, known, "snowplow_identify")]
    assert snowplow.external_ids(known) >= {
        ("snowplow_uid", "ann"),
        ("snowplow_duid", "d2"),
        ("snowplow_nuid", "n1"),
    }
    assert {snowplow.surviving(a.contact_id) for a in snowplow.activities()} == {known}


def test_device_time_is_corrected_by_the_sent_time(snowplow: Snowplow) -> None:
    now = dt.datetime.now(dt.UTC)
    # The device's clock is an hour behind; the event happened a minute before it was sent.
    device_now = now - dt.timedelta(hours=1)
    snowplow.send(
        pv(dtm=millis(device_now - dt.timedelta(minutes=1)), stm=millis(device_now)),
        pv(duid="b2", dtm=millis(now - dt.timedelta(days=1))),
        pv(duid="b3", ttm=millis(now - dt.timedelta(hours=5)), dtm=millis(now)),
    )
    corrected, plain, true = snowplow.activities()
    assert abs(corrected.occurred_at - (now - dt.timedelta(minutes=1))) < dt.timedelta(seconds=5)
    assert abs(plain.occurred_at - (now - dt.timedelta(days=1))) < dt.timedelta(seconds=1)
    assert abs(true.occurred_at - (now - dt.timedelta(hours=5))) < dt.timedelta(seconds=1)


def test_a_resent_batch_is_stored_once(snowplow: Snowplow, loan: ActivityType) -> None:
    events = [pv(duid="r"), ue("iglu:com.acme/loan_calc/jsonschema/1-0-0", {"amount": "1"})]
    for _ in range(3):
        snowplow.send(*events)
    assert len(snowplow.activities()) == 2
    assert snowplow.count(contacts) == 2


def test_what_cannot_map_is_kept_as_rejected(snowplow: Snowplow) -> None:
    snowplow.send(
        {"e": "tr", "duid": "b", "tr_id": "order-1"},
        {"e": "pv", "url": "https://shop.example/"},
        {"e": "se", "duid": "b", "se_ca": "media"},
        {"e": "ue", "duid": "b", "ue_pr": "{not json"},
        {"e": "ue", "duid": "b", "ue_px": "%%%"},
        pv(dtm="yesterday"),
        {"e": "ue", "duid": "b", "ue_pr": json.dumps({"data": {"schema": "nope", "data": {}}})},
    )
    assert [(r.reason, r.field, r.source) for r in snowplow.rejected()] == [
        ("invalid_field", "e", "snowplow"),
        ("invalid_field", "duid", "snowplow"),
        ("missing_field", "se_ac", "snowplow"),
        ("invalid_field", "ue_pr", "snowplow"),
        ("invalid_field", "ue_px", "snowplow"),
        ("invalid_field", "dtm", "snowplow"),
        ("invalid_field", "ue_pr", "snowplow"),
    ]
    assert snowplow.rejected()[0].payload["tr_id"] == "order-1"
    assert snowplow.activities() == []


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_an_event_holding_a_number_out_of_range_is_kept_and_the_others_stored(
    snowplow: Snowplow, play: ActivityType, hub: Hub, expect_error: ErrorCheck
) -> None:
    """One number no reader takes (an exponent past a float's, more digits than Python
    reads) in one event refused the whole body, 400, which the trackers do not retry: every
    event of it was lost. Its event alone is kept as rejected, as sent, and the others are
    stored; so too for one in the JSON of a parameter, base64 or not, by POST or GET."""
    key = snowplow.tracking.encode()
    huge = b"1" + b"0" * 5000
    good = json.dumps({"aid": snowplow.tracking, **pv(duid="u")}).encode()
    unread = (
        b'{"aid": "%s", "e": "se", "duid": "u", "se_ca": "media", "se_ac": "play", "se_va": %s}'
    )
    data = '{"schema": "iglu:com.acme/loan_calc/jsonschema/1-0-0", "data": {"amount": 1e400}}'
    envelope = f'{{"schema": "{UNSTRUCT}", "data": {data}}}'
    in_base64 = {"e": "ue", "eid": str(uuid.uuid4()), "duid": "u", "ue_px": b64(envelope)}
    events = [good, unread % (key, b"1e400"), unread % (key, huge)]
    events.append(json.dumps({"aid": snowplow.tracking, **in_base64}).encode())
    body = b'{"schema": "%s", "data": [%s]}' % (PAYLOAD.encode(), b", ".join(events))
    answer = snowplow.post(body)
    assert answer.status_code == 200, answer.text
    [stored] = snowplow.activities()
    assert stored.contact_id == snowplow.contact_of("snowplow_duid", "u")
    kept = snowplow.rejected()
    assert [(r.reason, r.status, r.field, r.source) for r in kept] == [
        ("invalid_field", 400, "se_va", "snowplow"),
        ("invalid_field", 400, "se_va", "snowplow"),
        ("invalid_field", 400, "ue_px.data.data.amount", "snowplow"),
    ]
    assert "out of range" in kept[0].message
    assert kept[0].type_code == "media/play"
    assert kept[0].payload["aid"] != snowplow.tracking  # the key cut, as in any kept event
    assert kept[1].payload["se_va"] == huge.decode()  # as sent, read back as text
    assert kept[2].payload["ue_px"] == b64(envelope)
    # An event naming an erased person is dropped, not kept, even when it cannot be read.
    hub.erasure.erase(stored.contact_id, Actor("key", None))
    hub.catalog.invalidate()
    alone = b'{"schema": "%s", "data": [%s]}' % (PAYLOAD.encode(), unread % (key, b"1e400"))
    expect_error(snowplow.post(alone), 403, "contact_erased")
    assert snowplow.rejected() == []  # the erasure took the three kept above


def test_a_pixel_whose_json_holds_a_number_out_of_range_is_kept_naming_its_person(
    snowplow: Snowplow, hub: Hub, expect_error: ErrorCheck
) -> None:
    """The pixel's one event, its contexts (base64) holding a number no reader takes, was
    kept as rejected as JSON that is not JSON, and naming no one: kept even for an erased
    person. It is kept with the number's place, and one naming an erased person dropped."""
    contexts = b64(f'{{"schema": "{CONTEXTS}", "data": [{{"data": {{"n": 1e400}}}}]}}')
    answer = snowplow.pixel({**pv(duid="u"), "cx": contexts})
    assert (answer.status_code, answer.content) == (200, PIXEL)
    [kept] = snowplow.rejected()
    assert (kept.reason, kept.status, kept.field) == ("invalid_field", 400, "cx.data[0].data.n")
    assert "out of range" in kept.message
    assert kept.payload["cx"] == contexts  # as sent
    snowplow.send(pv(duid="u"))
    hub.erasure.erase(snowplow.contact_of("snowplow_duid", "u"), Actor("key", None))
    hub.catalog.invalidate()
    expect_error(snowplow.pixel({**pv(duid="u"), "cx": contexts}), 403, "contact_erased")
    assert snowplow.rejected() == []


# -- GET /i --------------------------------------------------------------------------------------


def test_the_pixel_stores_its_event_and_answers_a_gif(snowplow: Snowplow) -> None:
    answer = snowplow.pixel(pv(page="Pixel"))
    assert answer.status_code == 200
    assert answer.content == PIXEL
    assert answer.headers["content-type"] == "image/gif"
    [visit] = snowplow.activities()
    assert visit.value == "Pixel"


def test_a_pixel_from_a_page_is_known_by_its_referrer(snowplow: Snowplow) -> None:
    query = urllib.parse.urlencode({**pv(), "aid": snowplow.publishable})
    for referer, status in (("https://shop.example/cart", 200), ("https://evil.example/", 403)):
        answer = snowplow.client.get(f"/i?{query}", headers={"Referer": referer})
        assert answer.status_code == status, answer.text


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[]", 400, "invalid_json"),
        (b'{"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": []}', 400, "invalid_field"),
        (json.dumps({"schema": PAYLOAD, "data": []}).encode(), 400, "invalid_field"),
        (json.dumps({"schema": PAYLOAD, "data": [1]}).encode(), 400, "invalid_field"),
        (json.dumps({"schema": PAYLOAD, "data": [{"e": "pv"}]}).encode(), 401, "unauthorized"),
        (
            json.dumps(
                {"schema": PAYLOAD, "data": [{"e": "pv", "aid": "a"}, {"aid": "b"}]}
            ).encode(),
            400,
            "invalid_field",
        ),
        (b"[" * 100_000, 400, "invalid_json"),
        (
            json.dumps({"schema": PAYLOAD, "data": [{"e": "pv", "x": [[[[[[[[[[]]]]]]]]]]}]})
            .replace("[[", "[[[[[[[[[[[[[[")
            .replace("]]", "]]]]]]]]]]]]]]")
            .encode(),
            400,
            "invalid_json",
        ),
    ],
)
def test_malformed_bodies_are_4xx(
    snowplow: Snowplow, body: bytes, status: int, code: str, expect_error: ErrorCheck
) -> None:
    expect_error(snowplow.post(body), status, code)


def test_malformed_pixels_are_4xx(snowplow: Snowplow, expect_error: ErrorCheck) -> None:
    expect_error(snowplow.client.get("/i?aid=x"), 400, "missing_field", "e")
    expect_error(snowplow.client.get("/i?e=pv&aid=%ff"), 400, "invalid_field")
    many = "&".join(f"p{n}=1" for n in range(400))
    expect_error(snowplow.client.get(f"/i?e=pv&{many}"), 400, "invalid_field")
    expect_error(snowplow.client.get("/i?e=pv"), 401, "unauthorized")


def test_a_storage_outage_is_a_503(expect_error: ErrorCheck) -> None:
    settings = Settings(database_url="sqlite:////nonexistent/dir/waypost.db")
    body = json.dumps({"schema": PAYLOAD, "data": [{"e": "pv", "aid": "wpt_x"}]}).encode()
    with TestClient(create_app(settings)) as client:
        answer = client.post(TP2, content=body)
    expect_error(answer, 503, "storage_unavailable")
    assert int(answer.headers["retry-after"]) >= 1


# -- pages ---------------------------------------------------------------------------------------


def test_a_page_sends_with_the_publishable_key_and_cookies(
    snowplow: Snowplow, loan: ActivityType
) -> None:
    preflight = snowplow.client.options(
        TP2, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    data = [{"aid": snowplow.publishable, **ue("iglu:com.acme/loan_calc/jsonschema/1-0-0", {})}]
    answer = snowplow.post({"schema": PAYLOAD, "data": data}, headers={"Origin": ORIGIN})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert [a.type for a in snowplow.activities()] == ["loan_calc"]


def test_pages_link_at_most_100_ids_of_a_kind_to_a_contact(snowplow: Snowplow) -> None:
    """A page's events each linked their new network id to the browser's contact: a thousand
    rows a request, without end. Past 100 of a kind, the event is still stored on the
    browser's contact, its new id not linked; a server's tracking key is not limited so."""
    events = [{"aid": snowplow.publishable, **pv(nuid=f"n{i}")} for i in range(150)]
    answer = snowplow.post({"schema": PAYLOAD, "data": events}, headers={"Origin": ORIGIN})
    assert answer.status_code == 200, answer.text
    browser = snowplow.contact_of("snowplow_duid", "browser-1")
    ids = snowplow.external_ids(browser)
    assert sum(kind == "snowplow_nuid" for kind, _ in ids) == 100
    # The others are page visits, within the type's limits (10 a day for a contact).
    kept = [(r.reason, r.status) for r in snowplow.rejected()]
    assert len(snowplow.activities()) + kept.count(("rate_limited", 429)) == 150
    assert {a.contact_id for a in snowplow.activities()} == {browser}
    snowplow.send(*[pv(nuid=f"s{i}") for i in range(150)])
    ids = snowplow.external_ids(browser)
    assert sum(kind == "snowplow_nuid" for kind, _ in ids) == 250


def test_pages_are_refused_from_other_origins_or_with_the_secret_key(
    snowplow: Snowplow, expect_error: ErrorCheck
) -> None:
    for key, origin in (
        (snowplow.publishable, "https://evil.example"),
        (snowplow.tracking, ORIGIN),
    ):
        answer = snowplow.post(
            {"schema": PAYLOAD, "data": [{"aid": key, **pv()}]}, headers={"Origin": origin}
        )
        expect_error(answer, 403, "forbidden")
    assert snowplow.activities() == []


def test_an_event_of_an_unknown_schema_replays_once_an_alias_names_it(
    snowplow: Snowplow,
    make_type: Callable[..., ActivityType],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    snowplow.send(ue("iglu:com.acme/quote/jsonschema/1-2-0", {"amount": "5"}))
    [rejected] = snowplow.rejected()
    assert rejected.reason == "activity_type_not_found"
    make_type(
        name="Quote",
        code_name="quote",
        aliases=["iglu:com.acme/quote/jsonschema/1-*-*"],
        fields=[{"name": "amount", "type": "decimal"}],
    )
    answer = client.post(f"/api/rejected-activities/{rejected.id}/replay", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1
    [stored] = snowplow.activities()
    assert (stored.type, stored.fields) == ("quote", {"amount": "5"})


def test_an_erased_persons_network_id_names_them_still(snowplow: Snowplow, hub: Hub) -> None:
    # The collector's cookie (nuid) is suppressed with the rest of an erased person's ids: an
    # event that names them by it alone, from a browser not seen before, is stored nowhere and
    # makes no contact.
    snowplow.send(pv(duid="d-gone", nuid="n-gone"))
    gone = snowplow.contact_of("snowplow_duid", "d-gone")
    hub.erasure.erase(gone, Actor("key", None))
    contacts_before, stored = snowplow.count(contacts), len(snowplow.activities())
    event = {"aid": snowplow.tracking, **pv(duid="d-new", nuid="n-gone")}
    answer = snowplow.post({"schema": PAYLOAD, "data": [event]})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "contact_erased"
    assert snowplow.count(contacts) == contacts_before
    assert len(snowplow.activities()) == stored


def test_events_that_cannot_be_mapped_naming_an_erased_person_are_stored_nowhere(
    snowplow: Snowplow, hub: Hub, expect_error: ErrorCheck
) -> None:
    """An event that failed its mapping for another reason (a kind Waypost does not take, a
    dtm that is not milliseconds, base64 that is not, no e at all) was kept as rejected with
    the erased person's ids in its payload. It names them all the same, and is dropped."""
    snowplow.send(pv(duid="d-gone", uid="u-gone", nuid="n-gone"))
    hub.erasure.erase(snowplow.contact_of("snowplow_duid", "d-gone"), Actor("key", None))
    hub.catalog.invalidate()
    for sent in (
        {"e": "tr", "duid": "d-gone"},
        {**pv(duid="d-new", uid="u-gone"), "dtm": "yesterday"},
        {"e": "ue", "duid": "d-new", "tnuid": "n-gone", "ue_px": "%%%"},
        {"e": "xx", "uid": "u-gone"},
        {**pv(duid="d-gone", uid="u" * 201), "e": "ad"},
        {"e": "se", "duid": "d-gone", "se_ca": "media", "se_va": "\u0000"},
    ):
        answer = snowplow.post({"schema": PAYLOAD, "data": [{"aid": snowplow.tracking, **sent}]})
        expect_error(answer, 403, "contact_erased")
    expect_error(snowplow.pixel({"e": "tr", "duid": "d-gone"}), 403, "contact_erased")
    assert snowplow.rejected() == []
    # Beside an event of someone else, it is dropped and the other kept as rejected.
    snowplow.send({"e": "tr", "duid": "d-gone"}, {"e": "tr", "duid": "d-other"})
    [kept] = snowplow.rejected()
    assert (kept.reason, kept.field, kept.payload["duid"]) == ("invalid_field", "e", "d-other")
