"""Snowplow's tracker protocol mapped onto Waypost, without I/O: waypost/domain/snowplow.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from waypost.domain.snowplow import (
    application_id,
    events_of_post,
    events_of_query,
    map_event,
    occurred_at,
    schema_aliases,
)
from waypost.errors import ApiError

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PAYLOAD = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


# Contexts nested 900 deep, base64url as the browser tracker sends them.
DEEP_CONTEXTS = (
    base64.urlsafe_b64encode(('{"data": [' + "[" * 900 + "]" * 900 + "]}").encode())
    .decode()
    .rstrip("=")
)


def millis(when: dt.datetime) -> str:
    return str(int(when.timestamp() * 1000))


def test_schema_aliases_within_a_major_version() -> None:
    assert schema_aliases("iglu:com.acme/loan_calc/jsonschema/1-0-2") == (
        "iglu:com.acme/loan_calc/jsonschema/1-0-2",
        "iglu:com.acme/loan_calc/jsonschema/1-0-*",
        "iglu:com.acme/loan_calc/jsonschema/1-*-*",
    )
    assert schema_aliases("not a uri") == ("not a uri",)


def test_payload_data_and_query_events() -> None:
    body = json.dumps({"schema": PAYLOAD, "data": [{"e": "pv", "aid": "k"}]}).encode()
    events = events_of_post(body)
    assert application_id(events) == "k"
    assert events_of_query([("e", "pv"), ("aid", "k"), ("e", "se")]) == [{"e": "pv", "aid": "k"}]
    with pytest.raises(ApiError, match="different keys"):
        application_id([{"aid": "a"}, {"aid": "b"}])
    assert application_id([{"e": "pv"}]) is None


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"schema": "x", "data": []}',
        b'{"schema": "%s", "data": {}}' % PAYLOAD.encode(),
    ],
)
def test_bodies_that_are_not_payload_data_are_400(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        events_of_post(body)
    assert caught.value.status == 400


def test_a_page_view() -> None:
    mapped = map_event(
        {
            "e": "pv",
            "eid": "e1",
            "uid": "u",
            "duid": "d",
            "nuid": "n",
            "url": "https://a.example/",
            "page": "Home",
            "refr": "https://b.example/",
        },
        NOW,
    )
    assert mapped is not None
    assert (mapped.user, mapped.anonymous, mapped.others, mapped.identify) == (
        "u",
        "d",
        (("nuid", "n"),),
        True,
    )
    assert mapped.type_names == ("pagevisit",)
    assert mapped.activity == {
        "occurredAt": NOW.isoformat(),
        "id": "e1",
        "url": "https://a.example/",
        "referrer": "https://b.example/",
        "value": "Home",
    }


def test_page_pings_are_ignored() -> None:
    assert map_event({"e": "pp", "duid": "d"}, NOW) is None


def test_structured_and_self_describing_events() -> None:
    se = map_event({"e": "se", "duid": "d", "se_ca": "media", "se_ac": "play", "se_va": "3"}, NOW)
    assert se is not None
    assert (se.type_names, se.optional_fields) == (("media/play",), {"value": "3"})
    inner = {"schema": "iglu:com.acme/x/jsonschema/2-1-0", "data": {"a": 1}}
    envelope = json.dumps({"schema": "iglu:...unstruct_event", "data": inner})
    encoded = base64.urlsafe_b64encode(envelope.encode()).decode().rstrip("=")
    ue = map_event({"e": "ue", "duid": "d", "ue_px": encoded}, NOW)
    assert ue is not None
    assert ue.type_names[0] == "iglu:com.acme/x/jsonschema/2-1-0"
    assert ue.activity is not None
    assert ue.activity["fields"] == {"a": 1}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"e": "pv"}, "duid"),
        ({"e": "tr", "duid": "d"}, "e"),
        ({"e": "se", "duid": "d", "se_ca": "c"}, "se_ac"),
        ({"e": "ue", "duid": "d"}, "ue_pr"),
        ({"e": "ue", "duid": "d", "ue_pr": "[1]"}, "ue_pr"),
        ({"e": "pv", "duid": "d", "co": '{"data": {}}'}, "co"),
        ({"e": "pv", "duid": "d", "dtm": "-1"}, "dtm"),
        ({"e": "pv", "duid": "d", "dtm": "9" * 15}, "dtm"),
        ({"e": "pv", "uid": "u" * 201}, "uid"),
        # JSON in a parameter nests no deeper than a body may (contexts were kept with the
        # activity however deep, and reading it back failed past a thousand levels).
        ({"e": "pv", "duid": "d", "co": '{"data": [' + "[" * 70 + "]" * 70 + "]}"}, "co"),
        ({"e": "pv", "duid": "d", "cx": DEEP_CONTEXTS}, "cx"),
        ({"e": "ue", "duid": "d", "ue_pr": '{"data": ' + "[" * 900 + "]" * 900 + "}"}, "ue_pr"),
    ],
)
def test_what_cannot_map_says_why(event: dict[str, Any], field: str) -> None:
    mapped = map_event(event, NOW)
    assert mapped is not None
    assert mapped.error is not None
    assert mapped.error.field == field
    assert json.loads(mapped.payload) == event


def test_clock_correction_as_the_enrichment_does() -> None:
    device = NOW - dt.timedelta(hours=1)  # the device's clock is an hour behind
    event = {"dtm": millis(device - dt.timedelta(minutes=1)), "stm": millis(device)}
    assert occurred_at(event, NOW) == NOW - dt.timedelta(minutes=1)
    assert occurred_at({"dtm": millis(device)}, NOW) == device
    assert occurred_at({"ttm": millis(device), "dtm": millis(NOW)}, NOW) == device
    assert occurred_at({}, NOW) == NOW
