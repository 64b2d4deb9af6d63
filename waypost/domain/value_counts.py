"""Which activity fields are counted per value, and the text a value is counted under.

The writer keeps, beside the activities, a count per activity type, UTC day, field and value
(``activity_value_counts``) for the fields a report sums: integer and decimal fields. A numeric
report (sum, average, min, max per period) reads those counts instead of every activity's row;
an exact sum is each value times its count, added up as a decimal. Text-like fields (text,
url, email, phone, datetime) are left out, as their values are mostly each activity's own, so
their counts would be as many rows as the activities; so are booleans, which nothing sums.
See docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from waypost.domain.fields import FieldSpec

COUNTED_TYPES = frozenset({"integer", "decimal"})
# A decimal has at most 38 digits (waypost.domain.field_values), a sign and a point.
MAX_VALUE_LENGTH = 48

ValueKey = tuple[str, str]  # (field name, value text)


def counted_fields(specs: Iterable[FieldSpec]) -> tuple[str, ...]:
    """The names of the fields whose values are counted, in declaration order."""
    return tuple(spec.name for spec in specs if spec.type in COUNTED_TYPES)


def value_text(value: object) -> str | None:
    """The text a stored (canonical) integer or decimal value is counted under: an integer's
    digits, a decimal's string as stored. None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and len(value) <= MAX_VALUE_LENGTH:
        return value
    return None


def counted_values(names: Sequence[str], fields: Mapping[str, object] | None) -> list[ValueKey]:
    """The (field, value) pairs of one activity's ``fields`` that are counted."""
    if not fields:
        return []
    out = []
    for name in names:
        text = value_text(fields.get(name))
        if text is not None:
            out.append((name, text))
    return out
