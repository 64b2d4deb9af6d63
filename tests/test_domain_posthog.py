"""PostHog's capture format mapped onto Waypost, without I/O: waypost/domain/posthog.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

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
