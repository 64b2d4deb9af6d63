"""A group's condition in words, for its page: "Loan calculator at least 3 times in the last
30 days", with activity types, consents and groups by their names.

The condition was checked when it was saved (docs/contact-groups.md), so every shape here is a
valid one; a part this module does not know is shown as its JSON rather than hidden.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTACT_LABELS = {
    "email": "Email",
    "first_name": "First name",
    "middle_name": "Middle name",
    "last_name": "Last name",
    "birthday": "Birthday",
    "mobile_phone": "Mobile phone",
    "business_phone": "Business phone",
    "company_name": "Company name",
    "job_title": "Job title",
    "address1": "Address",
    "city": "City",
    "zip": "ZIP code",
    "country": "Country",
    "state": "State",
    "notes": "Notes",
    "created_at": "Created",
    "updated_at": "Updated",
}
FIELD_OPS = {"eq": "=", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "contains": "contains"}


@dataclass(frozen=True)
class Names:
    """Display names for the code names and ids a condition refers to."""

    types: Mapping[str, str] = field(default_factory=dict)
    consents: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Phrase:
    """One node of the condition in words; ``link`` points to the group a node names."""

    text: str
    children: list[Phrase] = field(default_factory=list)
    link: str | None = None


def describe(condition: Any, names: Names) -> Phrase:
    """The condition as a tree of phrases."""
    if not isinstance(condition, dict) or len(condition) != 1:
        return Phrase(json.dumps(condition))
    ((key, value),) = condition.items()
    if key in ("all", "any") and isinstance(value, list):
        head = "All of these:" if key == "all" else "At least one of these:"
        return Phrase(head, [describe(item, names) for item in value])
    if key == "not":
        inner = describe(value, names)
        if inner.children:
            negated = {
                "All of these:": "Not all of these:",
                "At least one of these:": "None of these:",
            }
            return Phrase(negated.get(inner.text, f"Not: {inner.text}"), inner.children)
        return Phrase(f"Not: {inner.text}", link=inner.link)
    if key == "activity" and isinstance(value, dict):
        return Phrase(_activity(value, names))
    if key == "contact" and isinstance(value, dict):
        return Phrase(_contact(value))
    if key == "consent":
        return Phrase(f"Agrees to {names.consents.get(str(value), str(value))}")
    if key == "group":
        group_id = str(value)
        name = names.groups.get(group_id)
        text = f"In the group {name}" if name else f"In the group {group_id} (deleted)"
        return Phrase(text, link=f"/admin/groups/{group_id}" if name else None)
    return Phrase(json.dumps(condition))


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n:,} times")


def _activity(value: dict[str, Any], names: Names) -> str:
    code = str(value.get("type", ""))
    parts = [names.types.get(code, code)]
    if "at_most" in value:
        parts.append(f"at most {_times(int(value['at_most']))}")
    elif "exactly" in value:
        n = int(value["exactly"])
        parts.append("never" if n == 0 else f"exactly {_times(n)}")
    else:
        parts.append(f"at least {_times(int(value.get('at_least', 1)))}")
    if "within_days" in value:
        days = int(value["within_days"])
        parts.append("today" if days == 1 else f"in the last {days:,} days")
    elif isinstance(value.get("between"), dict):
        parts.append(f"from {value['between'].get('from')} to {value['between'].get('to')}")
    elif parts[-1] != "never":
        parts.append("ever")
    filters = [
        f"{name} {FIELD_OPS.get(op, op)} {_operand(operand)}"
        for name, ops in (value.get("fields") or {}).items()
        if isinstance(ops, dict)
        for op, operand in ops.items()
    ]
    if filters:
        parts.append("with " + " and ".join(filters))
    return " ".join(parts)


def _operand(value: Any) -> str:
    # As the condition's JSON writes it: true, not Python's True.
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _quoted(value: Any) -> str:
    return f"“{value}”"


def _contact(value: dict[str, Any]) -> str:
    name = str(value.get("field", ""))
    label = (
        f"Attribute {name[len('attributes.') :]}"
        if name.startswith("attributes.")
        else CONTACT_LABELS.get(name, name)
    )
    op, operand = next(((k, v) for k, v in value.items() if k != "field"), ("", None))
    if op == "exists":
        return f"{label} is {'set' if operand else 'not set'}"
    if op == "in" and isinstance(operand, list):
        return f"{label} is one of {', '.join(_quoted(v) for v in operand)}"
    words = {
        "equals": "is",
        "not_equals": "is not",
        "contains": "contains",
        "before": "is before",
        "after": "is after",
    }
    if op in ("before", "after"):
        return f"{label} {words[op]} {operand}"
    return f"{label} {words.get(op, op)} {_quoted(operand)}"
