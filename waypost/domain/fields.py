"""Typed fields of activity types, and the rules for declaring and changing them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec

from waypost.domain.display_names import Description

FieldType = Literal["text", "integer", "decimal", "boolean", "datetime", "url", "email", "phone"]

FIELD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,99}\Z")
MAX_TEXT_LENGTH = 100_000  # the largest max_length a text field may declare


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """One field of an activity type. At most one field of a type is primary."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    type: FieldType
    required: bool = False
    primary: bool = False
    description: Description = ""
    max_length: Annotated[int, msgspec.Meta(ge=1, le=MAX_TEXT_LENGTH)] | None = None


class FieldRuleError(ValueError):
    """A field declaration breaks a rule; ``field`` names where, for the error answer."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_fields(fields: Sequence[FieldSpec]) -> None:
    """Names valid and unique (ignoring letter case, and '-' and '_' alike), at most one
    primary, max_length on text."""
    seen: set[str] = set()
    primaries = 0
    for i, spec in enumerate(fields):
        where = f"fields[{i}]"
        if not FIELD_NAME.match(spec.name):
            raise FieldRuleError(
                f"Field name {spec.name!r} may hold letters, digits, '_' and '-' only.",
                f"{where}.name",
            )
        # Ortto's keys name fields with '-' and '_' alike, so names may not differ by them.
        plain = spec.name.lower().replace("-", "_")
        if plain in seen:
            raise FieldRuleError(f"Field name {spec.name!r} is used twice.", f"{where}.name")
        seen.add(plain)
        if spec.primary:
            primaries += 1
            if primaries > 1:
                raise FieldRuleError("At most one field can be primary.", f"{where}.primary")
        if spec.max_length is not None and spec.type != "text":
            raise FieldRuleError("max_length applies to text fields only.", f"{where}.max_length")


def check_field_change(old: Sequence[FieldSpec], new: Sequence[FieldSpec]) -> None:
    """Once activities exist, fields may be added as optional and rules relaxed; nothing else.

    Stored activities never change, so a field they carry keeps its name and type for good,
    and a field that becomes required, or allows shorter text, would make earlier activities
    invalid after the fact.
    """
    by_name = {spec.name: spec for spec in new}
    for spec in old:
        now = by_name.get(spec.name)
        if now is None:
            raise FieldRuleError(
                f"Field {spec.name!r} cannot be removed: activities of this type exist. "
                "Make it optional instead.",
                "fields",
            )
        if now.type != spec.type:
            raise FieldRuleError(
                f"Field {spec.name!r} cannot change type from {spec.type} to {now.type}: "
                "activities of this type exist. Add a new field instead.",
                "fields",
            )
        if now.primary != spec.primary:
            raise FieldRuleError(
                f"Field {spec.name!r} cannot change primary: activities of this type exist.",
                "fields",
            )
    old_by_name = {spec.name: spec for spec in old}
    for i, spec in enumerate(new):
        before = old_by_name.get(spec.name)
        if spec.required and (before is None or not before.required):
            what = "New field" if before is None else "Field"
            raise FieldRuleError(
                f"{what} {spec.name!r} must be optional: activities of this type exist.",
                f"fields[{i}].required",
            )
        if (
            before is not None
            and spec.max_length is not None
            and (before.max_length is None or spec.max_length < before.max_length)
        ):
            raise FieldRuleError(
                f"Field {spec.name!r} cannot get a shorter max_length: activities of this "
                "type exist.",
                f"fields[{i}].max_length",
            )
