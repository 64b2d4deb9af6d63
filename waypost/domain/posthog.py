"""PostHog's capture format mapped onto Waypost: events to activities, person properties to
contact fields, distinct ids to external ids (docs/collectors.md).

Pure functions; the HTTP side is waypost/transports/posthog.py. A body is one event, a list of
events, or ``{"batch": [...], "api_key", "sent_at"}`` (what posthog-python and posthog-js
send); posthog-js may send it gzipped (``?compression=gzip-js``) or as a form whose ``data``
is base64 (``?compression=base64``). Mapping:

- ``$pageview`` is a page visit (``$current_url``, ``$referrer``, ``title``);
- ``$identify`` joins ``$anon_distinct_id`` to the identified ``distinct_id`` (merging the
  anonymous contact into the identified one, as a Segment identify does) and sets ``$set`` /
  ``$set_once``; ``$set`` and ``$set_once`` set contact fields; ``$create_alias`` says the
  event's ``distinct_id`` and ``alias`` are the same person;
- any other event is an activity of the type whose code name or alias is the event's name,
  with its properties (less PostHog's own ``$`` properties) as the activity's fields;
- ``uuid`` is the activity's idempotency key; ``timestamp`` is corrected for the client's clock
  by ``sent_at`` (or taken as ``offset`` milliseconds before the request), as PostHog does.

An event holding a number no reader takes (``1e400``) is kept as rejected, as sent; the other
events of its body are mapped as usual. Any event that cannot be mapped (no name, a
``timestamp`` that is not one) names its ids and emails all the same, so that one naming an
erased person is dropped.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any
from urllib.parse import parse_qs

import msgspec

from waypost.domain.collected import (
    MAX_CLIENT_ID,
    Collected,
    Unread,
    encode_payload,
    external_id,
    named,
    read_events,
    rejected,
)
from waypost.domain.field_values import is_http_url
from waypost.domain.segment import MappingError
from waypost.errors import ApiError, check_depth, holds_nul

MAX_URL = 2048
IDENTIFY = "$identify"
PAGEVIEW = "$pageview"
ALIAS = "$create_alias"
SET_EVENTS = ("$set", "$set_once")
# Properties every event carries that are not the event's own values.
ENVELOPE = frozenset({"token", "distinct_id", "api_key"})


class Body(msgspec.Struct):
    """What a request carries: the project key, when it was sent, and its events."""

    token: str | None
    sent_at: str | None
    events: list[dict[str, Any] | Unread]


def bad_body(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


def decode_text(raw: bytes, compression: str | None, form: bool) -> Any:
    """The JSON document of a (gunzipped) body: plain JSON, or a form whose ``data`` field
    is JSON or base64 of JSON (``compression=base64``, and what sendBeacon sends)."""
    if form or raw.startswith(b"data="):
        try:
            # Each byte as one character, percent-escapes too, so that encoding the value
            # to Latin-1 gives back the bytes sent (the JSON's UTF-8, which the decoder checks).
            fields = parse_qs(raw.decode("latin-1"), max_num_fields=20, encoding="latin-1")
        except ValueError:
            raise bad_body("A form body has a data field and a few others.") from None
        values = fields.get("data")
        if not values:
            raise bad_body("A form body needs its events in the data field.")
        text = values[0].strip()
        if compression == "base64" or not text.startswith(("{", "[")):
            raw = _unbase64(text)
        else:
            raw = text.encode("latin-1")
    check_depth(raw)
    try:
        # One holding a number no reader takes is read again event by event: the event
        # holding it is an Unread (kept as rejected), the others are stored.
        return read_events(raw, "batch")
    except msgspec.DecodeError as exc:
        raise bad_body(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise bad_body("The body is nested too deeply.") from None


def _unbase64(text: str) -> bytes:
    cleaned = text.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise bad_body("The data field is neither JSON nor base64 of JSON.") from None


def body_of(document: Any) -> Body:
    """The key, ``sent_at`` and events of a decoded body; ApiError 400 if it has none."""
    token: str | None = None
    sent_at: str | None = None
    if isinstance(document, list):
        events = document
    elif isinstance(document, dict) and "batch" in document:
        events = document["batch"]
        token = _text(document.get("api_key")) or _text(document.get("token"))
        sent_at = _text(document.get("sent_at"))
        if not isinstance(events, list):
            raise bad_body("batch must be a list of events.")
    elif isinstance(document, dict | Unread):
        events = [document]
    else:
        raise bad_body("The body must be an event, a list of events or {batch: [...]}.")
    if not events:
        raise bad_body("The body holds no event.")
    if not all(isinstance(event, dict | Unread) for event in events):
        raise bad_body("Each event must be a JSON object.")
    tokens = {found for event in events if (found := _event_token(event)) is not None}
    if token is None and tokens:
        token = next(iter(tokens))
    if len(tokens | ({token} if token else set())) > 1:
        raise ApiError(400, "invalid_field", "The events name different project keys.", "api_key")
    return Body(token, sent_at, events)


def _event_token(event: dict[str, Any] | Unread) -> str | None:
    if isinstance(event, Unread):
        event = event.value
    properties = event.get("properties")
    nested = properties.get("token") if isinstance(properties, dict) else None
    for value in (event.get("api_key"), event.get("token"), event.get("$token"), nested):
        text = _text(value)
        if text is not None:
            return text
    return None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def map_event(
    event: dict[str, Any] | Unread, sent_at: str | None, received_at: dt.datetime
) -> Collected:
    """What one event asks for; an event that cannot be mapped is kept with its reason. One
    holding a number no reader takes is kept as sent, naming the ids and traits the rest of
    it gives (one naming an erased person is dropped, as any such event is)."""
    if isinstance(event, Unread):
        return event.kept(map_event(event.value, sent_at, received_at))
    name = _text(event.get("event"))
    payload = encode_payload(event)
    try:
        if holds_nul(payload):
            raise MappingError("Text in an event cannot hold the NUL character (\\u0000).")
        if name is None:
            raise MappingError("An event needs its name in event.", "missing_field", "event")
        return _map(event, name, payload, sent_at, received_at)
    except MappingError as exc:
        # Kept with the ids and emails it names, read on their own: one naming an erased
        # person is dropped, never kept with their ids.
        return rejected(event, exc, name, names_of(event))


def names_of(event: dict[str, Any]) -> Collected:
    """The ids and emails an event names, each read on its own (see ``named``): its distinct
    ids (top level and in properties), an identify's anonymous id, an alias, and the emails
    of ``$set`` and ``$set_once``."""
    raw_properties = event.get("properties")
    properties: dict[str, Any] = raw_properties if isinstance(raw_properties, dict) else {}
    emails: list[object] = []
    for key in SET_EVENTS:
        for source in (properties.get(key), event.get(key)):
            if isinstance(source, dict):
                emails.append(source.get("email"))
    return named(
        ids=[
            event.get("distinct_id"),
            event.get("$distinct_id"),
            properties.get("distinct_id"),
            properties.get("$anon_distinct_id"),
            properties.get("alias"),
        ],
        emails=emails,
    )


def _map(
    event: dict[str, Any],
    name: str,
    payload: bytes,
    sent_at: str | None,
    received_at: dt.datetime,
) -> Collected:
    raw_properties = event.get("properties")
    properties: dict[str, Any] = raw_properties if isinstance(raw_properties, dict) else {}
    distinct = external_id(
        _first(event.get("distinct_id"), event.get("$distinct_id"), properties.get("distinct_id")),
        "distinct_id",
    )
    traits = _person(event, properties, "$set")
    once = _person(event, properties, "$set_once")
    collected = Collected(payload, label=name, traits=traits, traits_once=once)
    if name == ALIAS:
        alias = external_id(properties.get("alias"), "alias")
        previous = external_id(properties.get("distinct_id"), "distinct_id") or distinct
        if alias is None or previous is None:
            raise MappingError(
                "$create_alias needs distinct_id and alias.", "missing_field", "alias"
            )
        collected.alias = (previous, alias)
        return collected
    if distinct is None:
        raise MappingError("An event needs distinct_id.", "missing_field", "distinct_id")
    if name == IDENTIFY:
        anonymous = external_id(properties.get("$anon_distinct_id"), "$anon_distinct_id")
        if anonymous is not None and anonymous != distinct:
            collected.user, collected.anonymous, collected.identify = distinct, anonymous, True
        else:
            collected.person = distinct
        return collected
    collected.person = distinct
    if name in SET_EVENTS:
        return collected
    activity: dict[str, Any] = {"occurredAt": occurred_at(event, sent_at, received_at).isoformat()}
    client_id = _text(event.get("uuid"))
    if client_id is not None:
        activity["id"] = client_id[:MAX_CLIENT_ID]
    url = _url(properties.get("$current_url"))
    if url is not None:
        activity["url"] = url
    referrer = _url(properties.get("$referrer"))
    if referrer is not None:
        activity["referrer"] = referrer
    if name == PAGEVIEW:
        sent_url = properties.get("$current_url")
        if url is None and isinstance(sent_url, str) and sent_url:
            # The page visit's URL as sent: its check refuses it, and the visit is kept with
            # it. (On other events the page is context, left out when it is no web URL.)
            activity["url"] = sent_url
        title = properties.get("title")
        if isinstance(title, str) and title.strip():
            activity["value"] = title.strip()[:2000]
        collected.type_names = ("pagevisit",)
    else:
        fields = {
            key: value
            for key, value in properties.items()
            if not key.startswith("$") and key not in ENVELOPE
        }
        if fields:
            activity["fields"] = fields
        collected.type_names = (name,)
    collected.activity = activity
    return collected


def _first(*values: object) -> object:
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _person(event: dict[str, Any], properties: dict[str, Any], key: str) -> dict[str, Any] | None:
    """Person properties of ``$set`` or ``$set_once``, top-level winning over the event's
    properties (as PostHog merges them); PostHog's own ``$`` properties are left out."""
    merged: dict[str, Any] = {}
    for source in (properties.get(key), event.get(key)):
        if isinstance(source, dict):
            merged.update(source)
    kept = {k: v for k, v in merged.items() if isinstance(k, str) and not k.startswith("$")}
    return kept or None


def _url(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_URL and is_http_url(value):
        return value
    return None


def occurred_at(
    event: dict[str, Any], batch_sent_at: str | None, received_at: dt.datetime
) -> dt.datetime:
    """When it happened, on the server's clock, as PostHog reckons it: ``timestamp`` moved by
    the client's skew (``sent_at``), else ``offset`` milliseconds before now, else now."""
    stamp = event.get("timestamp")
    sent = event.get("sent_at") or batch_sent_at
    properties = event.get("properties")
    ignore_sent_at = isinstance(properties, dict) and properties.get("$ignore_sent_at") is True
    try:
        if stamp is not None:
            happened = _time(stamp, "timestamp")
            if sent is not None and not ignore_sent_at:
                return received_at + (happened - _time(sent, "sent_at"))
            return happened
        offset = event.get("offset")
        if isinstance(offset, int | float) and not isinstance(offset, bool):
            return received_at - dt.timedelta(milliseconds=offset)
    except OverflowError:
        raise MappingError(
            "timestamp, sent_at or offset are too far off to correct.", field="timestamp"
        ) from None
    return received_at


def _time(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise MappingError(f"{name} is not an ISO 8601 date and time.", field=name)
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise MappingError(f"{name} is not an ISO 8601 date and time.", field=name) from None
    # PostHog reads a time without an offset as UTC.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
