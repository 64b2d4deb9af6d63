"""Dates and times of a decoded request that have a UTC form.

A query parameter or body property typed as a date and time takes ISO 8601 with any offset,
and the database keeps every time in UTC. ``0001-01-01T00:00:00+01:00`` and
``9999-12-31T23:59:59-23:59`` have no UTC form (Python's datetime stops at the years 1 and
9999), so they are refused with a ``400 invalid_field`` naming the parameter rather than
failing when they are compared or stored.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import msgspec
from msgspec import inspect

from waypost.domain.field_values import in_utc
from waypost.errors import ApiError


def check_date_times(value: Any, value_type: type) -> None:
    """Refuse a date and time in ``value`` (decoded as ``value_type``) that has no UTC form."""
    if _holds_date_times(value_type):
        _check(value, "")


@functools.cache
def _holds_date_times(value_type: type) -> bool:
    """Whether ``value_type`` holds a date and time anywhere: only then is a value walked."""
    return _any_date_time(inspect.type_info(value_type), set())


def _any_date_time(node: object, seen: set[int]) -> bool:
    if isinstance(node, inspect.DateTimeType):
        return True
    if id(node) in seen:  # a type that holds itself
        return False
    seen.add(id(node))
    if isinstance(node, inspect.StructType | inspect.DataclassType | inspect.TypedDictType):
        return any(_any_date_time(f.type, seen) for f in node.fields)
    if isinstance(node, inspect.UnionType):
        return any(_any_date_time(t, seen) for t in node.types)
    if isinstance(node, inspect.TupleType):
        return any(_any_date_time(t, seen) for t in node.item_types)
    if isinstance(node, inspect.DictType):
        return _any_date_time(node.value_type, seen)
    if isinstance(node, inspect.CollectionType):  # lists, sets, tuples of one type
        return _any_date_time(node.item_type, seen)
    return False


def _check(value: Any, where: str) -> None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            try:
                in_utc(value)
            except ValueError:
                raise ApiError(
                    400,
                    "invalid_field",
                    f"{where or 'The date and time'} is out of range: in UTC it falls before "
                    "the year 1 or after the year 9999.",
                    where or None,
                ) from None
    elif isinstance(value, msgspec.Struct):
        names = zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True)
        for name, encoded in names:
            _check(getattr(value, name), f"{where}.{encoded}" if where else encoded)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(item, f"{where}.{key}" if where else str(key))
