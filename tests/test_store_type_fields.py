"""The fields of activity types read back from their rows, as every reader sees them."""

from __future__ import annotations

from collections.abc import Callable

from waypost.domain.fields import FieldSpec
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.store.type_fields import load_type_fields

DECLARED = [
    {
        "name": "plan",
        "type": "text",
        "required": True,
        "description": "Chosen plan",
        "max_length": 40,
    },
    {"name": "amount", "type": "decimal", "primary": True},
    {"name": "approved", "type": "boolean"},
]


def test_every_attribute_of_a_field_comes_back_in_declared_order(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    loan = make_type(name="Loan", fields=DECLARED)
    with hub.store.read() as conn:
        fields = load_type_fields(conn, [loan.id])
    assert fields == {
        loan.id: [
            FieldSpec("plan", "text", required=True, description="Chosen plan", max_length=40),
            FieldSpec("amount", "decimal", primary=True),
            FieldSpec("approved", "boolean"),
        ]
    }


def test_only_the_types_asked_for_and_none_for_a_type_without_fields(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    loan = make_type(name="Loan", fields=DECLARED)
    other = make_type(name="Other", fields=[{"name": "x", "type": "integer"}])
    bare = make_type(name="Bare")
    with hub.store.read() as conn:
        some = load_type_fields(conn, [other.id, bare.id])
        every = load_type_fields(conn)
    assert some == {other.id: [FieldSpec("x", "integer")]}
    assert set(every) >= {loan.id, other.id}
    assert bare.id not in every


def test_the_catalog_and_the_type_service_read_the_same_fields(
    hub: Hub, make_type: Callable[..., ActivityType]
) -> None:
    loan = make_type(name="Loan", fields=DECLARED)
    assert list(hub.catalog.get().types[loan.code_name].fields) == hub.types.get(loan.id).fields
