"""One event of a collector (PostHog, Snowplow), mapped to what Waypost does with it.

The wire formats differ; what an event asks for does not: name a person by one or more ids,
perhaps say two ids are the same person, set contact fields, and log an activity of a type
found by name. Each collector's domain module turns its events into :class:`Collected`; one
service applies them (waypost/services/collectors.py). Pure data, no I/O.

A batch (PostHog's, Snowplow's, Segment's) may hold an event whose JSON holds a number no
reader takes: :func:`readable` reads the rest of it, so that the event alone is kept as
rejected (:class:`Unread`, :class:`OutOfRange`) and the others are stored.

An event that cannot be mapped for any other reason (a kind no type takes, a time that is not
one, a missing name) still names its person: :func:`named` reads its ids and emails on their
own, each that can be read, and :func:`rejected` keeps them with it, so that one naming an
erased person is dropped rather than kept as rejected (docs/data-lifecycle.md#suppressions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from waypost.domain.field_values import ORTTO_EMAIL, ORTTO_SYSTEM_KEYS
from waypost.domain.segment import MappingError
from waypost.error_words import out_of_range
from waypost.errors import ApiError, check_depth

# External ids are looked up whole and stored in a column of 200 characters.
MAX_EXTERNAL_ID = 200
# An activity's client id (its idempotency key) is at most 100 characters.
MAX_CLIENT_ID = 100
# rejected_activities.field: where in an unread event its number is, cut to the column.
MAX_WHERE = 200


@dataclass
class Collected:
    """What one event asks for.

    ``person`` is an id that may be known as either kind (PostHog's ``distinct_id``: anonymous
    or identified, the event does not say); ``user`` and ``anonymous`` are ids of a known kind.
    With ``identify`` the anonymous id's contact is merged into the user's, as a Segment
    identify does. ``activity`` is the activity object without its ``type``, which is the first
    of ``type_names`` that names a type (by code name or alias).
    """

    # The event as sent: a rejected activity's payload.
    payload: bytes
    # The event's name, for finding its rejected activity.
    label: str | None = None
    person: str | None = None
    user: str | None = None
    anonymous: str | None = None
    # Further ids of the same person, by kind (Snowplow's network user id).
    others: tuple[tuple[str, str], ...] = ()
    identify: bool = False
    # (previous id, new id): the two are the same person.
    alias: tuple[str, str] | None = None
    traits: dict[str, Any] | None = None
    traits_once: dict[str, Any] | None = None
    type_names: tuple[str, ...] = ()
    activity: dict[str, Any] | None = None
    # Field values passed only when the type declares a field of that name.
    optional_fields: dict[str, Any] = field(default_factory=dict)
    # Kept with the stored activity as a flag (Snowplow's contexts).
    flag: dict[str, object] | None = None
    # Why the event cannot be mapped: kept as a rejected activity with this reason.
    error: MappingError | None = None
    # What an event that cannot be mapped names besides its ids above (see :func:`named`):
    # ids of either kind, and emails. Only looked up, to drop one naming an erased person.
    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


def external_id(value: object, name: str) -> str | None:
    """An id as text (clients send numbers too), None when absent or empty; MappingError when
    it could never be found again (longer than the column)."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) > MAX_EXTERNAL_ID:
        raise MappingError(f"{name} is at most {MAX_EXTERNAL_ID} characters.", field=name)
    return text


def loose_id(value: object) -> str | None:
    """An id as :func:`external_id` reads it, None where that refuses it: one longer than the
    column was never stored, so it names no one, erased or not."""
    try:
        return external_id(value, "id")
    except MappingError:
        return None


def named(
    *,
    user: object = None,
    anonymous: object = None,
    ids: Iterable[object] = (),
    others: Iterable[tuple[str, object]] = (),
    emails: Iterable[object] = (),
) -> Collected:
    """What an event that cannot be mapped names, each value read on its own (one that is
    absent, not text or too long hides none of the others): ``user`` and ``anonymous`` ids of
    a known kind, ``ids`` of either kind, ``others`` by kind (Snowplow's ``nuid``), and the
    ``emails`` of its traits. Given to :func:`rejected`, so that the event, when it names an
    erased person, is dropped as any such event is, and never kept with their ids."""
    kept_others = tuple((name, id_) for name, value in others if (id_ := loose_id(value)))
    return Collected(
        b"",
        user=loose_id(user),
        anonymous=loose_id(anonymous),
        others=kept_others,
        ids=tuple(dict.fromkeys(id_ for value in ids if (id_ := loose_id(value)))),
        emails=tuple(dict.fromkeys(e.strip() for e in emails if isinstance(e, str) and e.strip())),
    )


def rejected(
    payload: object,
    error: MappingError,
    label: str | None = None,
    names: Collected | None = None,
) -> Collected:
    """An event that cannot be mapped, kept with ``error`` as its reason; ``names``, what it
    names (:func:`named`), goes with it, to drop it when that is an erased person."""
    if names is None:
        return Collected(encode_payload(payload), label=label, error=error)
    return replace(names, payload=encode_payload(payload), label=label, error=error)


def encode_payload(payload: object) -> bytes:
    """The event as JSON, the way the rejected activities' column encodes it."""
    return json.dumps(payload, default=str).encode()


# A JSON object's or list's values, each as its JSON text, read no further.
raw_members = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
raw_items = msgspec.json.Decoder(list[msgspec.Raw]).decode


def readable(raw: bytes) -> tuple[Any, str | None]:
    """``raw``'s JSON value with each number no reader takes (an integer of more digits than
    Python reads, an exponent past a float's range such as ``1e400``) read as None, every value
    of an object or a list read on its own, so that one such number hides nothing beside it;
    and where the first of those numbers is (``properties.revenue``, ``batch[2]``, "" for
    ``raw`` itself), None when there is none.

    What a collector keeps of an event or message it cannot read whole: its ids and emails,
    to drop it when it names an erased person, and the rest of a batch, stored as usual.
    msgspec.DecodeError when ``raw`` is not JSON. Each level of nesting is read again, so
    ``raw`` is held to the 64 levels of ``check_depth`` first."""
    unread: list[str] = []
    value = _readable(raw, "", unread)
    return value, (unread[0] if unread else None)


def _readable(raw: bytes, at: str, unread: list[str]) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.ValidationError:
        pass  # without a type, only a number is refused so
    head = raw.lstrip()[:1]
    if head == b"{":
        return {
            key: _readable(bytes(part), f"{at}.{key}" if at else key, unread)
            for key, part in raw_members(raw).items()
        }
    if head == b"[":
        return [
            _readable(bytes(part), f"{at}[{index}]", unread)
            for index, part in enumerate(raw_items(raw))
        ]
    unread.append(at)
    return None


def loose_value(raw: bytes) -> Any:
    """``raw``'s JSON value however else it is wrong, as far as it can be read (a number no
    reader takes read as None, see :func:`readable`); None when it is not JSON. A document
    nested past ``check_depth``'s levels is read only when it holds no such number, as
    :func:`readable` reads each level again."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.ValidationError:
        pass  # a number no reader takes
    except (msgspec.DecodeError, RecursionError):
        return None
    try:
        check_depth(raw)
        return readable(raw)[0]
    except (ApiError, msgspec.DecodeError, RecursionError):
        return None


def activity_emails(raw: bytes) -> tuple[str, ...]:
    """The emails an activity object of the tracking API names, read however else it is
    wrong (an unknown property, a bad value, a number out of range): its ``contactFields``'
    ``ContactEmail`` and its fields' ``str::email`` (property and contact field names in any
    letter case, as they are matched). What is looked up to drop an activity that cannot be
    stored when it names an erased person, rather than keep it as rejected with their email."""
    value = loose_value(raw)
    if not isinstance(value, dict):
        return ()
    found: list[object] = []
    for key, part in value.items():
        if not isinstance(part, dict):
            continue
        if key.lower() == "contactfields":
            found += [v for k, v in part.items() if k.lower() == "contactemail"]
        elif key.lower() == "fields":
            found.append(part.get(ORTTO_EMAIL))
    return tuple(email.strip() for email in found if isinstance(email, str) and email.strip())


class OutOfRange(MappingError):
    """Why an event holding a number no reader takes is kept as rejected: ``where`` is the
    number's place in the event (``properties.plan``; "" for the event itself)."""

    def __init__(self, where: str) -> None:
        # The place is made of the event's keys, which may hold a NUL: no text column of
        # PostgreSQL takes one, so it is written out as JSON writes it.
        where = where[:MAX_WHERE].replace("\x00", "\\u0000")
        super().__init__(out_of_range(where or None), field=where or None)


@dataclass(frozen=True)
class Unread:
    """An event holding a number no reader takes (``1e400``): as sent, as far as it can be
    read (each such number None, see ``readable``), and where the first such number is."""

    raw: bytes
    value: dict[str, Any]
    where: str

    def kept(self, mapped: Collected) -> Collected:
        """``mapped`` (what :attr:`value` asks for, naming its person) kept as rejected, as
        sent: one naming an erased person is dropped, as any such event is."""
        return replace(mapped, payload=self.raw, error=OutOfRange(self.where))


def event_of(raw: bytes) -> Any:
    """``raw``'s JSON value; an :class:`Unread` when it is an object holding a number no
    reader takes."""
    value, where = readable(raw)
    if where is None or not isinstance(value, dict):
        return value
    return Unread(raw, value, where)


def read_events(raw: bytes, batch: str) -> Any:
    """A body of events as JSON, read so that one event holding a number no reader takes
    hides no other: that event is an :class:`Unread` (kept as rejected), the others are read
    as usual. A list is a list of events; an object with ``batch`` holds its events in that
    list (its other members read with :func:`readable`); any other object is one event.
    msgspec.DecodeError when ``raw`` is not JSON; held to ``check_depth`` first."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.ValidationError:
        pass  # without a type, only a number is refused so
    head = raw.lstrip()[:1]
    if head == b"[":
        return [event_of(bytes(part)) for part in raw_items(raw)]
    if head != b"{":
        return None  # a number, which is no event
    members = raw_members(raw)
    if batch not in members:
        return event_of(raw)
    document = {key: readable(bytes(part))[0] for key, part in members.items() if key != batch}
    events = bytes(members[batch])
    if events.lstrip()[:1] == b"[":
        document[batch] = [event_of(bytes(part)) for part in raw_items(events)]
    else:
        document[batch] = readable(events)[0]
    return document


# Ortto's snippet names an activity type "act:cm:<name>" (docs/collectors.md).
ORTTO_ACTIVITY = "act:cm:"


def activity_names(name: str) -> tuple[str, ...]:
    """The names an activity type sent by a page may be known by, the most exact first: as
    sent (a code name, or an alias such as ``act:cm:login``), without Ortto's ``act:cm:``,
    and with ``-`` as ``_`` (``act:cm:payment-made`` finds ``payment_made``)."""
    bare = name.removeprefix(ORTTO_ACTIVITY)
    return tuple(dict.fromkeys((name, bare, bare.replace("-", "_"))))


def split_claims(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A page's fields without Ortto's system keys (``str::email``, ``str::first``,
    ``str::last``), and what those keys claim as contact traits (``email``, ``first_name``,
    ``last_name``). From a page they are an identify claim: the email is set on the visitor's
    contact when no other contact has it, else kept as ``claimed_email``; never a move to the
    contact that has it, as a server's data input would be (docs/activity-fields.md)."""
    if not any(key in ORTTO_SYSTEM_KEYS for key in fields):
        return fields, {}
    kept = {k: v for k, v in fields.items() if k not in ORTTO_SYSTEM_KEYS}
    claimed = {ORTTO_SYSTEM_KEYS[k]: v for k, v in fields.items() if k in ORTTO_SYSTEM_KEYS}
    return kept, claimed


def page_claims(event: Collected) -> Collected:
    """The event of a page with Ortto's system keys taken out of its activity's fields and
    made contact traits (see :func:`split_claims`)."""
    fields = (event.activity or {}).get("fields")
    if not isinstance(fields, dict):
        return event
    kept, claimed = split_claims(fields)
    if not claimed:
        return event
    activity = {**(event.activity or {}), "fields": kept}
    return replace(event, activity=activity, traits={**(event.traits or {}), **claimed})
