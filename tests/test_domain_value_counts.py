"""Which fields are counted per value, and under which text (waypost/domain/value_counts.py)."""

from __future__ import annotations

from waypost.domain.fields import FieldSpec
from waypost.domain.value_counts import counted_fields, counted_values, value_text


def test_only_integer_and_decimal_fields_are_counted() -> None:
    specs = [
        FieldSpec(name=name, type=kind)  # type: ignore[arg-type]
        for name, kind in [
            ("amount", "decimal"), ("note", "text"), ("term", "integer"), ("ok", "boolean"),
            ("at", "datetime"), ("site", "url"), ("mail", "email"), ("tel", "phone"),
        ]
    ]  # fmt: skip
    assert counted_fields(specs) == ("amount", "term")


def test_values_are_counted_under_their_stored_text() -> None:
    assert value_text(12) == "12"
    assert value_text(-9_223_372_036_854_775_808) == "-9223372036854775808"
    assert value_text("1000.10") == "1000.10"  # as stored: not the same row as "1000.1"
    assert value_text(True) is None
    assert value_text(None) is None
    assert value_text("9" * 49) is None


def test_an_activitys_counted_values() -> None:
    fields = {"amount": "5.5", "term": 24, "note": "x", "ok": False}
    assert counted_values(("amount", "term"), fields) == [("amount", "5.5"), ("term", "24")]
    assert counted_values(("amount", "term"), {"note": "x"}) == []
    assert counted_values(("amount",), None) == []
