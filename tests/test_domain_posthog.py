"""PostHog's capture format mapped onto Waypost, without I/O: waypost/domain/posthog.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from waypost.domain.collected import Unread
from waypost.domain.posthog import body_of, decode_text, map_event, occurred_at
from waypost.errors import ApiError

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_the_three_body_shapes() -> None:
    one = {"event": "e", "distinct_id": "d", "api_key": "k"}
    assert body_of(one).events == [one]
    assert body_of(one).token == "k"
    listed = [{"event": "e", "properties": {"token": "k"}}]
    assert body_of(listed).token == "k"
    batch = body_of({"batch": [{"event": "e"}], "api_key": "k", "sent_at": "2026-01-01T00:00Z"})
    assert (batch.token, batch.sent_at, len(batch.events)) == ("k", "2026-01-01T00:00Z", 1)
    assert body_of({"batch": [{"event": "e"}], "token": "t"}).token == "t"


@pytest.mark.parametrize(
    "document",
    [5, "text", [], {"batch": []}, {"batch": {}}, [1], [{"event": "e"}, "x"]],
)
def test_bodies_without_events_are_400(document: Any) -> None:
    with pytest.raises(ApiError) as caught:
        body_of(document)
    assert caught.value.status == 400


def test_events_of_different_keys_are_400() -> None:
    with pytest.raises(ApiError, match="different project keys"):
        body_of({"api_key": "a", "batch": [{"event": "e", "properties": {"token": "b"}}]})


def test_form_bodies() -> None:
    raw = json.dumps([{"event": "e"}]).encode()
    encoded = base64.b64encode(raw).decode()
    assert decode_text(f"data={encoded}".encode(), "base64", form=True) == [{"event": "e"}]
    # Unpadded, URL-safe base64 is what some clients send.
    assert decode_text(f"data={encoded.rstrip('=')}".encode(), None, form=True) == [{"event": "e"}]
    assert decode_text(b"data=" + raw, None, form=False) == [{"event": "e"}]
    for bad in (b"nothing=1", b"data=%%%", b"data=!!!!"):
        with pytest.raises(ApiError):
            decode_text(bad, None, form=True)


def test_an_event_holding_a_number_out_of_range_is_refused_alone() -> None:
    """A number no reader takes refused the whole body (400): only its event is refused,
    kept as sent, and the others of the body are read as usual."""
    unread = b'{"event": "e", "distinct_id": "d", "properties": {"n": 1e400}}'
    good = {"event": "e", "distinct_id": "d2"}
    raw = b'{"api_key": "k", "batch": [' + json.dumps(good).encode() + b", " + unread + b"]}"
    body = body_of(decode_text(raw, None, form=False))
    assert body.token == "k"
    assert body.events[0] == good
    assert body.events[1] == Unread(
        unread, {"event": "e", "distinct_id": "d", "properties": {"n": None}}, "properties.n"
    )
    mapped = map_event(body.events[1], None, NOW)
    assert mapped.payload == unread
    assert mapped.error is not None
    assert (mapped.error.code, mapped.error.field) == ("invalid_field", "properties.n")
    assert "out of range" in str(mapped.error)
    # Its ids and traits are read all the same, so that one naming an erased person is dropped.
    assert (mapped.person, mapped.label) == ("d", "e")
    # One event, a list of events, and a key in the event that cannot be read as a whole.
    one = b'{"event": "e", "distinct_id": "d", "api_key": "k", "properties": {"n": -1e400}}'
    [alone] = body_of(decode_text(one, None, form=False)).events
    assert isinstance(alone, Unread)
    assert body_of(decode_text(one, None, form=False)).token == "k"
    listed = b"[" + one + b", " + json.dumps(good).encode() + b"]"
    assert body_of(decode_text(listed, None, form=False)).events[1] == good
    # Not an event, and not JSON, as before.
    for bad in (b"[1e400]", b"1e400", b'{"batch": 1e400}', b'{"batch": [1e400, }'):
        with pytest.raises(ApiError) as caught:
            body_of(decode_text(bad, None, form=False))
        assert (caught.value.status, caught.value.detail.code) == (400, "invalid_json")


def test_a_custom_event_keeps_its_own_properties_as_fields() -> None:
    mapped = map_event(
        {
            "event": "Signed up",
            "distinct_id": 42,
            "uuid": "u-1",
            "properties": {
                "plan": "pro",
                "$current_url": "https://a.example/x",
                "$lib": "web",
                "token": "k",
                "distinct_id": "42",
            },
        },
        None,
        NOW,
    )
    assert mapped.error is None
    assert (mapped.person, mapped.type_names) == ("42", ("Signed up",))
    assert mapped.activity == {
        "occurredAt": NOW.isoformat(),
        "id": "u-1",
        "url": "https://a.example/x",
        "fields": {"plan": "pro"},
    }


def test_identify_names_the_user_and_the_anonymous_id() -> None:
    mapped = map_event(
        {
            "event": "$identify",
            "distinct_id": "user",
            "properties": {"$anon_distinct_id": "anon", "$set": {"email": "a@b.example"}},
            "$set": {"first_name": "Ann", "$browser": "x"},
        },
        None,
        NOW,
    )
    assert (mapped.user, mapped.anonymous, mapped.identify) == ("user", "anon", True)
    assert mapped.traits == {"email": "a@b.example", "first_name": "Ann"}
    assert mapped.activity is None


def test_alias_and_set() -> None:
    alias = map_event(
        {"event": "$create_alias", "distinct_id": "old", "properties": {"alias": "new"}}, None, NOW
    )
    assert alias.alias == ("old", "new")
    once = map_event({"event": "$set_once", "distinct_id": "d", "$set_once": {"x": 1}}, None, NOW)
    assert (once.person, once.traits_once, once.activity) == ("d", {"x": 1}, None)


@pytest.mark.parametrize(
    ("event", "code", "field"),
    [
        ({"distinct_id": "d"}, "missing_field", "event"),
        ({"event": "e"}, "missing_field", "distinct_id"),
        ({"event": "e", "distinct_id": "d" * 201}, "invalid_field", "distinct_id"),
        ({"event": "$create_alias", "distinct_id": "d"}, "missing_field", "alias"),
        (
            {"event": "e", "distinct_id": "d", "timestamp": "yesterday"},
            "invalid_field",
            "timestamp",
        ),
        ({"event": "e", "distinct_id": "d\u0000"}, "invalid_field", None),
    ],
)
def test_what_cannot_map_says_why(event: dict[str, Any], code: str, field: str | None) -> None:
    mapped = map_event(event, None, NOW)
    assert mapped.error is not None
    assert (mapped.error.code, mapped.error.field) == (code, field)
    assert json.loads(mapped.payload) == event


def test_occurred_at_as_posthog_reckons_it() -> None:
    # The client's clock runs an hour behind: timestamp - sent_at is what happened before now.
    event = {"timestamp": "2026-03-01T10:59:00Z"}
    assert occurred_at(event, "2026-03-01T11:00:00+00:00", NOW) == NOW - dt.timedelta(minutes=1)
    ignoring = {**event, "properties": {"$ignore_sent_at": True}}
    assert occurred_at(ignoring, "2026-03-01T11:00:00Z", NOW) == NOW - dt.timedelta(
        hours=1, minutes=1
    )
    assert occurred_at({"offset": 1500}, None, NOW) == NOW - dt.timedelta(seconds=1.5)
    # Without an offset a time is UTC, as PostHog reads it.
    assert occurred_at({"timestamp": "2026-03-01T10:00:00"}, None, NOW) == NOW - dt.timedelta(
        hours=2
    )
    assert occurred_at({}, None, NOW) == NOW


@pytest.mark.parametrize(
    "event",
    [
        {"event": "signed up", "distinct_id": "d", "timestamp": "yesterday"},
        {"distinct_id": "d"},
        {"event": "signed up", "distinct_id": "d", "properties": {"x": "\u0000"}},
        {"event": "$create_alias", "distinct_id": "d"},
    ],
    ids=["timestamp", "no-name", "nul", "alias"],
)
def test_an_event_that_cannot_be_mapped_names_its_ids_and_emails(event: dict[str, Any]) -> None:
    # Kept as rejected, but naming its person: one naming an erased person is dropped.
    sent = {
        **event,
        "$set": {"email": "top@example.com"},
        "properties": {
            **event.get("properties", {}),
            "$anon_distinct_id": "a",
            "$set_once": {"email": "once@example.com"},
        },
    }
    mapped = map_event(sent, None, NOW)
    assert mapped.error is not None
    assert mapped.ids == ("d", "a")
    assert set(mapped.emails) == {"top@example.com", "once@example.com"}
    assert (mapped.activity, mapped.traits, mapped.traits_once) == (None, None, None)


def test_an_event_without_a_distinct_id_still_names_its_email_and_alias() -> None:
    mapped = map_event(
        {"event": "x", "properties": {"alias": "al", "$set": {"email": "e@example.com"}}},
        None,
        NOW,
    )
    assert mapped.error is not None
    assert mapped.error.field == "distinct_id"
    assert (mapped.ids, mapped.emails) == (("al",), ("e@example.com",))
