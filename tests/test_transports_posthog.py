"""PostHog's capture API through the in-process client, on both databases: docs/collectors.md."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import msgspec
import pytest
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel, ChannelCreate
from waypost.services.consents import ConsentCreate
from waypost.services.erasure import Actor
from waypost.services.keys import CreatedKey, KeyCreate
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import contacts

if TYPE_CHECKING:
    from tests.collector_support import ORIGIN, Collector
else:
    from collector_support import ORIGIN, Collector

Event = dict[str, Any]
CAPTURE_PATHS = ["/batch/", "/batch", "/capture/", "/capture", "/e/", "/e", "/i/v0/e/", "/i/v0/e"]


class PostHog(Collector):
    """Calls made the way PostHog's clients make them."""

    def post(
        self,
        path: str,
        body: object,
        *,
        headers: dict[str, str] | None = None,
        gzipped: bool = False,
    ) -> httpx2.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if gzipped:
            raw = gzip.compress(raw)
            sent["Content-Encoding"] = "gzip"
        return self.client.post(path, content=raw, headers=sent)

    def send(self, *events: dict[str, Any], path: str = "/batch/", **options: Any) -> None:
        answer = self.post(path, {"api_key": self.tracking, "batch": list(events)}, **options)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": 1}


@pytest.fixture
def posthog(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> PostHog:
    channel = make_channel(kind="website", allowed_origins=[ORIGIN])
    tracking = make_key("tracking", channel.id).key
    publishable = make_key("publishable", channel.id).key
    return PostHog(client, hub, channel, tracking, publishable)


@pytest.fixture
def signup(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Signed up",
        code_name="signed_up",
        aliases=["user signed up"],
        fields=[{"name": "plan", "type": "text"}],
        client_side=True,
    )


def event(
    name: str = "user signed up", distinct_id: str = "user-1", **fields: Any
) -> dict[str, Any]:
    fields.setdefault("uuid", str(uuid.uuid4()))
    return {"event": name, "distinct_id": distinct_id, **fields}


def posthog_error(answer: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    """PostHog's error shape, with Waypost's error beside it."""
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"type", "code", "detail", "attr", "error"}, body
    assert body["code"] == body["error"]["code"] == code
    assert body["detail"] == body["error"]["message"]
    return body


# -- paths and encodings -------------------------------------------------------------------------


@pytest.mark.parametrize("path", CAPTURE_PATHS)
def test_every_capture_path_stores_an_event(
    posthog: PostHog, signup: ActivityType, path: str
) -> None:
    posthog.send(event(properties={"plan": "pro", "$lib": "web"}), path=path)
    [stored] = posthog.activities()
    assert (stored.type, stored.fields) == ("signed_up", {"plan": "pro"})
    assert stored.contact_id == posthog.contact_of("posthog_anon", "user-1")
    assert stored.channel_id == posthog.channel.id


def test_one_event_and_a_list_of_events_are_bodies_too(
    posthog: PostHog, signup: ActivityType
) -> None:
    for body in (
        {**event(distinct_id="a"), "api_key": posthog.tracking},
        [event(distinct_id="b", properties={"token": posthog.tracking})],
    ):
        answer = posthog.post("/e/", body)
        assert answer.json() == {"status": 1}, answer.text
    assert len(posthog.activities()) == 2


def test_gzip_in_every_form_posthog_sends(posthog: PostHog, signup: ActivityType) -> None:
    body = json.dumps({"api_key": posthog.tracking, "batch": [event(distinct_id="g1")]}).encode()
    posthog.send(event(distinct_id="g0"), gzipped=True)
    # posthog-js: gzip without Content-Encoding, named by the query, as text/plain.
    answer = posthog.client.post(
        "/e/?compression=gzip-js&ver=1.0",
        content=gzip.compress(body),
        headers={"Content-Type": "text/plain"},
    )
    assert answer.json() == {"status": 1}
    # The gzip magic is enough.
    again = json.dumps({"api_key": posthog.tracking, "batch": [event(distinct_id="g2")]})
    answer = posthog.client.post("/i/v0/e/", content=gzip.compress(again.encode()))
    assert answer.json() == {"status": 1}
    assert len(posthog.activities()) == 3


def test_form_bodies_base64_or_json(posthog: PostHog, signup: ActivityType) -> None:
    for n, compression in enumerate(["base64", None]):
        body = json.dumps([event(distinct_id=f"f{n}", properties={"token": posthog.tracking})])
        data = base64.b64encode(body.encode()).decode() if compression else body
        query = f"?compression={compression}" if compression else ""
        answer = posthog.client.post(
            f"/e/{query}",
            content=f"data={urllib.parse.quote(data)}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.json() == {"status": 1}, answer.text
    assert len(posthog.activities()) == 2


def test_a_form_body_of_json_keeps_text_beyond_ascii(
    posthog: PostHog, signup: ActivityType
) -> None:
    """The form's data is JSON percent-encoded as UTF-8: a plan of "Café €" is stored as sent
    (the euro sign was a 500, the é a 400 as if the body were not UTF-8)."""
    body = json.dumps(
        [event(distinct_id="f", properties={"token": posthog.tracking, "plan": "Café €"})],
        ensure_ascii=False,
    )
    answer = posthog.client.post(
        "/e/",
        content=f"data={urllib.parse.quote(body)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.json() == {"status": 1}, answer.text
    [stored] = posthog.activities()
    assert stored.fields == {"plan": "Café €"}
    # Bytes that are not UTF-8 are still a 400, not a 500.
    answer = posthog.client.post(
        "/e/",
        content='data=[{"event": "x", "distinct_id": "%FF"}]',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    posthog_error(answer, 400, "invalid_json")


# -- mapping -------------------------------------------------------------------------------------


def test_a_pageview_is_a_page_visit(posthog: PostHog) -> None:
    posthog.send(
        event(
            "$pageview",
            properties={
                "$current_url": "https://shop.example/pricing",
                "$referrer": "https://search.example/?q=shop",
                "title": "Pricing",
            },
        ),
        event("$pageview", properties={"$current_url": "not a url"}),
    )
    [visit] = posthog.activities()
    assert (visit.type, visit.url, visit.referrer, visit.value) == (
        "pagevisit",
        "https://shop.example/pricing",
        "https://search.example/?q=shop",
        "Pricing",
    )
    # A page visit whose URL is no web URL is kept with the URL it was sent.
    [rejected] = posthog.rejected()
    assert (rejected.reason, rejected.field, rejected.source) == ("invalid_field", "url", "posthog")
    assert rejected.payload["url"] == "not a url"


def test_identify_merges_the_anonymous_visitor_and_sets_fields(
    posthog: PostHog, signup: ActivityType
) -> None:
    posthog.send(event(distinct_id="anon-1"))
    anonymous = posthog.contact_of("posthog_anon", "anon-1")
    posthog.send(event(distinct_id="user-1"))
    known = posthog.contact_of("posthog_anon", "user-1")
    posthog.send(
        event(
            "$identify",
            distinct_id="user-1",
            properties={"$anon_distinct_id": "anon-1"},
            **{
                "$set": {"email": "ann@example.com", "first_name": "Ann", "plan": "pro"},
                "$set_once": {"last_name": "Cole", "first_name": "Not Ann", "$initial_os": "x"},
            },
        )
    )
    assert posthog.surviving(anonymous) == known
    assert [(s, t) for s, t, _ in posthog.merges()] == [(anonymous, known)]
    assert posthog.merges()[0][2] == "posthog_identify"
    row = posthog.contact(known)
    assert (row.email, row.first_name, row.last_name) == ("ann@example.com", "Ann", "Cole")
    assert row.attributes == {"plan": "pro"}
    assert {a.contact_id for a in posthog.activities()} == {known}
    # The identified id is a user's from now on: a new anonymous id identified as it joins too.
    assert ("posthog_user", "user-1") in posthog.external_ids(known)


def test_identify_never_merges_an_identified_contact(posthog: PostHog) -> None:
    posthog.send(event("$identify", distinct_id="u1", properties={"$anon_distinct_id": "d1"}))
    posthog.send(event("$identify", distinct_id="u2", properties={"$anon_distinct_id": "d2"}))
    # d1's contact is u1's, an identified person: identifying it as u2 merges nothing.
    posthog.send(event("$identify", distinct_id="u2", properties={"$anon_distinct_id": "u1"}))
    assert posthog.merges() == []
    assert posthog.contact_of("posthog_anon", "d1") == posthog.contact_of("posthog_user", "u1")


def test_person_properties_past_the_attributes_limit_are_kept_as_rejected(
    posthog: PostHog, signup: ActivityType
) -> None:
    """$set of new properties, event after event, grew one contact's attributes without end:
    past 64 KB the event is kept as rejected (413), and nothing of it applies."""
    properties = {f"p{i}": "v" * 100 for i in range(700)}  # about 77 KB
    named: Any = {"$set": {"first_name": "Ann"}}
    grows: Any = {"$set": properties}
    posthog.send(event("$set", **named))
    contact = posthog.contact_of("posthog_anon", "user-1")
    posthog.send(event(properties={"plan": "pro"}, **grows))
    row = posthog.contact(contact)
    assert (row.first_name, row.attributes) == ("Ann", {})
    assert posthog.activities() == []
    [kept] = posthog.rejected()
    assert (kept.reason, kept.status) == ("payload_too_large", 413)


def test_set_and_set_once(posthog: PostHog) -> None:
    set_: Any = {"$set": {"email": "bo@example.com", "company": "Acme"}}
    once: Any = {"$set_once": {"email": "other@example.com"}}
    posthog.send(event("$set", **set_))
    posthog.send(event("$set_once", **once))
    posthog.send(event("$set", properties={"$set": {"title": "CTO"}}))
    row = posthog.contact(posthog.contact_of("posthog_anon", "user-1"))
    assert (row.email, row.company_name, row.job_title) == ("bo@example.com", "Acme", "CTO")
    assert posthog.activities() == []
    assert posthog.rejected() == []


def test_create_alias_merges_the_two_ids(posthog: PostHog) -> None:
    posthog.send(event("$set", distinct_id="old", **{"$set": {"first_name": "Cy"}}))
    posthog.send(event("$set", distinct_id="new", **{"$set": {"last_name": "Dee"}}))
    old, new = posthog.contact_of("posthog_anon", "old"), posthog.contact_of("posthog_anon", "new")
    posthog.send(
        event("$create_alias", distinct_id="old", properties={"distinct_id": "old", "alias": "new"})
    )
    assert posthog.merges() == [(old, new, "posthog_alias")]
    row = posthog.contact(new)
    assert (row.first_name, row.last_name) == ("Cy", "Dee")


def test_an_alias_of_unknown_ids_makes_one_contact(posthog: PostHog) -> None:
    posthog.send(event("$create_alias", distinct_id="p", properties={"alias": "q"}))
    assert posthog.contact_of("posthog_anon", "p") == posthog.contact_of("posthog_user", "q")


def test_timestamps_are_corrected_by_sent_at_or_offset(
    posthog: PostHog, signup: ActivityType
) -> None:
    now = dt.datetime.now(dt.UTC)
    behind = now - dt.timedelta(hours=2)
    answer = posthog.post(
        "/batch/",
        {
            "api_key": posthog.tracking,
            # The client's clock is two hours behind: its event of a minute ago.
            "sent_at": behind.isoformat(),
            "batch": [event(timestamp=(behind - dt.timedelta(minutes=1)).isoformat())],
        },
    )
    assert answer.status_code == 200
    posthog.send(event(distinct_id="o", offset=30_000, uuid="offset-one"))
    first, second = posthog.activities()
    assert abs(first.occurred_at - (now - dt.timedelta(minutes=1))) < dt.timedelta(seconds=10)
    assert abs(second.occurred_at - (now - dt.timedelta(seconds=30))) < dt.timedelta(seconds=10)
    assert second.client_id == "offset-one"


def test_a_resent_batch_is_stored_once(posthog: PostHog, signup: ActivityType) -> None:
    body = {
        "api_key": posthog.tracking,
        "batch": [
            event(distinct_id="r"),
            event("$pageview", distinct_id="r", properties={"$current_url": "https://a.example/"}),
        ],
    }
    for _ in range(3):
        assert posthog.post("/batch/", body).json() == {"status": 1}
    assert len(posthog.activities()) == 2
    assert posthog.count(contacts) == 1


def test_what_cannot_map_is_kept_as_rejected(posthog: PostHog, signup: ActivityType) -> None:
    posthog.send(
        event("no such event"),
        {"event": "user signed up", "properties": {}},
        {"distinct_id": "x"},
        event(properties={"plan": 5}),
        event(distinct_id="x" * 201),
        event(properties={"plan": "a\u0000b"}),
    )
    rows = posthog.rejected()
    assert [(r.reason, r.field, r.source) for r in rows] == [
        ("missing_field", "distinct_id", "posthog"),
        ("missing_field", "event", "posthog"),
        ("invalid_field", "distinct_id", "posthog"),
        ("invalid_field", None, "posthog"),
        ("activity_type_not_found", "type", "posthog"),
        ("field_type_mismatch", "fields.plan", "posthog"),
    ]
    assert rows[4].type_code == "no such event"
    assert rows[0].payload["event"] == "user signed up"
    assert posthog.activities() == []


def test_a_number_out_of_range_under_a_nul_key_is_kept_with_the_nul_written_out(
    posthog: PostHog, signup: ActivityType
) -> None:
    """The number's place is made of the event's keys, and a key may hold a NUL, which no
    text column of PostgreSQL takes: the batch failed with a 503 and nothing was kept. The
    NUL is written out in the field and the message."""
    unread = b'{"event": "signed up", "distinct_id": "u", "properties": {"a\\u0000b": 1e400}}'
    key = posthog.tracking.encode()
    body = b'{"api_key": "%s", "batch": [%s]}' % (key, unread)
    answer = posthog.post("/batch/", body)
    assert answer.status_code == 200, answer.text
    [kept] = posthog.rejected()
    assert (kept.reason, kept.field) == ("invalid_field", "properties.a\\u0000b")
    assert "\x00" not in kept.message


def test_an_event_holding_a_number_out_of_range_is_kept_and_the_others_stored(
    posthog: PostHog, signup: ActivityType, hub: Hub
) -> None:
    """One number no reader takes (an exponent past a float's, more digits than Python
    reads) refused the whole body, 400, which PostHog's clients drop: every event of it was
    lost. Its event alone is kept as rejected, as sent, and the others are stored."""
    huge = b"1" + b"0" * 5000
    unread = b'{"event": "user signed up", "distinct_id": "u", "properties": {"%s": %s}}'
    events = [json.dumps(event(distinct_id="u")).encode(), unread % (b"plan", b"1e400")]
    events.append(unread % (b"n", huge))
    key = posthog.tracking.encode()
    body = b'{"api_key": "%s", "batch": [%s]}' % (key, b", ".join(events))
    answer = posthog.post("/batch/", body)
    assert answer.status_code == 200, answer.text
    [stored] = posthog.activities()
    assert stored.contact_id == posthog.contact_of("posthog_anon", "u")
    kept = posthog.rejected()
    assert [(r.reason, r.status, r.field, r.source) for r in kept] == [
        ("invalid_field", 400, "properties.plan", "posthog"),
        ("invalid_field", 400, "properties.n", "posthog"),
    ]
    assert "out of range" in kept[0].message
    assert kept[0].type_code == "user signed up"
    assert kept[1].payload["properties"]["n"] == huge.decode()  # as sent, read back as text
    # A body of one event holding its key: kept all the same, the key read beside the number.
    one = {"event": "user signed up", "distinct_id": "u", "api_key": posthog.tracking}
    raw = json.dumps(one).encode()[:-1] + b', "properties": {"plan": 1e400}}'
    assert posthog.post("/capture/", raw).status_code == 200
    assert len(posthog.rejected()) == 3
    # An event naming an erased person is dropped, not kept, even when it cannot be read.
    hub.erasure.erase(posthog.contact_of("posthog_anon", "u"), Actor("key", None))
    hub.catalog.invalidate()
    for erased in (raw, raw.replace(b'"api_key"', b'"$set": {"n": 1e400}, "api_key"')):
        posthog_error(posthog.post("/capture/", erased), 403, "contact_erased")
    assert posthog.rejected() == []  # the erasure took the three kept above
    # One whose id cannot be read names no one: kept.
    nameless = json.dumps({"event": "e", "api_key": posthog.tracking}).encode()
    nameless = nameless[:-1] + b', "distinct_id": 1e400}'
    assert posthog.post("/capture/", nameless).status_code == 200
    assert [(r.reason, r.field) for r in posthog.rejected()] == [("invalid_field", "distinct_id")]


def test_a_key_sent_in_an_event_is_not_kept_whole(posthog: PostHog, signup: ActivityType) -> None:
    """Whoever may read rejected activities (a marketer) reads no key from them: a key in a
    kept event is cut to its prefix and last four, as the admin UI shows keys."""
    key = posthog.tracking
    posthog.send(
        {"distinct_id": "x", "api_key": key, "properties": {"token": key, "note": "wpt_short"}}
    )
    [row] = posthog.rejected()
    kept = json.dumps(row.payload)
    assert key[4:-4] not in kept
    assert row.payload["api_key"] == row.payload["properties"]["token"] == f"wpt_…{key[-4:]}"
    assert row.payload["properties"]["note"] == "wpt_short"


# -- errors in PostHog's shape -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'"text"', 400, "invalid_json"),
        (b'{"batch": 5}', 400, "invalid_json"),
        (b'{"batch": []}', 400, "invalid_json"),
        (b'{"batch": [1, 2]}', 400, "invalid_json"),
        (b"data=%%%", 400, "invalid_json"),
        (b'{"batch": [{"event": "e", "distinct_id": "d"}]}', 401, "unauthorized"),
        (b'{"api_key": "phc_nope", "batch": [{"event": "e"}]}', 401, "unauthorized"),
        (b'{"api_key": 5, "batch": [{"event": "e"}]}', 401, "unauthorized"),
        (b"[" * 100_000, 400, "invalid_json"),
        (
            b'{"batch": [{"event": "e", "properties": ' + b'{"a": ' * 200 + b"1" + b"}" * 203,
            400,
            "invalid_json",
        ),
        (b"data=1&" * 30, 400, "invalid_json"),
    ],
)
def test_malformed_bodies_are_4xx_in_posthogs_shape(
    posthog: PostHog, body: bytes, status: int, code: str
) -> None:
    posthog_error(posthog.post("/batch/", body), status, code)


def test_bad_gzip_and_different_keys_are_400(posthog: PostHog) -> None:
    answer = posthog.client.post("/e/?compression=gzip-js", content=b"\x1f\x8bnot gzip")
    posthog_error(answer, 400, "invalid_json")
    two = [event(properties={"token": posthog.tracking}), event(properties={"token": "other"})]
    posthog_error(posthog.post("/e/", two), 400, "invalid_field")


def test_keys_that_cannot_send(
    posthog: PostHog, make_key: Callable[..., CreatedKey], hub: Hub
) -> None:
    admin = make_key("admin").key
    answer = posthog.post("/batch/", {"api_key": admin, "batch": [event()]})
    assert posthog_error(answer, 403, "forbidden")["type"] == "authentication_error"


def test_a_storage_outage_is_a_503_posthog_retries() -> None:
    settings = Settings(database_url="sqlite:////nonexistent/dir/waypost.db")
    with TestClient(create_app(settings)) as client:
        body = json.dumps({"api_key": "wpt_x", "batch": [event()]}).encode()
        answer = client.post("/batch/", content=body)
    assert posthog_error(answer, 503, "storage_unavailable")["type"] == "server_error"
    assert int(answer.headers["retry-after"]) >= 1


# -- pages ---------------------------------------------------------------------------------------


def test_a_page_sends_with_the_publishable_key(posthog: PostHog, signup: ActivityType) -> None:
    body = [event(properties={"token": posthog.publishable, "plan": "pro"})]
    answer = posthog.post("/e/", body, headers={"Origin": ORIGIN})
    assert answer.json() == {"status": 1}
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    [stored] = posthog.activities()
    assert stored.type == "signed_up"


def test_a_page_cannot_alias_two_identified_users(posthog: PostHog) -> None:
    """A page's $create_alias of two identified users' ids merged one person's history into
    another's: a publishable key is public, and anyone who knew two distinct ids (often
    emails or user ids) could join them. From a page it is kept as rejected (403); an
    anonymous id still joins a user, and a server may alias two users."""
    for user, anon in (("ann", "a1"), ("bob", "b1")):
        posthog.send(event("$identify", distinct_id=user, properties={"$anon_distinct_id": anon}))
    ann, bob = posthog.contact_of("posthog_user", "ann"), posthog.contact_of("posthog_user", "bob")
    alias = event(
        "$create_alias",
        distinct_id="ann",
        properties={"token": posthog.publishable, "distinct_id": "ann", "alias": "bob"},
    )
    answer = posthog.post("/e/", [alias], headers={"Origin": ORIGIN})
    assert answer.json() == {"status": 1}
    assert posthog.merges() == []
    [kept] = posthog.rejected()
    assert (kept.reason, kept.status) == ("forbidden", 403)
    # An anonymous visitor's id joins a user from a page, as identify does.
    page_alias = event(
        "$create_alias",
        distinct_id="visitor",
        properties={"token": posthog.publishable, "distinct_id": "visitor", "alias": "bob"},
    )
    seen = event(distinct_id="visitor", properties={"token": posthog.publishable})
    assert posthog.post("/e/", [seen], headers={"Origin": ORIGIN}).status_code == 200
    visitor = posthog.contact_of("posthog_anon", "visitor")
    assert posthog.post("/e/", [page_alias], headers={"Origin": ORIGIN}).status_code == 200
    assert [(s, t) for s, t, _ in posthog.merges()] == [(visitor, bob)]
    # A server may.
    posthog.send(
        event("$create_alias", distinct_id="ann", properties={"distinct_id": "ann", "alias": "bob"})
    )
    assert [(s, t) for s, t, _ in posthog.merges()][-1] == (ann, bob)
    # An identified user's page may alias an id that names no identified user (posthog-js's
    # alias() after identify): PostHog merges those.
    posthog.send(event("$identify", distinct_id="cat", properties={"$anon_distinct_id": "c1"}))
    cat = posthog.contact_of("posthog_user", "cat")
    posthog.send(event(distinct_id="backend-7"))
    backend = posthog.contact_of("posthog_anon", "backend-7")
    cat_alias = event(
        "$create_alias",
        distinct_id="cat",
        properties={"token": posthog.publishable, "distinct_id": "cat", "alias": "backend-7"},
    )
    assert posthog.post("/e/", [cat_alias], headers={"Origin": ORIGIN}).status_code == 200
    assert [(s, t) for s, t, _ in posthog.merges()][-1] == (cat, backend)
    assert [r.reason for r in posthog.rejected()].count("forbidden") == 1


def test_an_email_key_from_a_page_is_a_claim_never_a_move(
    posthog: PostHog, signup: ActivityType, hub: Hub
) -> None:
    """Ortto's str::email in a page's event names the visitor: it sets the email of the
    visitor's contact when no one has it, and is only a claim when another contact has it;
    the activity stays the visitor's (a server's key may move it: docs/activity-fields.md)."""
    owner = hub.contacts.create_anonymous().contact
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == owner)
            .values(email="owner@example.com", email_key="owner@example.com")
        )
    page = {"Origin": ORIGIN}
    for distinct_id, email in (
        ("visitor-1", "owner@example.com"),
        ("visitor-2", "new@example.com"),
    ):
        properties = {"token": posthog.publishable, "plan": "pro", "str::email": email}
        answer = posthog.post(
            "/e/", [event(distinct_id=distinct_id, properties=properties)], headers=page
        )
        assert answer.json() == {"status": 1}, answer.text
    first, second = (posthog.contact_of("posthog_anon", d) for d in ("visitor-1", "visitor-2"))
    stored = {a.contact_id: a for a in posthog.activities()}
    assert set(stored) == {first, second}
    assert stored[first].fields == {"plan": "pro"}
    claimant = posthog.contact(first)
    assert (claimant.email, claimant.attributes["claimed_email"]) == (None, "owner@example.com")
    assert posthog.contact(second).email == "new@example.com"
    assert posthog.merges() == []


def test_pages_log_client_side_types_only(
    posthog: PostHog, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Refund", code_name="refund")
    body = [event("refund", properties={"token": posthog.publishable})]
    assert posthog.post("/e/", body, headers={"Origin": ORIGIN}).json() == {"status": 1}
    [rejected] = posthog.rejected()
    assert (rejected.reason, rejected.status) == ("activity_type_not_found", 404)


def test_pages_keep_to_the_types_rate_limits(
    posthog: PostHog, make_type: Callable[..., ActivityType]
) -> None:
    make_type(
        name="Tick",
        code_name="tick",
        client_side=True,
        rate_limits={"per_contact": {"limit": 2, "window_seconds": 60}, "per_ip": None},
    )
    body = [event("tick", properties={"token": posthog.publishable}) for _ in range(3)]
    assert posthog.post("/e/", body, headers={"Origin": ORIGIN}).json() == {"status": 1}
    assert len(posthog.activities()) == 2
    assert [r.reason for r in posthog.rejected()] == ["rate_limited"]


@pytest.mark.parametrize(
    ("origin", "referer"),
    [("https://evil.example", None), (None, None), (None, "https://evil.example/page")],
)
def test_a_page_of_another_origin_is_refused(
    posthog: PostHog, signup: ActivityType, origin: str | None, referer: str | None
) -> None:
    headers = {k: v for k, v in (("Origin", origin), ("Referer", referer)) if v is not None}
    body = [event(properties={"token": posthog.publishable})]
    posthog_error(posthog.post("/e/", body, headers=headers), 403, "forbidden")
    assert posthog.activities() == []


def test_a_tracking_key_from_a_page_is_refused(posthog: PostHog, signup: ActivityType) -> None:
    body = {"api_key": posthog.tracking, "batch": [event()]}
    answer = posthog.post("/batch/", body, headers={"Origin": ORIGIN})
    assert "publishable" in posthog_error(answer, 403, "forbidden")["detail"]
    assert posthog.activities() == []


def test_a_page_needs_the_tracking_consent_when_the_channel_has_one(
    hub: Hub,
    client: TestClient,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    signup: ActivityType,
) -> None:
    hub.consents.create(
        msgspec_consent("tracking", {"en": {"short_text": "Track?", "full_text": "<p>Track?</p>"}})
    )
    channel = make_channel(kind="website", allowed_origins=[ORIGIN], tracking_consent="tracking")
    key = make_key("publishable", channel.id).key
    collector = PostHog(client, hub, channel, "", key)
    body = [event(properties={"token": key})]
    assert collector.post("/e/", body, headers={"Origin": ORIGIN}).json() == {"status": 1}
    [rejected] = collector.rejected()
    assert (rejected.reason, rejected.status) == ("consent_required", 403)


def msgspec_consent(code: str, texts: dict[str, dict[str, str]]) -> ConsentCreate:
    return msgspec.convert({"code_name": code, "display_name": code, "texts": texts}, ConsentCreate)


# -- what else posthog-js asks for ---------------------------------------------------------------


def test_flags_and_config_answer_that_nothing_is_switched_on(posthog: PostHog) -> None:
    for path in ("/flags/?v=2&config=true", "/flags", "/decide/?v=3", "/decide"):
        answer = posthog.client.post(path, content=b"{}", headers={"Origin": ORIGIN})
        assert answer.status_code == 200, path
        assert answer.json()["featureFlags"] == {}
        assert answer.json()["flags"] == {}
        assert answer.headers["access-control-allow-origin"] == ORIGIN
    config = posthog.client.get(f"/array/{posthog.publishable}/config")
    assert config.json()["token"] == posthog.publishable
    assert config.json()["sessionRecording"] is False
    script = posthog.client.get(f"/array/{posthog.publishable}/config.js")
    assert script.headers["content-type"] == "application/javascript"
    assert script.text.startswith("(function(){window._POSTHOG_REMOTE_CONFIG")
    assert posthog.client.get("/array/a%22b/config").status_code == 404


def test_a_preflight_from_an_allowed_origin(posthog: PostHog) -> None:
    answer = posthog.client.options(
        "/e/",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    refused = posthog.client.options("/e/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_an_unknown_event_replays_once_an_alias_names_it(
    posthog: PostHog,
    make_type: Callable[..., ActivityType],
    client: TestClient,
    admin_headers: dict[str, str],
) -> None:
    posthog.send(event("trial started", properties={"plan": "pro"}))
    [rejected] = posthog.rejected()
    make_type(
        name="Trial",
        code_name="trial",
        aliases=["trial started"],
        fields=[{"name": "plan", "type": "text"}],
    )
    answer = client.post(f"/api/rejected-activities/{rejected.id}/replay", headers=admin_headers)
    assert answer.json()["stored"] == 1, answer.text
    [stored] = posthog.activities()
    assert (stored.type, stored.fields) == ("trial", {"plan": "pro"})


def test_more_events_than_a_request_may_hold_is_413(posthog: PostHog) -> None:
    events = [event(distinct_id=f"d{n}") for n in range(1001)]
    answer = posthog.post("/batch/", {"api_key": posthog.tracking, "batch": events})
    posthog_error(answer, 413, "payload_too_large")
    assert posthog.count(contacts) == 0


@contextlib.contextmanager
def page_collector(settings: Settings) -> Iterator[PostHog]:
    """PostHog's calls from a page of a website channel, with its publishable key, on a hub
    of ``settings``."""
    hub = Hub(settings, Store(make_engine(settings)))
    try:
        channel = hub.channels.create(
            ChannelCreate(name="Shop", kind="website", allowed_origins=[ORIGIN])
        )
        key = hub.keys.create(KeyCreate(access="publishable", channel=channel.id)).key
        with TestClient(create_app(settings, hub=hub)) as client:
            yield PostHog(client, hub, channel, "", key)
    finally:
        hub.close()


def page_views(collector: PostHog, *people: str, path: str = "/batch/") -> Any:
    """One request of a page view by each of ``people`` (distinct ids)."""
    properties = {"token": collector.publishable, "$current_url": "https://shop.example/"}
    body = [event("$pageview", distinct_id=person, properties=properties) for person in people]
    return collector.post(path, body, headers={"Origin": ORIGIN})


def test_pages_create_contacts_within_the_hourly_limit_of_their_address(
    make_settings: Callable[..., Settings],
) -> None:
    with page_collector(make_settings(new_contacts_per_ip_per_hour=2)) as collector:
        people = ("p1", "p1", "p2", "p3", "p1")
        answers = [page_views(collector, person, path="/e/") for person in people]
        # p1 and p2 are new; p1 again creates nothing; p3 would be a third new contact: its
        # event is kept as rejected, while p1's still count.
        assert [a.status_code for a in answers] == [200] * 5
        assert collector.count(contacts) == 2
        assert len(collector.activities()) == 4
        [rejected] = collector.rejected()
        assert (rejected.reason, rejected.status, rejected.contact_id) == (
            "rate_limited",
            429,
            None,
        )


def test_one_request_creates_no_more_contacts_than_the_limit_leaves(
    make_settings: Callable[..., Settings],
) -> None:
    """The limit counts contacts, not requests: a batch of events of new ids creates as many
    contacts as the address has left in the hour, and keeps the rest as rejected."""
    with page_collector(make_settings(new_contacts_per_ip_per_hour=5)) as collector:
        # Three new people, one of them twice: three contacts, two left this hour.
        assert page_views(collector, "a", "b", "a", "c").status_code == 200
        assert collector.count(contacts) == 3
        # Five new people: two are created, three kept as rejected; "a" is known.
        assert page_views(collector, "d", "e", "f", "g", "h", "a").status_code == 200
        assert collector.count(contacts) == 5
        # None left: a new person's event is kept, a known one's is stored.
        assert page_views(collector, "i", "b").status_code == 200
        assert collector.count(contacts) == 5
        assert len(collector.activities()) == 4 + 3 + 1
        rejected = collector.rejected()
        assert len(rejected) == 4
        assert {(r.reason, r.status) for r in rejected} == {("rate_limited", 429)}


# -- erased contacts -------------------------------------------------------------------------------


def test_events_naming_an_erased_contact_are_refused_and_stored_nowhere(
    posthog: PostHog, signup: ActivityType, hub: Hub
) -> None:
    posthog.send({**event(distinct_id="gone-1"), "$set": {"email": "gone@example.com"}})
    contact = posthog.contact_of("posthog_anon", "gone-1")
    hub.erasure.erase(contact, Actor("key", None))
    stored = len(posthog.activities())
    rejected = len(posthog.rejected())
    for sent in (
        event(distinct_id="gone-1"),
        {**event(distinct_id="someone-new"), "$set": {"email": "Gone@Example.com "}},
    ):
        answer = posthog.post("/batch/", {"api_key": posthog.tracking, "batch": [sent]})
        posthog_error(answer, 403, "contact_erased")
    # Beside an event of someone else, the erased one's is dropped and the other stored.
    posthog.send(event(distinct_id="gone-1"), event(distinct_id="still-here"))
    assert len(posthog.activities()) == stored + 1
    assert len(posthog.rejected()) == rejected


def test_events_that_cannot_be_mapped_naming_an_erased_contact_are_stored_nowhere(
    posthog: PostHog, signup: ActivityType, hub: Hub
) -> None:
    """An event that failed its mapping for another reason (a timestamp that is not one, no
    name, no distinct id) was kept as rejected with the erased person's ids and email in its
    payload. It names them all the same, and is dropped."""
    posthog.send({**event(distinct_id="gone-2"), "$set": {"email": "gone2@example.com"}})
    hub.erasure.erase(posthog.contact_of("posthog_anon", "gone-2"), Actor("key", None))
    hub.catalog.invalidate()
    rejected = len(posthog.rejected())
    no_name = {k: v for k, v in event(distinct_id="gone-2").items() if k != "event"}
    no_id = {k: v for k, v in event(distinct_id="x").items() if k != "distinct_id"}
    for sent in (
        {**event(distinct_id="gone-2"), "timestamp": "yesterday"},
        no_name,
        {**no_id, "$set": {"email": "Gone2@Example.com"}},
        {
            **event(distinct_id="x" * 201),
            "properties": {"$set_once": {"email": "gone2@example.com"}},
        },
        {"event": "$create_alias", "properties": {"distinct_id": "gone-2"}},
        {
            **event(distinct_id="new-one"),
            "event": "$identify",
            "timestamp": "no",
            "properties": {"$anon_distinct_id": "gone-2"},
        },
    ):
        answer = posthog.post("/batch/", {"api_key": posthog.tracking, "batch": [sent]})
        posthog_error(answer, 403, "contact_erased")
    assert len(posthog.rejected()) == rejected
    # One that names someone else is still kept as rejected, with its reason.
    posthog.send({**event(distinct_id="still-here"), "timestamp": "yesterday"})
    [kept] = posthog.rejected()[rejected:]
    assert (kept.reason, kept.field) == ("invalid_field", "timestamp")
