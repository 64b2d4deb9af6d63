"""Filters on activity field values, as given in query parameters.

``field.<name>=<value>`` is equality; ``field.<name>.gt``, ``.gte``, ``.lt``, ``.lte`` compare
numbers and datetimes; ``field.<name>.contains`` finds text (case-insensitively). Values are
parsed by the field's declared type, so ``field.amount.gte=100.50`` compares decimals.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from waypost.domain.field_values import (
    INT64_MAX,
    INT64_MIN,
    FieldValueError,
    canonical_value,
    parse_datetime,
)
from waypost.domain.fields import FieldSpec
from waypost.error_words import quoted

Op = Literal["eq", "gt", "gte", "lt", "lte", "contains"]
OPS: frozenset[str] = frozenset({"eq", "gt", "gte", "lt", "lte", "contains"})
ORDERED_TYPES = frozenset({"integer", "decimal", "datetime"})
TEXT_TYPES = frozenset({"text", "url", "email", "phone"})
# The longest value a filter takes, as a report's filters (a longer text is not something
# anyone searches for, and a LIKE pattern's length is limited by the database).
MAX_FILTER_LENGTH = 1000


def operators(field_type: str) -> tuple[str, ...]:
    """The operators a filter on a field of this type takes, in the order to offer them."""
    ranges = ("gt", "gte", "lt", "lte") if field_type in ORDERED_TYPES else ()
    return ("eq", *ranges, *(("contains",) if field_type in TEXT_TYPES else ()))


@dataclass(frozen=True)
class FieldFilter:
    """One condition on one field: its spec, the operator and the value, parsed."""

    spec: FieldSpec
    op: Op
    value: object


class FilterError(ValueError):
    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def parse_filters(
    specs: Sequence[FieldSpec],
    params: Mapping[str, str],
    max_length: int | None = MAX_FILTER_LENGTH,
) -> list[FieldFilter]:
    """``{"amount.gte": "100"}`` (the part after ``field.``) -> typed filters. ``max_length``:
    the longest value taken (None: any, for filters saved in a group's condition, held to
    the limit when they were saved, or compared in Python, as a playbook trigger's)."""
    by_name = {spec.name: spec for spec in specs}
    filters: list[FieldFilter] = []
    for key, raw in params.items():
        parameter = f"field.{key}"
        name, _, op = key.partition(".")
        op = op or "eq"
        spec = by_name.get(name)
        if spec is None:
            raise FilterError(f"The activity type has no field {quoted(name)}.", parameter)
        if op not in OPS:
            raise FilterError(
                f"Unknown operator {quoted(op)}; use {', '.join(sorted(OPS))}.", parameter
            )
        allowed = ", ".join(operators(spec.type))
        if op in ("gt", "gte", "lt", "lte") and spec.type not in ORDERED_TYPES:
            raise FilterError(
                f"{name} is a {spec.type} field; ranges apply to integer, decimal and datetime. "
                f"Use {allowed}.",
                parameter,
            )
        if op == "contains" and spec.type not in TEXT_TYPES:
            raise FilterError(
                f"contains applies to text fields (text, url, email, phone); {name} is a "
                f"{spec.type} field. Use {allowed}.",
                parameter,
            )
        if max_length is not None and len(raw) > max_length:
            # A text field may hold more, but a filter's value becomes a LIKE pattern or a
            # bound parameter, which the database limits (SQLite: 50,000 bytes a pattern).
            raise FilterError(
                f"A field filter's value may be at most {max_length} characters.", parameter
            )
        filters.append(FieldFilter(spec, op, _parse(spec, op, raw, parameter)))  # type: ignore[arg-type]
    return filters


def _parse(spec: FieldSpec, op: str, raw: str, parameter: str) -> object:
    if "\x00" in raw:
        # No stored value holds NUL, and PostgreSQL cannot even compare text with one.
        raise FilterError("A field filter cannot hold the NUL character; remove it.", parameter)
    try:
        if op == "contains":
            return raw
        if spec.type == "integer":
            integer = int(raw)
            # Stored integers are 64-bit; a wider bound cannot be sent to the database.
            if not INT64_MIN <= integer <= INT64_MAX:
                raise ValueError(raw)
            return integer
        if spec.type == "decimal":
            # As a stored value, so at most 38 digits: "1e999999999" is no NUMERIC.
            return decimal.Decimal(str(canonical_value(spec, raw, parameter)))
        if spec.type == "boolean":
            # In any letter case: True and FALSE are what people type, and what Python shows.
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if spec.type == "datetime":
            return parse_datetime(raw)
        return canonical_value(spec, raw, parameter)
    except (ValueError, ArithmeticError, FieldValueError):
        raise FilterError(f"{quoted(raw)} is not a {spec.type} value.", parameter) from None


def as_datetime(value: object) -> dt.datetime:
    assert isinstance(value, dt.datetime)
    return value
