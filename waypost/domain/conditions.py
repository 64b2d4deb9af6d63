"""The contact group condition language: parsed from JSON, checked, and walked.

```json
{"all": [
  {"activity": {"type": "custom_loan_calculator", "at_least": 3, "within_days": 30}},
  {"not": {"activity": {"type": "datainput", "within_days": 7}}},
  {"contact": {"field": "country", "equals": "USA"}},
  {"consent": "TrackingConsent"},
  {"group": "0190f1c2-..."}
]}
```

- ``all`` / ``any`` take a list; ``not`` takes one condition.
- ``activity``: ``type`` (code name); a count, one of ``at_least`` (default 1), ``at_most``,
  ``exactly``; a window, ``within_days`` (today and the days before it, in UTC) or
  ``between`` (``{"from": "2026-01-01", "to": "2026-01-31"}``, inclusive), or none for all
  time; ``fields``: filters on field values, ``{"amount": {"gte": "1000"}}`` with ``eq``,
  ``gt``, ``gte``, ``lt``, ``lte``, ``contains``.
- ``contact``: ``field`` (a contact field, ``created_at``, or ``attributes.<name>``) with
  one of ``equals``, ``not_equals``, ``contains``, ``in`` (a list), ``exists`` (true or
  false), ``before`` / ``after`` (dates, for ``birthday`` and ``created_at``).
- ``consent``: the code name of a consent the contact currently agrees to.
- ``group``: the id of another group the contact is in (cycles are refused).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from waypost.domain.contact_fields import CONTACT_FIELDS
from waypost.domain.field_filters import MAX_FILTER_LENGTH
from waypost.error_words import quoted

CONTACT_COLUMNS = frozenset({*CONTACT_FIELDS.values(), "created_at", "updated_at"})
DATE_COLUMNS = frozenset({"birthday", "created_at", "updated_at"})
FIELD_OPS = frozenset({"eq", "gt", "gte", "lt", "lte", "contains"})
CONTACT_OPS = ("equals", "not_equals", "contains", "in", "exists", "before", "after")
MAX_DEPTH = 12
# SQLite refuses a compound SELECT of more than 500 terms, and every condition is one.
MAX_CONDITIONS = 200
# The longest text a condition compares with (a contact field's value, a field filter's), as
# the activity log's and a report's filters: a longer one is no value anyone looks for, and it
# would become a LIKE pattern or a parameter the database limits.
MAX_TEXT = MAX_FILTER_LENGTH
# The most values an ``in`` list takes, and all the lists of one condition together: each is a
# parameter of one statement, and SQLite takes at most 32,766.
MAX_IN = 1000
MAX_VALUES = 10_000
# The most field filters one activity condition takes.
MAX_FIELD_FILTERS = 20
# The longest name (an activity type's or a consent's code name, a field's, an attribute's).
MAX_NAME = 100


class ConditionError(ValueError):
    """A condition that cannot be evaluated; ``path`` says where (``all[1].activity``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


@dataclass(frozen=True)
class ActivityCondition:
    type: str
    count: Literal["at_least", "at_most", "exactly"]
    n: int
    within_days: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    fields: tuple[tuple[str, str, Any], ...] = ()

    def window(self, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
        """The first and last day counted (None: unbounded)."""
        if self.within_days is not None:
            return today - dt.timedelta(days=self.within_days - 1), None
        return self.start, self.end


@dataclass(frozen=True)
class ContactCondition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class ConsentCondition:
    consent: str


@dataclass(frozen=True)
class GroupCondition:
    group: uuid.UUID


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = (
    ActivityCondition | ContactCondition | ConsentCondition | GroupCondition | All | AnyOf | Not
)


def parse_condition(
    data: Any, path: str = "", depth: int = 0, *, limits: bool = False
) -> Condition:
    """Parse and check a condition; ConditionError says what and where. ``limits``: also hold
    it to :func:`check_limits`, as a condition sent to be saved or tried is."""
    condition = _parse(data, path, depth)
    if depth == 0 and sum(1 for _ in walk(condition)) > MAX_CONDITIONS:
        raise ConditionError(
            f"at most {MAX_CONDITIONS} conditions in one group; "
            "split it into groups that refer to each other",
            path,
        )
    if limits and depth == 0:
        check_limits(condition, path)
    return condition


def check_limits(condition: Condition, path: str = "") -> None:
    """Refuse a condition past the limits a new one is held to (a text compared, a list, the
    field filters, a name): ConditionError names where. Conditions saved before a limit was
    set are read as they are."""
    values = 0
    for where, node in located(condition, path):
        if isinstance(node, ContactCondition):
            if len(node.field) > len("attributes.") + MAX_NAME:
                raise ConditionError(f"unknown contact field {quoted(node.field)}", where)
            texts = node.value if node.op == "in" else [node.value]
            if node.op == "in":
                if len(texts) > MAX_IN:
                    raise ConditionError(f"in takes at most {MAX_IN} values", where)
                values += len(texts)
            if node.op in ("equals", "not_equals", "contains", "in") and any(
                len(text) > MAX_TEXT for text in texts
            ):
                raise ConditionError(f"a value may be at most {MAX_TEXT} characters", where)
        elif isinstance(node, ActivityCondition):
            if len(node.type) > MAX_NAME:
                raise ConditionError(
                    f"type: a code name is at most {MAX_NAME} characters, not {len(node.type)}",
                    where,
                )
            if len(node.fields) > MAX_FIELD_FILTERS:
                raise ConditionError(
                    f"at most {MAX_FIELD_FILTERS} field filters in one activity condition", where
                )
            for name, op, operand in node.fields:
                if len(name) > MAX_NAME:
                    raise ConditionError(f"fields: no field is named {quoted(name)}", where)
                if isinstance(operand, str) and len(operand) > MAX_TEXT:
                    raise ConditionError(
                        f"fields.{name}.{op} takes at most {MAX_TEXT} characters", where
                    )
        elif isinstance(node, ConsentCondition) and len(node.consent) > MAX_NAME:
            raise ConditionError(
                f"a consent code name is at most {MAX_NAME} characters, not {len(node.consent)}",
                where,
            )
    if values > MAX_VALUES:
        raise ConditionError(
            f"at most {MAX_VALUES} values in all the in lists of one group together", path
        )


def _parse(data: Any, path: str, depth: int) -> Condition:
    if depth > MAX_DEPTH:
        raise ConditionError(f"nested deeper than {MAX_DEPTH} levels", path)
    if not isinstance(data, dict) or len(data) != 1:
        raise ConditionError(
            "a condition is an object with one key: all, any, not, activity, contact, "
            "consent or group",
            path,
        )
    ((key, value),) = data.items()
    where = f"{path}.{key}" if path else key
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ConditionError("takes a non-empty list of conditions", where)
        items = tuple(_parse(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        return All(items) if key == "all" else AnyOf(items)
    if key == "not":
        return Not(_parse(value, where, depth + 1))
    if key == "activity":
        return _activity(value, where)
    if key == "contact":
        return _contact(value, where)
    if key == "consent":
        if not isinstance(value, str) or not value:
            raise ConditionError("takes a consent code name", where)
        return ConsentCondition(value)
    if key == "group":
        try:
            return GroupCondition(uuid.UUID(str(value)))
        except ValueError:
            raise ConditionError("takes a group id", where) from None
    raise ConditionError(f"unknown condition {quoted(key)}", where)


def _activity(value: Any, where: str) -> ActivityCondition:
    if not isinstance(value, dict):
        raise ConditionError("takes an object with type", where)
    allowed = {"type", "at_least", "at_most", "exactly", "within_days", "between", "fields"}
    unknown = set(value) - allowed
    if unknown:
        raise ConditionError(f"unknown key {quoted(sorted(unknown)[0])}", where)
    type_code = value.get("type")
    if not isinstance(type_code, str) or not type_code:
        raise ConditionError("needs type, an activity type's code name", where)
    counts: list[Literal["at_least", "at_most", "exactly"]] = [
        k for k in ("at_least", "at_most", "exactly") if k in value
    ]
    if len(counts) > 1:
        raise ConditionError("give one of at_least, at_most, exactly", where)
    count = counts[0] if counts else "at_least"
    n = value.get(count, 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 1_000_000:
        raise ConditionError(f"{count} takes a whole number from 0", where)
    if "within_days" in value and "between" in value:
        raise ConditionError("give within_days or between, not both", where)
    within = value.get("within_days")
    if within is not None and (
        isinstance(within, bool) or not isinstance(within, int) or not 1 <= within <= 3660
    ):
        raise ConditionError("within_days takes a number of days from 1", where)
    start = end = None
    if "between" in value:
        between = value["between"]
        if not isinstance(between, dict) or set(between) != {"from", "to"}:
            raise ConditionError('between takes {"from": date, "to": date}', where)
        try:
            start = dt.date.fromisoformat(str(between["from"]))
            end = dt.date.fromisoformat(str(between["to"]))
        except ValueError:
            raise ConditionError("between takes dates like 2026-01-31", where) from None
        if end < start:
            raise ConditionError("between ends before it starts", where)
    fields: list[tuple[str, str, Any]] = []
    raw_fields = value.get("fields", {})
    if not isinstance(raw_fields, dict):
        raise ConditionError('fields takes {"name": {"gte": value}}', where)
    for name, ops in raw_fields.items():
        if not isinstance(ops, dict) or not ops:
            raise ConditionError(f'fields.{name} takes {{"eq": value}} and the like', where)
        for op, operand in ops.items():
            if op not in FIELD_OPS:
                raise ConditionError(f"fields.{name}: unknown operator {quoted(op)}", where)
            fields.append((name, op, operand))
    return ActivityCondition(type_code, count, n, within, start, end, tuple(fields))


def _contact(value: Any, where: str) -> ContactCondition:
    if not isinstance(value, dict) or "field" not in value or len(value) != 2:
        raise ConditionError(f"takes field and one of {', '.join(CONTACT_OPS)}", where)
    name = value["field"]
    if not isinstance(name, str) or not (
        name in CONTACT_COLUMNS or (name.startswith("attributes.") and len(name) > 11)
    ):
        if not isinstance(name, str):
            raise ConditionError("unknown contact field: field takes a field's name", where)
        raise ConditionError(f"unknown contact field {quoted(name)}", where)
    ((op, operand),) = ((k, v) for k, v in value.items() if k != "field")
    if op not in CONTACT_OPS:
        raise ConditionError(f"unknown operator {quoted(op)}", where)
    if op == "in" and (not isinstance(operand, list) or not operand):
        raise ConditionError("in takes a non-empty list", where)
    if op == "exists" and not isinstance(operand, bool):
        raise ConditionError("exists takes true or false", where)
    if op in ("before", "after"):
        if name not in DATE_COLUMNS:
            raise ConditionError(f"{op} applies to dates: {', '.join(sorted(DATE_COLUMNS))}", where)
        try:
            operand = dt.date.fromisoformat(str(operand))
        except ValueError:
            raise ConditionError(f"{op} takes a date like 2026-01-31", where) from None
    if op in ("equals", "not_equals", "contains", "in"):
        if name in DATE_COLUMNS:
            raise ConditionError(f"{op} applies to text; compare {name} with before / after", where)
        # Contact fields and attributes compare as text: 12345 means "12345".
        if op == "in":
            operand = [
                _text(item, f"{op} takes a list of strings or numbers", where) for item in operand
            ]
        else:
            operand = _text(operand, f"{op} takes a string or a number", where)
    return ContactCondition(name, op, operand)


def _text(value: Any, message: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConditionError(message, where)
    return str(value)


def walk(condition: Condition) -> Iterator[Condition]:
    """Every condition in the tree, the root first."""
    yield condition
    if isinstance(condition, All | AnyOf):
        for item in condition.items:
            yield from walk(item)
    elif isinstance(condition, Not):
        yield from walk(condition.item)


_KEYS: dict[type, str] = {
    All: "all",
    AnyOf: "any",
    Not: "not",
    ActivityCondition: "activity",
    ContactCondition: "contact",
    ConsentCondition: "consent",
    GroupCondition: "group",
}


def located(condition: Condition, path: str = "") -> Iterator[tuple[str, Condition]]:
    """Every condition with where it stands, as ConditionError names places
    (``all[1].activity``), the root first."""
    key = _KEYS[type(condition)]
    where = f"{path}.{key}" if path else key
    yield where, condition
    if isinstance(condition, All | AnyOf):
        for i, item in enumerate(condition.items):
            yield from located(item, f"{where}[{i}]")
    elif isinstance(condition, Not):
        yield from located(condition.item, where)


def referenced_groups(condition: Condition) -> set[uuid.UUID]:
    return {c.group for c in walk(condition) if isinstance(c, GroupCondition)}


def uses_time_window(condition: Condition) -> bool:
    """Whether membership can change with the date alone (a window slides past a contact)."""
    return any(
        isinstance(c, ActivityCondition) and c.within_days is not None for c in walk(condition)
    )


@dataclass(frozen=True)
class Dependencies:
    """What a condition reads. A change to anything else cannot change its result, so an
    incremental update skips the groups a change does not concern."""

    types: frozenset[str]
    contact_fields: bool
    consents: bool
    groups: frozenset[uuid.UUID]


def dependencies(condition: Condition) -> Dependencies:
    nodes = list(walk(condition))
    return Dependencies(
        types=frozenset(c.type for c in nodes if isinstance(c, ActivityCondition)),
        contact_fields=any(isinstance(c, ContactCondition) for c in nodes),
        consents=any(isinstance(c, ConsentCondition) for c in nodes),
        groups=frozenset(c.group for c in nodes if isinstance(c, GroupCondition)),
    )


@dataclass(frozen=True)
class Changes:
    """What changed for some contacts: activities of these types were stored for them, their
    fields or their consents changed, or ``everything`` (a new contact, a merge), which any
    condition may depend on."""

    types: frozenset[uuid.UUID] = frozenset()
    contact_fields: bool = False
    consents: bool = False
    everything: bool = False

    def __or__(self, other: Changes) -> Changes:
        return Changes(
            self.types | other.types,
            self.contact_fields or other.contact_fields,
            self.consents or other.consents,
            self.everything or other.everything,
        )


EVERYTHING = Changes(everything=True)
FIELDS_CHANGED = Changes(contact_fields=True)
CONSENTS_CHANGED = Changes(consents=True)
