"""Marketo's records mapped onto collected events, without I/O: waypost/domain/marketo.py."""

from __future__ import annotations

import json

import pytest

from waypost.domain.fields import FieldSpec
from waypost.domain.marketo import MAX_RECORDS, TypeView, map_record, records_of
from waypost.errors import ApiError

WEBINAR: TypeView = (
    "webinar",
    (
        FieldSpec("title", "text", primary=True),
        FieldSpec("minutes", "integer"),
        FieldSpec("asked-question", "boolean"),
    ),
)
RECORD = {
    "leadId": 1001,
    "activityDate": "2026-09-26T06:56:35+07:00",
    "activityTypeId": 100001,
    "primaryAttributeValue": "Spring rates",
    "attributes": [
        {"name": "Minutes", "value": "45"},
        {"apiName": "asked_question", "value": "true"},
    ],
}


def types(number: int) -> TypeView | None:
    return WEBINAR if number == 100001 else None


def mapped(record: dict[str, object]) -> dict[str, object]:
    event = map_record(json.dumps(record).encode(), types)
    assert event.error is None, event.error
    assert event.activity is not None
    return event.activity


def test_a_record_is_an_activity_of_the_lead() -> None:
    event = map_record(json.dumps(RECORD).encode(), types)
    assert (event.user, event.type_names) == ("1001", ("webinar",))
    assert event.activity is not None
    assert event.activity["fields"] == {
        "title": "Spring rates",
        "minutes": 45,
        "asked-question": True,
    }
    assert event.activity["occurredAt"] == "2026-09-26T06:56:35+07:00"


def test_the_same_record_has_the_same_key_and_another_moment_another() -> None:
    first, again = mapped(RECORD), mapped(dict(RECORD))
    later = mapped({**RECORD, "activityDate": "2026-09-27T06:56:35+07:00"})
    assert first["id"] == again["id"] != later["id"]
    assert isinstance(first["id"], str)
    assert len(first["id"]) <= 100


def test_without_a_primary_field_the_primary_value_is_the_value() -> None:
    activity = mapped({**RECORD, "activityTypeId": 5})
    assert activity["value"] == "Spring rates"
    assert mapped({**RECORD, "activityTypeId": 5, "primaryAttributeValue": 7})["value"] == "7"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"leadId": None}, "leadId"),
        ({"activityTypeId": None}, "activityTypeId"),
        ({"activityDate": ""}, "activityDate"),
        ({"attributes": [{"value": 1}]}, "attributes[0]"),
        ({"leadId": "x" * 201}, "leadId"),
    ],
)
def test_records_that_cannot_be_mapped_say_why(change: dict[str, object], field: str) -> None:
    event = map_record(json.dumps({**RECORD, **change}).encode(), types)
    assert event.error is not None
    assert event.error.field == field


def test_a_record_of_another_shape_is_kept_with_its_payload() -> None:
    event = map_record(json.dumps({**RECORD, "activityTypeId": "100001"}).encode(), types)
    assert event.error is not None
    assert json.loads(event.payload)["activityTypeId"] == "100001"


def test_an_unknown_number_is_named_for_a_later_replay() -> None:
    event = map_record(json.dumps({**RECORD, "activityTypeId": 42}).encode(), types)
    assert event.type_names == ("marketo:42",)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"nope", 400, "invalid_json"),
        (b'{"input": 1}', 400, "invalid_field"),
        (b'{"input": []}', 400, "missing_field"),
        (b'{"input": [1]}', 400, "invalid_field"),
        (json.dumps({"input": [{}] * (MAX_RECORDS + 1)}).encode(), 413, "payload_too_large"),
    ],
)
def test_bodies_that_are_not_marketos(body: bytes, status: int, code: str) -> None:
    with pytest.raises(ApiError) as raised:
        records_of(body)
    assert (raised.value.status, raised.value.detail.code) == (status, code)


def test_records_are_kept_as_sent() -> None:
    assert records_of(b'{"input": [ {"leadId": 1} ]}') == [b'{"leadId": 1}']


@pytest.mark.parametrize(
    "record",
    [
        {"leadId": 7, "activityTypeId": 100001},
        {"leadId": 7, "activityTypeId": "100001", "activityDate": "2026-01-01T00:00:00Z"},
    ],
    ids=["no-date", "another-shape"],
)
def test_a_record_that_cannot_be_mapped_names_its_lead(record: dict[str, object]) -> None:
    # Kept as rejected, but naming its lead: one naming an erased lead is dropped.
    mapped = map_record(json.dumps(record).encode(), lambda number: None)
    assert mapped.error is not None
    assert (mapped.user, mapped.activity) == ("7", None)
