"""Snowplow's tracker protocol mapped onto Waypost, without I/O: waypost/domain/snowplow.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from waypost.domain.collected import Unread
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


def test_an_event_holding_a_number_out_of_range_is_refused_alone() -> None:
    """A number no reader takes refused the whole body (400): only its event is refused,
    kept as sent, naming its person, and the others of the body are read as usual."""
    unread = b'{"e": "se", "aid": "k", "duid": "d", "se_ca": "c", "se_ac": "a", "se_va": 1e400}'
    good = {"e": "pv", "aid": "k", "duid": "d2"}
    raw = b'{"schema": "%s", "data": [%s, %s]}' % (
        PAYLOAD.encode(),
        json.dumps(good).encode(),
        unread,
    )
    events = events_of_post(raw)
    assert events[0] == good
    value = {"e": "se", "aid": "k", "duid": "d", "se_ca": "c", "se_ac": "a", "se_va": None}
    assert events[1] == Unread(unread, value, "se_va")
    assert application_id(events) == "k"
    mapped = map_event(events[1], NOW)
    assert mapped is not None
    assert (mapped.payload, mapped.anonymous, mapped.label) == (unread, "d", "c/a")
    assert mapped.error is not None
    assert (mapped.error.code, mapped.error.field) == ("invalid_field", "se_va")
    assert "out of range" in str(mapped.error)
    # A page ping is ignored, whatever it holds.
    ping = b'{"schema": "%s", "data": [{"e": "pp", "duid": "d", "pp_mix": 1e400}]}'
    assert map_event(events_of_post(ping % PAYLOAD.encode())[0], NOW) is None
    # Not payload_data, not events, and not JSON, as before.
    for bad in (
        b"1e400",
        b'{"schema": "%s", "data": 1e400}' % PAYLOAD.encode(),
        b'{"schema": "%s", "data": [1e400]}' % PAYLOAD.encode(),
        b'{"schema": "%s", "data": [{"e": 1e400}, }' % PAYLOAD.encode(),
        b'{"schema": 1e400, "data": [{"e": "pv"}]}',
    ):
        with pytest.raises(ApiError) as caught:
            events_of_post(bad)
        assert caught.value.status == 400


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        (
            {
                "e": "ue",
                "ue_pr": '{"data": {"schema": "iglu:a/b/jsonschema/1-0-0", "data": {"n": 1e400}}}',
            },
            "ue_pr.data.data.n",
        ),
        (
            {
                "e": "ue",
                "ue_px": _b64(
                    '{"data": {"schema": "iglu:a/b/jsonschema/1-0-0", "data": '
                    '{"n": ' + "9" * 5000 + "}}}"
                ),
            },
            "ue_px.data.data.n",
        ),
        ({"e": "pv", "co": '{"data": [{"data": {"n": -1e400}}]}'}, "co.data[0].data.n"),
        ({"e": "pv", "cx": _b64('{"data": [{"data": {"n": 1e400}}]}')}, "cx.data[0].data.n"),
        ({"e": "pv", "cx": _b64("[1e400]")}, "cx[0]"),
        ({"e": "pv", "co": "1e400"}, "co"),
    ],
)
def test_a_number_out_of_range_in_a_parameters_json_refuses_its_event(
    parameters: dict[str, str], field: str
) -> None:
    """JSON in a parameter (base64's read, for ue_px and cx) holding a number no reader
    takes: the event is kept as sent, the field the number's place, naming its person so
    that one naming an erased person is dropped."""
    event = {"uid": "u", "duid": "d", "nuid": "n", **parameters}
    mapped = map_event(event, NOW)
    assert mapped is not None
    assert mapped.error is not None
    assert (mapped.error.code, mapped.error.field) == ("invalid_field", field)
    assert "out of range" in str(mapped.error)
    assert (mapped.user, mapped.anonymous, mapped.others) == ("u", "d", (("nuid", "n"),))
    assert json.loads(mapped.payload) == event


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
        # Not JSON, whatever number out of range it holds before it breaks off.
        ({"e": "pv", "duid": "d", "co": '[1e400, "open'}, "co"),
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


@pytest.mark.parametrize(
    "event",
    [
        {"e": "tr", "uid": "u", "duid": "d", "tnuid": "n"},
        {"e": "pv", "uid": "u", "duid": "d", "tnuid": "n", "dtm": "yesterday"},
        {"e": "ue", "uid": "u", "duid": "d", "tnuid": "n", "ue_px": "%%%"},
        {"uid": "u", "duid": "d", "tnuid": "n"},
        {"e": "pv", "uid": "u", "duid": "d", "tnuid": "n", "page": "\u0000"},
    ],
    ids=["kind", "dtm", "base64", "no-kind", "nul"],
)
def test_an_event_that_cannot_be_mapped_names_its_ids_all_the_same(event: dict[str, Any]) -> None:
    # Kept as rejected, but naming its person: one naming an erased person is dropped.
    mapped = map_event(event, NOW)
    assert mapped is not None
    assert mapped.error is not None
    assert (mapped.user, mapped.anonymous, mapped.others) == ("u", "d", (("nuid", "n"),))
    assert mapped.activity is None
    # An id too long to be anyone's hides none of the others.
    mapped = map_event({**event, "uid": "u" * 201}, NOW)
    assert mapped is not None
    assert (mapped.user, mapped.anonymous) == (None, "d")
