"""Snowplow's tracker protocol mapped onto Waypost: events to activities, user ids to external
ids (docs/collectors.md).

Pure functions; the HTTP side is waypost/transports/snowplow.py. A ``POST .../tp2`` body is the
``payload_data`` self-describing JSON (``{"schema", "data": [event, ...]}``); ``GET /i`` is
one event in the query string. Each event is a flat object of short names. Mapping:

- ``aid`` (the application id) carries the key; ``eid`` is the activity's idempotency key;
- ``e=pv`` is a page visit (``url``, ``page`` as its value, ``refr``); ``e=pp`` page pings are
  ignored (neither stored nor kept as rejected); ``e=se`` a structured event, of the type whose
  alias is ``category/action``; ``e=ue`` a self-describing event (``ue_pr``, or ``ue_px`` in
  base64url), of the type whose alias is the event's schema URI, matched within a major
  version (``iglu:com.acme/loan_calc/jsonschema/1-0-2`` finds an alias written with that URI,
  or ``...-1-0-*``, or ``...-1-*-*``), its data as the activity's fields;
- contexts (``co``, or ``cx`` in base64url) are kept with the activity as a flag;
- ``uid`` is the user's id, ``duid`` the browser's (merged into the user's when an event
  carries both, as a Segment identify does), ``nuid`` / ``tnuid`` the network id;
- ``dtm`` is corrected by ``stm`` for the device's clock (``dtm + (now - stm)``), as
  Snowplow's enrichment does; ``ttm`` is taken as it is.

An event holding a number no reader takes (``1e400``), in the body or in the JSON of a
parameter (``ue_pr``, ``ue_px``, ``co``, ``cx``), is kept as rejected, as sent, naming its
person; the other events of its request are mapped as usual. Any event that cannot be mapped
(``e=tr``, a ``dtm`` that is not one, base64 that is not) names its ids all the same, so that
one naming an erased person is dropped.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from waypost.domain.collected import (
    MAX_CLIENT_ID,
    Collected,
    OutOfRange,
    Unread,
    encode_payload,
    external_id,
    named,
    read_events,
    readable,
    rejected,
)
from waypost.domain.field_values import is_http_url
from waypost.domain.segment import MappingError
from waypost.errors import MAX_JSON_DEPTH, ApiError, check_depth, holds_nul

PAYLOAD_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-"
MAX_URL = 2048
MAX_VALUE = 2000
# Query parameters of one GET /i event: Snowplow's protocol has about a hundred.
MAX_PARAMETERS = 300
_IGLU = re.compile(
    r"iglu:([A-Za-z0-9_.-]{1,128})/([A-Za-z0-9_.-]{1,128})/([A-Za-z0-9_.-]{1,32})/"
    r"([0-9]{1,6})-([0-9]{1,6})-([0-9]{1,6})"
)


def bad_body(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


def events_of_post(raw: bytes) -> list[dict[str, Any] | Unread]:
    """The events of a ``tp2`` body; ApiError 400 when it is not ``payload_data``. An event
    holding a number no reader takes is an :class:`Unread` (kept as rejected)."""
    check_depth(raw)
    try:
        document = read_events(raw, "data")
    except msgspec.DecodeError as exc:
        raise bad_body(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise bad_body("The body is nested too deeply.") from None
    if not isinstance(document, dict):
        raise bad_body("The body must be the payload_data JSON: {schema, data: [...]}.")
    schema = document.get("schema")
    if not isinstance(schema, str) or not schema.startswith(PAYLOAD_SCHEMA):
        raise ApiError(
            400,
            "invalid_field",
            f"schema must be {PAYLOAD_SCHEMA}x-y (Snowplow's payload_data).",
            "schema",
        )
    events = document.get("data")
    if not isinstance(events, list) or not events:
        raise ApiError(400, "invalid_field", "data must be a list of events.", "data")
    if not all(isinstance(event, dict | Unread) for event in events):
        raise ApiError(400, "invalid_field", "Each event must be a JSON object.", "data")
    return events


def events_of_query(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The one event of a ``GET /i`` query string (first value of each name)."""
    if len(pairs) > MAX_PARAMETERS:
        raise ApiError(400, "invalid_field", f"An event has at most {MAX_PARAMETERS} parameters.")
    event: dict[str, Any] = {}
    for name, value in pairs:
        event.setdefault(name, value)
    if "e" not in event:
        raise ApiError(400, "missing_field", "An event needs e, its kind.", "e")
    return [event]


def application_id(events: Sequence[dict[str, Any] | Unread]) -> str | None:
    """The one ``aid`` of the events (the key); ApiError 400 when they name different ones."""
    found = {_text(_value(event).get("aid")) for event in events} - {None}
    if len(found) > 1:
        raise ApiError(400, "invalid_field", "The events name different keys in aid.", "aid")
    return next(iter(found), None)


def _value(event: dict[str, Any] | Unread) -> dict[str, Any]:
    return event.value if isinstance(event, Unread) else event


def _text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip() or None


def map_event(event: dict[str, Any] | Unread, received_at: dt.datetime) -> Collected | None:
    """What one event asks for; None for a page ping (ignored); an event that cannot be mapped
    is kept with its reason. One holding a number no reader takes is kept as sent, naming the
    ids the rest of it gives (one naming an erased person is dropped, as any such event is)."""
    if isinstance(event, Unread):
        mapped = map_event(event.value, received_at)
        return None if mapped is None else event.kept(mapped)
    kind = _text(event.get("e"))
    payload = encode_payload(event)
    try:
        if holds_nul(payload):
            raise MappingError("Text in an event cannot hold the NUL character (\\u0000).")
        if kind == "pp":
            return None
        return _map(event, kind, payload, received_at)
    except MappingError as exc:
        # Kept with the ids it names, read on their own: one naming an erased person is
        # dropped, never kept with their ids.
        return rejected(event, exc, _label(event, kind), names_of(event))


def names_of(event: dict[str, Any]) -> Collected:
    """The ids an event names, each read on its own (see ``named``): ``uid``, ``duid``, and
    the network ids ``nuid`` and ``tnuid``."""
    return named(
        user=event.get("uid"),
        anonymous=event.get("duid"),
        others=[("nuid", event.get("nuid")), ("nuid", event.get("tnuid"))],
    )


def _label(event: dict[str, Any], kind: str | None) -> str | None:
    if kind == "se":
        return f"{_text(event.get('se_ca')) or ''}/{_text(event.get('se_ac')) or ''}"
    return kind


def _map(event: dict[str, Any], kind: str | None, payload: bytes, now: dt.datetime) -> Collected:
    user = external_id(event.get("uid"), "uid")
    browser = external_id(event.get("duid"), "duid")
    network = external_id(event.get("nuid") or event.get("tnuid"), "nuid")
    collected = Collected(
        payload,
        label=_label(event, kind),
        user=user,
        anonymous=browser,
        others=(("nuid", network),) if network else (),
        identify=user is not None and browser is not None,
    )
    if user is None and browser is None and network is None:
        raise MappingError("An event needs uid, duid or nuid to name its person.", field="duid")
    try:
        _fill(collected, event, kind, now)
    except OutOfRange as exc:
        # JSON in a parameter holds a number no reader takes: kept as rejected, as sent,
        # naming its person (one naming an erased person is dropped).
        collected.error = exc
    return collected


def _fill(collected: Collected, event: dict[str, Any], kind: str | None, now: dt.datetime) -> None:
    """The activity of an event whose person is known, its type's names and its flag."""
    activity: dict[str, Any] = {"occurredAt": occurred_at(event, now).isoformat()}
    client_id = _text(event.get("eid"))
    if client_id is not None:
        activity["id"] = client_id[:MAX_CLIENT_ID]
    url = _url(event.get("url"))
    if url is not None:
        activity["url"] = url
    referrer = _url(event.get("refr"))
    if referrer is not None:
        activity["referrer"] = referrer
    if kind == "pv":
        title = _text(event.get("page"))
        if title is not None:
            activity["value"] = title[:MAX_VALUE]
        collected.type_names = ("pagevisit",)
    elif kind == "se":
        category, action = _text(event.get("se_ca")), _text(event.get("se_ac"))
        if category is None or action is None:
            raise MappingError(
                "A structured event needs se_ca and se_ac.", "missing_field", "se_ac"
            )
        label = _text(event.get("se_la"))
        if label is not None:
            activity["value"] = label[:MAX_VALUE]
        collected.type_names = (f"{category}/{action}",)
        optional = {"label": label, "property": event.get("se_pr"), "value": event.get("se_va")}
        collected.optional_fields = {k: v for k, v in optional.items() if v not in (None, "")}
    elif kind == "ue":
        schema, data = self_describing(event)
        collected.type_names = schema_aliases(schema)
        if data:
            activity["fields"] = data
    else:
        raise MappingError(
            f"The event kind e={kind!r} is not supported; Waypost takes pv, pp, se and ue.",
            field="e",
        )
    contexts = _contexts(event)
    if contexts:
        collected.flag = {
            "field": "contexts",
            "code": "snowplow_contexts",
            "message": "The event's contexts, kept as sent.",
            "value": contexts,
        }
    collected.activity = activity


def self_describing(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The schema URI and data of a ``ue`` event's ``unstruct_event`` envelope."""
    envelope = _json_parameter(event, "ue_pr", "ue_px")
    if envelope is None:
        raise MappingError(
            "A self-describing event needs ue_pr or ue_px.", "missing_field", "ue_pr"
        )
    inner = envelope.get("data")
    if not isinstance(inner, dict):
        raise MappingError("ue_pr's data must be {schema, data}.", field="ue_pr")
    schema, data = inner.get("schema"), inner.get("data", {})
    if not isinstance(schema, str) or _IGLU.fullmatch(schema) is None:
        raise MappingError(
            "The event's schema must be an Iglu URI: iglu:vendor/name/format/1-0-0.",
            field="ue_pr",
        )
    if not isinstance(data, dict):
        raise MappingError("The event's data must be an object.", field="ue_pr")
    return schema, data


def schema_aliases(schema: str) -> tuple[str, ...]:
    """The aliases that name the type of events of ``schema``, most exact first: the URI,
    then any revision and addition of its model (``1-0-*``), then any of its major version
    (``1-*-*``)."""
    match = _IGLU.fullmatch(schema)
    if match is None:
        return (schema,)
    vendor, name, form, model, revision, _ = match.groups()
    base = f"iglu:{vendor}/{name}/{form}/{model}"
    return (schema, f"{base}-{revision}-*", f"{base}-*-*")


def _contexts(event: dict[str, Any]) -> list[Any] | None:
    envelope = _json_parameter(event, "co", "cx")
    if envelope is None:
        return None
    contexts = envelope.get("data")
    if not isinstance(contexts, list):
        raise MappingError("co's data must be a list of contexts.", field="co")
    return contexts or None


def _json_parameter(event: dict[str, Any], plain: str, encoded: str) -> dict[str, Any] | None:
    value = event.get(plain)
    name = plain
    if value is None and event.get(encoded) is not None:
        name = encoded
        text = event[encoded]
        if not isinstance(text, str):
            raise MappingError(f"{encoded} must be base64url text.", field=encoded)
        padded = text.strip().replace("+", "-").replace("/", "_")
        padded += "=" * (-len(padded) % 4)
        try:
            value = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        except (binascii.Error, UnicodeError, ValueError):
            raise MappingError(f"{encoded} is not base64url of JSON.", field=encoded) from None
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise MappingError(f"{name} must be JSON text.", field=name)
    raw = value.encode()
    try:
        # JSON inside a parameter: the body's own nesting limit never saw it.
        check_depth(raw)
    except ApiError:
        raise MappingError(
            f"{name} nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects.", field=name
        ) from None
    try:
        decoded, where = readable(raw)
    except (msgspec.DecodeError, RecursionError):
        raise MappingError(f"{name} is not valid JSON.", field=name) from None
    if where is not None:
        # The number's place inside the parameter's JSON (base64's read), as a field path.
        raise OutOfRange(name + where if where[:1] in ("", "[") else f"{name}.{where}")
    if not isinstance(decoded, dict):
        raise MappingError(f"{name} must be a JSON object.", field=name)
    if holds_nul(msgspec.json.encode(decoded)):
        raise MappingError(f"{name} cannot hold the NUL character (\\u0000).", field=name)
    return decoded


def _url(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_URL and is_http_url(value):
        return value
    return None


def occurred_at(event: dict[str, Any], received_at: dt.datetime) -> dt.datetime:
    """When it happened on the server's clock: ``ttm`` as given; else ``dtm`` moved by the
    device's skew, ``received_at - stm``, as Snowplow's enrichment does; else ``dtm``; else
    when it was received."""
    try:
        true = _millis(event.get("ttm"), "ttm")
        if true is not None:
            return true
        created, sent = _millis(event.get("dtm"), "dtm"), _millis(event.get("stm"), "stm")
        if created is not None and sent is not None:
            return created + (received_at - sent)
        return created or received_at
    except OverflowError:
        raise MappingError("dtm and stm are too far apart to correct.", field="dtm") from None


def _millis(value: object, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 15:
        raise MappingError(f"{name} must be milliseconds since 1970 as digits.", field=name)
    try:
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise MappingError(f"{name} is out of range.", field=name) from None
