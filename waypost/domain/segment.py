"""Segment's message model mapped onto Waypost: events to activities, traits to contact fields.

Pure functions; the HTTP side is waypost/transports/segment.py. Mapping (docs/segment.md):

- ``track``: the event name is an activity type's code name or one of its aliases; properties
  are the activity's fields. ``page``: a page visit (url, name or title, referrer).
  ``screen``: an activity of the type ``screen`` when one is defined, else a page visit when
  the screen has a URL.
- ``identify``: traits, top-level or in ``context.traits``, set contact fields; the rest are
  kept as the contact's custom attributes.
- ``messageId`` is the activity's idempotency key; ``timestamp`` (or ``originalTimestamp``)
  is corrected for the client's clock by ``sentAt``, as Segment does.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec
import pycountry

from waypost.domain.contact_fields import MAX_LENGTHS, is_email, is_us_state, normalise_phone
from waypost.domain.field_values import is_http_url, parse_datetime

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
MAX_ID = 100
# An escaped NUL character: "\u0000" after an even number of backslashes. PostgreSQL text
# cannot hold NUL, so a trait, an id or an event name with one would fail the request.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class Message(msgspec.Struct, rename="camel"):
    """One Segment message; fields Waypost does not use (integrations, ...) are ignored."""

    type: str | None = None
    user_id: str | int | None = None
    anonymous_id: str | int | None = None
    message_id: str | None = None
    timestamp: str | None = None
    original_timestamp: str | None = None
    sent_at: str | None = None
    event: str | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    group_id: str | int | None = None
    previous_id: str | int | None = None


class MappingError(ValueError):
    """A message that cannot become what it asks for; ``code`` is the error code."""

    def __init__(self, message: str, code: str = "invalid_field", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


def check_text(raw: bytes) -> None:
    """MappingError when the message's JSON holds the NUL character anywhere."""
    if b"\\u0000" in raw and _NUL.search(raw):
        raise MappingError("Text in a message cannot hold the NUL character (\\u0000).")


def ident(value: str | int | None) -> str | None:
    """A Segment id as text (SDKs send numbers too); None when absent or empty."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def occurred_at(
    message: Message, batch_sent_at: str | None, received_at: dt.datetime
) -> dt.datetime:
    """When it happened, on the server's clock.

    Segment: ``timestamp = receivedAt - (sentAt - originalTimestamp)``; an explicit
    ``timestamp`` is taken as it is when there is no ``sentAt``.
    """
    stamp = message.timestamp or message.original_timestamp
    if stamp is None:
        return received_at
    happened = _time(stamp, "timestamp")
    sent = message.sent_at or batch_sent_at
    if sent is None:
        return happened
    skew = _time(sent, "sentAt") - happened
    try:
        return received_at - skew
    except OverflowError:
        raise MappingError(
            "sentAt and timestamp are too far apart to correct.", field="sentAt"
        ) from None


def _time(value: str, name: str) -> dt.datetime:
    try:
        return parse_datetime(value)
    except ValueError:
        raise MappingError(f"{name} is not ISO 8601 with an offset.", field=name) from None


def context_page(message: Message) -> dict[str, Any]:
    page = (message.context or {}).get("page")
    return page if isinstance(page, dict) else {}


def activity_object(
    message: Message, type_code: str, when: dt.datetime, fields: dict[str, Any] | None
) -> dict[str, Any]:
    """The headless API's activity object for an event, page or screen message."""
    properties = message.properties or {}
    page = context_page(message)
    activity: dict[str, Any] = {"type": type_code, "occurredAt": when.isoformat()}
    if message.message_id:
        activity["id"] = message.message_id[:MAX_ID]
    url = properties.get("url") or page.get("url")
    if isinstance(url, str) and is_http_url(url):
        activity["url"] = url
    referrer = properties.get("referrer") or page.get("referrer")
    if isinstance(referrer, str) and is_http_url(referrer):
        activity["referrer"] = referrer
    if message.type in ("page", "screen"):
        title = message.name or properties.get("title") or page.get("title")
        if isinstance(title, str) and title:
            activity["value"] = title
    if fields:
        activity["fields"] = fields
    return activity


PAGE_PROPERTIES = frozenset({"url", "title", "referrer", "path", "search", "name"})


# Segment's reserved traits -> contact columns.
TRAIT_COLUMNS = {
    "email": "email",
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "title": "job_title",
    "phone": "mobile_phone",
    "birthday": "birthday",
    "description": "notes",
}


def traits_of(message: Message) -> dict[str, Any]:
    """Traits at the top level win over those in ``context.traits``."""
    nested = (message.context or {}).get("traits")
    merged = dict(nested) if isinstance(nested, dict) else {}
    merged.update(message.traits or {})
    return merged


def map_traits(traits: dict[str, Any]) -> tuple[dict[str, object], dict[str, Any]]:
    """Contact fields and custom attributes from identify traits.

    A reserved trait whose value does not fit its contact field (a phone that is not a valid
    number, a country that is not a country) is kept as a custom attribute instead, so nothing
    the caller sent is lost.
    """
    fields: dict[str, object] = {}
    attributes: dict[str, Any] = {}
    for name, value in traits.items():
        column = TRAIT_COLUMNS.get(name)
        if name == "company" and isinstance(value, dict):
            company = _text(value.get("name"), "company_name")
            if company is not None:
                fields["company_name"] = company
            rest = {k: v for k, v in value.items() if k != "name" or company is None}
            if rest:
                attributes["company"] = rest
            continue
        if name == "company" and isinstance(value, str):
            company = _text(value, "company_name")
            if company is not None:
                fields["company_name"] = company
                continue
        if name == "address" and isinstance(value, dict):
            leftover = _address(value, fields)
            if leftover:
                attributes["address"] = leftover
            continue
        converted = _convert(column, value) if column else None
        if converted is None:
            attributes[name] = value
        else:
            fields[column] = converted  # type: ignore[index]
    return fields, attributes


def _convert(column: str, value: Any) -> object | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if column == "email":
        return text if is_email(text) else None
    if column == "mobile_phone":
        try:
            return normalise_phone(text)
        except ValueError:
            return None
    if column == "birthday":
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            return None
    return _text(text, column)


def _text(value: Any, column: str) -> str | None:
    """Trimmed text that fits the contact column; None when it does not (an attribute then)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    return text if len(text) <= MAX_LENGTHS[column] else None


def _address(address: dict[str, Any], fields: dict[str, object]) -> dict[str, Any]:
    leftover = dict(address)
    for key, column in (("street", "address1"), ("city", "city"), ("postalCode", "zip")):
        value = _text(address.get(key), column)
        if value is not None:
            fields[column] = value
            leftover.pop(key)
    country = address.get("country")
    code = country_code(country) if isinstance(country, str) else None
    if code is not None:
        fields["country"] = code
        leftover.pop("country")
    state = address.get("state")
    if isinstance(state, str) and is_us_state(state.strip().upper()) and code in (None, "USA"):
        fields["state"] = state.strip().upper()
        leftover.pop("state")
    return leftover


def country_code(value: str) -> str | None:
    """ISO 3166-1 alpha-3 for a country given as alpha-2, alpha-3 or its name."""
    text = value.strip()
    if not text:
        return None
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return str(country.alpha_3)
