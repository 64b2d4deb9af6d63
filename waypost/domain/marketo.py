"""Marketo's custom activities API mapped onto Waypost (docs/collectors.md).

Pure functions; the HTTP side is waypost/transports/marketo.py. ``POST
/rest/v1/activities/external.json`` takes ``{"input": [record, ...]}``, at most 300 records,
each one activity:

- ``leadId`` is the lead, kept as the external id ``marketo_lead`` of a contact (made on first
  sight);
- ``activityTypeId`` is the type's ``number``;
- ``primaryAttributeValue`` is the value of the type's primary field, or the activity's
  ``value`` when the type has none;
- ``attributes`` (``[{"name" or "apiName", "value"}]``) are the type's fields, by name (letter
  case, ``-``, ``_`` and spaces alike); a string is taken for an integer or boolean field as
  Marketo takes it (``"30"``, ``"true"``), a number for a text field;
- ``activityDate`` (ISO 8601 with an offset, required, as Marketo requires it) is when it
  happened.

Marketo's records carry no id, so the activity's idempotency key is a hash of the record
(lead, type, date, primary value and attributes): the same record sent again is stored once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from waypost.domain.collected import Collected, encode_payload, external_id, named, rejected
from waypost.domain.fields import FieldSpec
from waypost.domain.segment import MappingError
from waypost.errors import ApiError, check_depth

MAX_RECORDS = 300
MAX_ATTRIBUTES = 100
LEAD = "marketo_lead"
# The label of a record whose activityTypeId no type has (code names cannot hold ':').
UNKNOWN_TYPE = "marketo:{number}"
_INTEGER = re.compile(r"-?[0-9]{1,19}")
TEXT_TYPES = frozenset({"text", "url", "email", "phone"})

# A type as the mapping needs it: its code name and its fields.
TypeView = tuple[str, Sequence[FieldSpec]]


class Attribute(msgspec.Struct, rename="camel"):
    """One attribute of a record: ``name`` (or ``apiName``) and ``value``."""

    name: str | None = None
    api_name: str | None = None
    value: Any = None


class ExternalActivity(msgspec.Struct, rename="camel"):
    """One record of ``input``, as Marketo documents it."""

    lead_id: int | str | None = None
    activity_type_id: int | None = None
    activity_date: str | None = None
    primary_attribute_value: Any = None
    attributes: list[Attribute] | None = None


class _Body(msgspec.Struct):
    input: list[msgspec.Raw]


_decode_body = msgspec.json.Decoder(_Body).decode


def records_of(raw: bytes) -> list[bytes]:
    """The records of a body, each as its JSON; ApiError 400 for a body that is not
    ``{"input": [...]}`` (``invalid_json`` when it is not JSON at all), 413 past 300."""
    check_depth(raw)
    try:
        body = _decode_body(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(
            400, "invalid_field", f'The body must be {{"input": [activities]}}: {exc}.', "input"
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not body.input:
        raise ApiError(400, "missing_field", "input holds no activity.", "input")
    if len(body.input) > MAX_RECORDS:
        raise ApiError(
            413,
            "payload_too_large",
            f"input holds at most {MAX_RECORDS} activities, as Marketo's API allows; this "
            f"one has {len(body.input)}.",
            "input",
        )
    records = [bytes(record).strip() for record in body.input]
    for i, record in enumerate(records):
        if not record.startswith(b"{"):
            raise ApiError(
                400, "invalid_field", "Each activity of input is a JSON object.", f"input[{i}]"
            )
    return records


def map_record(raw: bytes, types: Callable[[int], TypeView | None]) -> Collected:
    """One record as a collected event; a record that cannot be mapped is kept as rejected
    with its reason."""
    try:
        record = msgspec.json.decode(raw, type=ExternalActivity)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        loose = _loose(raw)
        error = MappingError(f"Not a Marketo activity: {exc}.")
        return rejected(loose, error, names=names_of(loose))
    payload = _loose(raw)
    number = record.activity_type_id
    found = types(number) if number is not None else None
    label = None
    if number is not None:
        label = found[0] if found is not None else UNKNOWN_TYPE.format(number=number)
    try:
        return _map(record, payload, found, label)
    except MappingError as exc:
        return rejected(payload, exc, label, names_of(payload))


def names_of(record: object) -> Collected:
    """The lead a record that cannot be mapped names (see ``named``), so that one naming an
    erased person is dropped rather than kept with its ``leadId``."""
    return named(user=record.get("leadId") if isinstance(record, dict) else None)


def _map(
    record: ExternalActivity, payload: object, found: TypeView | None, label: str | None
) -> Collected:
    lead = external_id(record.lead_id, "leadId")
    if lead is None:
        raise MappingError("leadId is required.", "missing_field", "leadId")
    number = record.activity_type_id
    if number is None or label is None:
        raise MappingError("activityTypeId is required.", "missing_field", "activityTypeId")
    if not record.activity_date:
        raise MappingError(
            "activityDate is required: when the activity happened, in ISO 8601 with an offset.",
            "missing_field",
            "activityDate",
        )
    attributes = record.attributes or []
    if len(attributes) > MAX_ATTRIBUTES:
        raise MappingError(
            f"An activity has at most {MAX_ATTRIBUTES} attributes.", field="attributes"
        )
    specs: Sequence[FieldSpec] = found[1] if found is not None else ()
    by_name = {_plain(spec.name): spec for spec in specs}
    fields: dict[str, Any] = {}
    for i, attribute in enumerate(attributes):
        name = attribute.name if attribute.name is not None else attribute.api_name
        if not name:
            raise MappingError(
                "Each attribute needs a name (or apiName).", "missing_field", f"attributes[{i}]"
            )
        spec = by_name.get(_plain(name))
        if spec is None:
            # Left as it is: the type's rules refuse it (or flag it) as an unknown field.
            fields[name] = attribute.value
        else:
            fields[spec.name] = _typed(spec, attribute.value)
    activity: dict[str, Any] = {
        "occurredAt": record.activity_date,
        "id": "marketo:" + hashlib.sha256(raw_key(lead, number, record)).hexdigest()[:40],
    }
    primary = record.primary_attribute_value
    if primary is not None:
        spec = next((s for s in specs if s.primary), None)
        if spec is not None:
            fields.setdefault(spec.name, _typed(spec, primary))
        elif isinstance(primary, str | int | float) and not isinstance(primary, bool):
            activity["value"] = str(primary)
        else:
            raise MappingError(
                "primaryAttributeValue is a string.", "field_type_mismatch", "primaryAttributeValue"
            )
    if fields:
        activity["fields"] = fields
    return Collected(
        encode_payload(payload), label=label, user=lead, type_names=(label,), activity=activity
    )


def raw_key(lead: str, number: int, record: ExternalActivity) -> bytes:
    """What makes a record the same record: the idempotency key is its hash."""
    attributes = sorted(
        (a.name or a.api_name or "", msgspec.json.encode(a.value).decode())
        for a in record.attributes or ()
    )
    key = [lead, number, record.activity_date, record.primary_attribute_value, attributes]
    return msgspec.json.encode(key)


def _plain(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _typed(spec: FieldSpec, value: Any) -> Any:
    """A value as Marketo's API takes it for the field's type: numbers and booleans may come as
    strings, text may come as a number. Anything else is left for the type's rules."""
    if isinstance(value, str):
        text = value.strip()
        if spec.type == "integer" and _INTEGER.fullmatch(text):
            return int(text)
        if spec.type == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        return value
    if spec.type in TEXT_TYPES and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _loose(raw: bytes) -> object:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", "replace")
