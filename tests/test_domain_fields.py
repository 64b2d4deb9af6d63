"""Field declarations of activity types, and which changes are allowed once activities exist."""

from __future__ import annotations

import msgspec
import pytest

from waypost.domain.fields import FieldRuleError, FieldSpec, check_field_change, check_fields


def spec(name: str, type_: str = "text", **flags: object) -> FieldSpec:
    return msgspec.convert({"name": name, "type": type_, **flags}, FieldSpec)


def test_a_valid_declaration_passes() -> None:
    check_fields(
        [
            spec("amount", "decimal", primary=True, required=True),
            spec("currency", "text", max_length=3),
            spec("paid-at", "datetime"),
            spec("_internal", "boolean"),
        ]
    )
    check_fields([])


@pytest.mark.parametrize(
    "type_", ["text", "integer", "decimal", "boolean", "datetime", "url", "email", "phone"]
)
def test_every_field_type_of_the_design_is_accepted(type_: str) -> None:
    assert spec("f", type_).type == type_


@pytest.mark.parametrize("type_", ["string", "float", "json", "Text", ""])
def test_other_types_are_refused_when_decoding(type_: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        spec("f", type_)


def test_unknown_keys_in_a_field_are_refused_when_decoding() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `color`"):
        spec("f", color="red")


def test_at_most_one_primary() -> None:
    with pytest.raises(FieldRuleError) as caught:
        check_fields([spec("a", primary=True), spec("b"), spec("c", primary=True)])
    assert caught.value.field == "fields[2].primary"


def test_names_are_unique_whatever_their_case() -> None:
    with pytest.raises(FieldRuleError) as caught:
        check_fields([spec("Amount"), spec("amount")])
    assert caught.value.field == "fields[1].name"


def test_names_are_unique_with_dash_and_underscore_alike() -> None:
    # Ortto's keys name a field with either: str:cm:payment-plan is payment_plan.
    with pytest.raises(FieldRuleError) as caught:
        check_fields([spec("payment_plan"), spec("Payment-Plan")])
    assert caught.value.field == "fields[1].name"


@pytest.mark.parametrize("name", ["with space", "dot.ted", "-lead", "é", "a/b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(FieldRuleError) as caught:
        check_fields([spec("ok"), spec(name)])
    assert caught.value.field == "fields[1].name"


def test_max_length_only_on_text() -> None:
    check_fields([spec("t", "text", max_length=10)])
    with pytest.raises(FieldRuleError) as caught:
        check_fields([spec("n", "integer", max_length=10)])
    assert caught.value.field == "fields[0].max_length"


# -- changes once activities exist ---------------------------------------------------------

BEFORE = [spec("amount", "decimal", primary=True, required=True), spec("note", "text")]


@pytest.mark.parametrize(
    "after",
    [
        BEFORE,
        [*BEFORE, spec("channel", "text")],
        [spec("extra", "url"), *BEFORE],
        [spec("amount", "decimal", primary=True, required=False), spec("note", "text")],
        [spec("amount", "decimal", primary=True, description="In EUR"), spec("note", "text")],
    ],
)
def test_allowed_changes(after: list[FieldSpec]) -> None:
    check_field_change(BEFORE, after)


@pytest.mark.parametrize(
    ("after", "field"),
    [
        ([spec("amount", "decimal", primary=True, required=True)], "fields"),
        ([spec("amount", "integer", primary=True, required=True), spec("note")], "fields"),
        ([spec("amount", "decimal", required=True), spec("note")], "fields"),
        (
            [spec("amount", "decimal", primary=True, required=True), spec("note", primary=True)],
            "fields",
        ),
        ([*BEFORE, spec("new", "text", required=True)], "fields[2].required"),
        (
            [spec("amount", "decimal", primary=True, required=True), spec("note", required=True)],
            "fields[1].required",
        ),
        (
            [spec("Amount", "decimal", primary=True, required=True), spec("note")],
            "fields",
        ),
    ],
    ids=[
        "removed",
        "type changed",
        "primary dropped",
        "primary moved",
        "new required",
        "optional made required",
        "renamed",
    ],
)
def test_refused_changes(after: list[FieldSpec], field: str) -> None:
    with pytest.raises(FieldRuleError) as caught:
        check_field_change(BEFORE, after)
    assert caught.value.field == field


def test_a_shorter_max_length_is_refused_a_longer_one_allowed() -> None:
    before = [spec("code", "text", max_length=10)]
    check_field_change(before, [spec("code", "text", max_length=20)])
    check_field_change(before, [spec("code", "text")])
    with pytest.raises(FieldRuleError):
        check_field_change(before, [spec("code", "text", max_length=5)])
    with pytest.raises(FieldRuleError):
        check_field_change([spec("code", "text")], [spec("code", "text", max_length=5)])
