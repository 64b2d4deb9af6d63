"""msgspec's validation messages told as sentences: the table of what msgspec says and what
people read."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import pytest

from waypost.error_words import a_or_an, allowed_values, out_of_range, quoted, sentence
from waypost.errors import from_validation_error
from waypost.services.consents import CodeName


class Field(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    type: Literal["text", "integer"]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=5)]
    fields: list[Field] = []
    enabled: bool = True
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    tags: Annotated[list[str], msgspec.Meta(max_length=2)] = []
    code: Annotated[str, msgspec.Meta(pattern="^[a-z]+$")] = "a"
    consent: CodeName = "c"
    owner: str | None = None
    labels: dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=4)],
        Annotated[str, msgspec.Meta(max_length=3)],
    ] = {}
    groups: dict[str, list[Field]] = {}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "a", "enabled": "y"}, "enabled", "enabled must be true or false, not a string."),
        ({"name": "a", "limit": "x"}, "limit", "limit must be a whole number, not a string."),
        ({"name": "a", "limit": 0}, "limit", "limit must be at least 1."),
        ({"name": "a", "limit": 1001}, "limit", "limit must be at most 1000."),
        ({"name": ""}, "name", "name must not be empty."),
        ({"name": "abcdef"}, "name", "name holds at most 5 characters."),
        ({"name": "a", "tags": ["x", "y", "z"]}, "tags", "tags holds at most 2 items."),
        ({"name": "a", "code": "A"}, "code", "code must match the pattern ^[a-z]+$."),
        # The API's own patterns are said in words.
        (
            {"name": "a", "consent": "bad name!"},
            "consent",
            "consent must hold only letters, digits, '_', '.' and '-'.",
        ),
        ({"name": "a", "owner": 5}, "owner", "owner must be a string or null, not a whole number."),
        (
            {"name": "a", "fields": [{"name": "f", "type": "float"}]},
            "fields[0].type",
            "fields[0].type: 'float' is not allowed; use one of integer, text.",
        ),
        ({"name": "a", "fields": [3]}, "fields[0]", "fields[0] must be an object, not a whole "
         "number."),
        (["a"], None, "The body must be an object, not a list."),
        ({"name": "a", "extra": 1}, "extra", "Unknown field 'extra'; remove it."),
        ({}, "name", "The field 'name' is required."),
        ({"name": "a", "labels": {"": "x"}}, "labels", "A key of labels must not be empty."),
        ({"name": "a", "labels": {"abcde": "x"}}, "labels", "A key of labels holds at most 4 "
         "characters."),
    ],
)  # fmt: skip
def test_msgspec_messages_become_sentences(body: object, field: str | None, message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(msgspec.json.encode(body), type=Body)
    error = from_validation_error(caught.value, Body)
    assert (error.status, error.field, error.message) == (400, field, message)


def test_without_the_type_an_enum_value_is_still_a_sentence() -> None:
    assert sentence("Invalid enum value 'float'", "type") == (
        "type: 'float' is not one of the allowed values."
    )
    assert allowed_values(None, "type") is None
    assert allowed_values(Body, "fields[0].nothing") is None


def test_messages_of_the_projects_own_are_kept() -> None:
    assert sentence("A password has at least 10 characters.", None) == (
        "A password has at least 10 characters."
    )


@pytest.mark.parametrize(
    ("word", "said"),
    [("admin", "an admin"), ("tracking", "a tracking"), ("publishable", "a publishable")],
)
def test_articles(word: str, said: str) -> None:
    assert a_or_an(word) == said


def test_a_value_quoted_in_a_message_is_cut_when_long() -> None:
    assert quoted("a@b") == "'a@b'"
    long = "x" * 2_000_000
    assert quoted(long) == f"{'x' * 100!r}… (2000000 characters)"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a", "labels": {"ok": "x", "bad": "long"}}, "labels.bad"),
        ({"name": "a", "groups": {"g": [], "h": [{"name": "f", "type": "x"}]}}, "groups.h[0].type"),
        ({"name": "a", "labels": {"a.b": "long"}}, "labels[...]"),
    ],
)  # fmt: skip
def test_a_value_of_an_object_is_named_by_its_key(body: object, field: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(msgspec.json.encode(body), type=Body)
    assert from_validation_error(caught.value, Body, body).field == field
    # Without what was sent, msgspec's "[...]" stays.
    assert "[...]" in str(from_validation_error(caught.value, Body).field)


def test_a_number_out_of_range_is_a_sentence() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"name": "a", "limit": 1e400}', type=Body)
    error = from_validation_error(caught.value, Body)
    assert (error.field, error.message) == (
        "limit",
        "limit is a number out of range; send a smaller one.",
    )
    # Said the same of a number found out of range without msgspec's message (a collector's).
    assert out_of_range("limit") == error.message
