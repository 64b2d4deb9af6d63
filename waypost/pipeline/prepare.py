"""Decoding and validation of one activity object, into a row to store or a rejection.

Property names are matched case-insensitively (Kentico's own examples use both ``Type`` and
``type``). Each activity is decoded on its own, so one bad activity is a 400 for that activity
only, and the others of the request are still stored.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from waypost.domain.collected import activity_emails
from waypost.domain.contact_fields import ContactFieldError, parse_contact_fields
from waypost.domain.field_values import (
    FieldValueError,
    is_http_url,
    json_number,
    parse_datetime,
    validate_fields,
)
from waypost.domain.suppressions import EMAIL, contact_erased
from waypost.domain.titles import MAX_TITLE, activity_title
from waypost.errors import (
    ApiError,
    ErrorDetail,
    check_depth,
    from_validation_error,
    holds_nul,
    nul_refused,
)
from waypost.ids import new_id
from waypost.pipeline.catalog import Snapshot, TypeInfo

MAX_FUTURE = dt.timedelta(hours=24)
MAX_URL = 2048
MAX_VALUE = 2000
# Column sizes: whatever a client sends must fit, or one bad activity would fail the whole
# group-commit transaction (PostgreSQL refuses an over-long string; SQLite would store it).
MAX_NAME = 200


class ActivityIn(
    msgspec.Struct,
    forbid_unknown_fields=True,
    rename={"contact_fields": "contactFields", "occurred_at": "occurredAt"},
):
    """One activity object of ``POST /tracking/activities``."""

    type: str
    value: str | None = None
    title: Annotated[str, msgspec.Meta(max_length=MAX_TITLE)] | None = None
    url: str | None = None
    referrer: str | None = None
    contact_fields: dict[str, Any] | None = None
    fields: dict[str, Any] | None = None
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    occurred_at: str | None = None


PROPERTY_NAMES = {
    name.lower(): name
    for name in (
        "type",
        "value",
        "title",
        "url",
        "referrer",
        "contactFields",
        "fields",
        "id",
        "occurredAt",
    )
}

# Numbers with a fraction or an exponent as floats, unless a float would change them.
_decode_activity = msgspec.json.Decoder(ActivityIn, float_hook=json_number).decode
_decode_any = msgspec.json.Decoder(dict[str, Any], float_hook=json_number).decode


def decode_activity(raw: bytes) -> ActivityIn:
    """Decode one activity, matching property names case-insensitively; ApiError if bad."""
    try:
        return _decode_activity(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        obj = _decode_any(raw)
    except msgspec.ValidationError:
        if raw.lstrip()[:1] == b"{":
            # An object all the same: one of its numbers cannot be read (an integer of more
            # digits than Python reads, or an exponent past what json_number reads).
            raise ApiError(
                400,
                "invalid_field",
                "A number in the activity is out of range (an integer of more than "
                f"{sys.get_int_max_str_digits()} digits, or an exponent too large to read); "
                "send such numbers as strings.",
            ) from None
        raise ApiError(400, "invalid_field", "Each activity is a JSON object.") from None
    except msgspec.DecodeError as exc:
        raise from_validation_error(exc) from None
    canonical: dict[str, Any] = {}
    for key, value in obj.items():
        name = PROPERTY_NAMES.get(key.lower())
        if name is None:
            raise ApiError(
                400,
                "unknown_field",
                f"Unknown activity property {key!r}; an activity has type, value, title, url, "
                "referrer, contactFields, fields, id and occurredAt.",
                key,
            )
        if name in canonical:
            raise ApiError(400, "invalid_field", f"The property {key!r} is given twice.", key)
        canonical[name] = value
    try:
        return msgspec.convert(canonical, ActivityIn)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None


@dataclass(slots=True)
class Accepted:
    """A valid activity, ready for the writer."""

    id: uuid.UUID
    type: TypeInfo
    client_id: str | None
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    fields: dict[str, object] | None
    primary_value: str | None
    flags: list[dict[str, object]] | None
    occurred_at: dt.datetime
    contact_fields: dict[str, object] | None
    payload: bytes


@dataclass(slots=True)
class Rejected:
    """An activity that will not be stored; it is kept as a rejected activity, unless ``keep``
    is off (one naming an erased contact is stored nowhere)."""

    status: int
    error: ErrorDetail
    payload: bytes
    type_code: str | None
    keep: bool = True


def erased(payload: bytes, type_code: str | None) -> Rejected:
    """The answer to an activity that names an erased contact: 403 ``contact_erased``, and
    no rejected activity either (docs/data-lifecycle.md#a-contacts-data)."""
    error = contact_erased("The contact this activity names")
    return Rejected(403, error.detail, payload, type_code and type_code[:MAX_NAME], keep=False)


def reject(error: ApiError, payload: bytes, type_code: str | None) -> Rejected:
    detail = error.detail
    if detail.field is not None and len(detail.field) > MAX_NAME:
        detail = ErrorDetail(detail.code, detail.message, detail.field[:MAX_NAME])
    return Rejected(error.status, detail, payload, type_code and type_code[:MAX_NAME])


def _loose_type(raw: bytes) -> str | None:
    """The ``type`` of an activity that failed to decode, if it names one, so that the
    rejected activity can be found by its type."""
    try:
        obj = _decode_any(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    for key, value in obj.items():
        if key.lower() == "type" and isinstance(value, str):
            return value
    return None


def prepare(
    raw: bytes, snapshot: Snapshot, now: dt.datetime, max_bytes: int
) -> Accepted | Rejected:
    """Validate one activity against the rules of docs/tracking-api.md and its type. One
    naming an erased person's email is refused (``contact_erased``) and kept nowhere, even
    when it is refused for another reason too."""
    item = _prepare(raw, snapshot, now, max_bytes)
    # Checked only when some contact was erased, so the hot path pays nothing otherwise.
    if (
        snapshot.suppressed
        and isinstance(item, Rejected)
        and item.keep
        and snapshot.suppressed.any_of((EMAIL, email) for email in activity_emails(raw))
    ):
        return erased(raw, item.type_code)
    return item


def _prepare(
    raw: bytes, snapshot: Snapshot, now: dt.datetime, max_bytes: int
) -> Accepted | Rejected:
    if len(raw) > max_bytes:
        return reject(
            ApiError(
                413,
                "payload_too_large",
                f"An activity is at most {max_bytes} bytes; this one has {len(raw)}.",
            ),
            raw,
            None,
        )
    if holds_nul(raw):
        return reject(nul_refused("Text in an activity"), raw, None)
    try:
        check_depth(raw)
    except ApiError as exc:
        return reject(exc, raw, None)
    try:
        activity = decode_activity(raw)
    except ApiError as exc:
        return reject(exc, raw, _loose_type(raw))
    try:
        accepted = _check(activity, raw, snapshot, now)
    except ApiError as exc:
        return reject(exc, raw, activity.type)
    # A data input naming an erased contact's email: checked only when some contact was
    # erased, so the hot path pays nothing otherwise.
    if (
        snapshot.suppressed
        and accepted.contact_fields
        and snapshot.suppressed.names(EMAIL, accepted.contact_fields.get("email"))
    ):
        return erased(raw, activity.type)
    return accepted


def _check(activity: ActivityIn, raw: bytes, snapshot: Snapshot, now: dt.datetime) -> Accepted:
    code = activity.type
    info = snapshot.types.get(code)
    if info is None:
        raise ApiError(
            404,
            "activity_type_not_found",
            f"No activity type has the code name {code!r}; define it under /api/activity-types "
            "(a Segment event name may also be an alias of an existing type).",
            "type",
        )
    if not info.enabled:
        raise ApiError(
            404,
            "activity_type_disabled",
            f"The activity type {code!r} is disabled; enable it to log it.",
            "type",
        )
    for name in ("url", "referrer"):
        link = getattr(activity, name)
        if link is not None and (len(link) > MAX_URL or not is_http_url(link)):
            raise ApiError(
                400, "invalid_field", f"{name} must be an absolute http or https URL.", name
            )
    if activity.value is not None and len(activity.value) > MAX_VALUE:
        raise ApiError(400, "invalid_field", f"value is at most {MAX_VALUE} characters.", "value")
    builtin = code in ("pagevisit", "click", "datainput")
    if code == "pagevisit" and activity.url is None:
        raise ApiError(400, "missing_field", "A page visit needs url, the page's address.", "url")
    if code in ("click", "datainput") and not activity.value:
        raise ApiError(400, "missing_field", f"A {code} activity needs a value.", "value")
    if activity.title is not None and builtin:
        raise ApiError(
            400, "invalid_field", "title can be set for custom activity types only.", "title"
        )
    contact_fields = None
    if activity.contact_fields is not None:
        if code != "datainput":
            raise ApiError(
                400,
                "invalid_field",
                "contactFields can be set by data input activities only.",
                "contactFields",
            )
        try:
            contact_fields = parse_contact_fields(activity.contact_fields)
        except ContactFieldError as exc:
            raise ApiError(400, exc.code, str(exc), exc.field) from None
    fields, primary, flags = None, None, None
    if activity.fields or any(spec.required for spec in info.fields):
        try:
            checked = validate_fields(
                info.fields, activity.fields or {}, flag=info.unknown_fields == "accept_and_flag"
            )
        except FieldValueError as exc:
            raise ApiError(400, exc.code, str(exc), exc.field) from None
        fields, primary = checked.values or None, checked.primary
        flags = checked.violations or None
        if checked.contact:
            contact_fields = {**checked.contact, **(contact_fields or {})}
    occurred = now
    if activity.occurred_at is not None:
        try:
            occurred = parse_datetime(activity.occurred_at)
        except ValueError:
            raise ApiError(
                400,
                "invalid_field",
                "occurredAt must be a date and time in ISO 8601 with an offset, such as "
                "2026-01-31T09:30:00Z.",
                "occurredAt",
            ) from None
        if occurred - now > MAX_FUTURE:
            raise ApiError(
                400,
                "invalid_field",
                "occurredAt is more than 24 hours ahead of the server's clock.",
                "occurredAt",
            )
    value = activity.value if activity.value is not None else primary
    title = activity.title or activity_title(code, info.name, value, activity.url)
    return Accepted(
        id=new_id(),
        type=info,
        client_id=activity.id,
        title=title,
        value=value,
        url=activity.url,
        referrer=activity.referrer,
        fields=fields,
        primary_value=_indexed_primary(info, primary),
        flags=flags,
        occurred_at=occurred,
        contact_fields=contact_fields,
        payload=raw,
    )


def _indexed_primary(info: TypeInfo, primary: str | None) -> str | None:
    """What ``primary_value`` (and so ``ix_activities_type_primary``) holds for an activity.

    A decimal primary is compared as a number read from the stored fields, never through the
    column (services/activities.py), so it is not written there: its index entry, at a random
    place, doubled the bytes an insert wrote, for nothing (docs/performance.md).
    """
    if primary is None or info.decimal_primary:
        return None
    return primary[:MAX_NAME]
