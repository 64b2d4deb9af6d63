"""The report builder's form and a report's definition, both ways, and the words a report is
shown with (docs/admin-ui.md#reports).

The builder is a plain GET form, so a report is a URL that can be bookmarked and works
without scripts: ``kind``, ``since``, ``until``, ``granularity``, ``time_zone``, ``type`` and
``channel`` (repeated), ``group``, ``field``, ``top``, ``contacts`` (a checkbox), ``buckets``
(edges separated by commas),
field filters as rows ``filter-<n>-field``, ``-op``, ``-value``, funnel steps as
``step-<n>-type`` with their filters as rows ``sf-<k>-step`` (the step's number), ``-field``,
``-op``, ``-value``, and ``window_days``. Only the controls of the chosen kind are read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import msgspec

from waypost.admin.condition_text import FIELD_OPS
from waypost.admin.forms import Form
from waypost.domain.report_definitions import MAX_STEPS, ReportDefinition, ReportResult
from waypost.errors import ApiError, from_validation_error, invalid

KIND_LABELS = {
    "counts": "Activities and contacts per period",
    "breakdown": "Breakdown by a field's values",
    "numeric": "Sum, average, minimum and maximum of a number field",
    "funnel": "Funnel: who went on to do what, within a window",
    "group": "A contact group's size, entries and exits",
}
GRANULARITY_LABELS = {"day": "Day", "week": "Week (Monday to Sunday)", "month": "Month"}
OPERATORS = [(op, FIELD_OPS[op]) for op in ("eq", "gt", "gte", "lt", "lte", "contains")]
DEFAULT_DAYS = 30
# The controls each kind reads, besides the range, granularity, time zone and channels.
KIND_CONTROLS: dict[str, frozenset[str]] = {
    "counts": frozenset({"types", "group", "filters"}),
    "breakdown": frozenset({"types", "group", "filters", "field", "top", "contacts", "buckets"}),
    "numeric": frozenset({"types", "group", "filters", "field"}),
    "funnel": frozenset({"group", "steps", "window_days"}),
    "group": frozenset({"group"}),
}
# Where an error about a definition's property is shown in the form.
_CONTROLS = (
    ("types", "type"),
    ("channels", "channel"),
    ("filters", "filters"),
    ("buckets", "buckets"),
    ("steps", "steps"),
    ("window_days", "window_days"),
)


@dataclass(frozen=True)
class Names:
    """What reports name by code name or id, by display name: activity types by code name,
    contact groups by id (and by name, as the builder and the API may give either)."""

    types: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)


def default_range(today: dt.date) -> tuple[dt.date, dt.date]:
    """The builder's range before one is chosen: the last 30 days, today included."""
    return today - dt.timedelta(days=DEFAULT_DAYS - 1), today


def _filters_from(rows: Sequence[dict[str, str]]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for row in rows:
        name = row.get("field", "")
        if not name:
            continue
        op = row.get("op", "eq") or "eq"
        filters[name if op == "eq" else f"{name}.{op}"] = row.get("value", "")
    return filters


def _whole(form: Form, name: str, label: str, default: int) -> int:
    value = form.optional_int(name, label)
    return default if value is None else value


def definition_from(form: Form) -> ReportDefinition:
    """The definition the form describes; ApiError (400) naming the control at fault."""
    kind = form.get("kind") or "counts"
    if kind not in KIND_LABELS:
        raise invalid(f"Choose a kind of report (got {kind!r}).", "kind")
    takes = KIND_CONTROLS[kind]
    raw: dict[str, Any] = {
        "kind": kind,
        "since": form.get("since"),
        "until": form.get("until"),
        "granularity": form.get("granularity") or "day",
        "time_zone": form.get("time_zone") or "UTC",
        "channels": [c for c in form.getlist("channel") if c],
    }
    if "types" in takes:
        raw["types"] = [t for t in form.getlist("type") if t]
    if "group" in takes and form.get("group"):
        raw["group"] = form.get("group")
    if "filters" in takes:
        raw["filters"] = _filters_from(form.rows("filter"))
    if "field" in takes and form.get("field"):
        raw["field"] = form.get("field")
    if "top" in takes:
        raw["top"] = _whole(form, "top", "Top values", 10)
    if "contacts" in takes:
        raw["contacts"] = bool(form.get("contacts"))
    if "buckets" in takes and form.get("buckets"):
        raw["buckets"] = [e.strip() for e in form.get("buckets").split(",") if e.strip()]
    if "steps" in takes:
        step_filters = form.rows("sf")
        steps = []
        for i, row in enumerate(form.rows("step")):
            if not row.get("type"):
                continue
            mine = [r for r in step_filters if r.get("step") == str(i)]
            steps.append({"type": row["type"], "filters": _filters_from(mine)})
        raw["steps"] = steps
    if "window_days" in takes:
        raw["window_days"] = _whole(form, "window_days", "Window", 7)
    for name in ("since", "until"):
        if not raw[name]:
            raise invalid(f"Give the {'first' if name == 'since' else 'last'} day.", name)
    try:
        return msgspec.convert(raw, ReportDefinition)
    except msgspec.ValidationError as exc:
        raise on_form(from_validation_error(exc, ReportDefinition)) from None


def on_form(error: ApiError) -> ApiError:
    """The error with its field named as the form's control (``types`` -> ``type``,
    ``steps[1].type`` -> ``step-1-type``); a saved report's ``definition.`` prefix dropped."""
    field = (error.field or "").removeprefix("definition.")
    if field.startswith("steps[") and field.endswith("].type"):
        return ApiError(error.status, error.code, error.message, f"step-{field[6:-6]}-type")
    for prefix, control in _CONTROLS:
        if field == prefix or field.startswith((prefix + ".", prefix + "[")):
            return ApiError(error.status, error.code, error.message, control)
    return ApiError(error.status, error.code, error.message, field or None)


def _rows(filters: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for key, value in filters.items():
        name, _, op = key.partition(".")
        rows.append({"field": name, "op": op or "eq", "value": value})
    return rows


def values_of(definition: ReportDefinition) -> dict[str, Any]:
    """The form's values for a definition."""
    d = definition
    steps = [{"type": s.type, "filters": _rows(s.filters)} for s in d.steps]
    steps += [{"type": "", "filters": []}] * (MAX_STEPS - len(steps))
    return {
        "kind": d.kind,
        "since": d.since.isoformat(),
        "until": d.until.isoformat(),
        "granularity": d.granularity,
        "time_zone": d.time_zone,
        "types": list(d.types),
        "channels": list(d.channels),
        "group": d.group or "",
        "field": d.field or "",
        "top": str(d.top),
        "contacts": d.contacts,
        "buckets": ", ".join(d.buckets or []),
        "filters": _rows(d.filters),
        "steps": steps,
        "window_days": str(d.window_days),
    }


def values_from(form: Form, today: dt.date) -> dict[str, Any]:
    """The form's values as sent (to show again with an error), defaults where none was."""
    since, until = default_range(today)
    step_filters = form.rows("sf")
    steps = []
    for i in range(MAX_STEPS):
        row = form.rows("step")[i] if i < len(form.rows("step")) else {}
        mine = [r for r in step_filters if r.get("step") == str(i) and r.get("field")]
        steps.append({"type": row.get("type", ""), "filters": mine})
    return {
        "kind": form.get("kind") or "counts",
        "since": form.get("since") if "since" in form else since.isoformat(),
        "until": form.get("until") if "until" in form else until.isoformat(),
        "granularity": form.get("granularity") or "day",
        "time_zone": form.get("time_zone") or "UTC",
        "types": form.getlist("type"),
        "channels": form.getlist("channel"),
        "group": form.get("group"),
        "field": form.get("field"),
        "top": form.get("top") or "10",
        "contacts": bool(form.get("contacts")),
        "buckets": form.get("buckets"),
        "filters": [r for r in form.rows("filter") if r.get("field")],
        "steps": steps,
        "window_days": form.get("window_days") or "7",
    }


def query_of(definition: ReportDefinition) -> str:
    """The builder's URL query for a definition (what the form sends for it)."""
    d = definition
    pairs: list[tuple[str, str]] = [
        ("kind", d.kind),
        ("since", d.since.isoformat()),
        ("until", d.until.isoformat()),
        ("granularity", d.granularity),
        ("time_zone", d.time_zone),
    ]
    pairs += [("type", t) for t in d.types]
    pairs += [("channel", c) for c in d.channels]
    if d.group is not None:
        pairs.append(("group", d.group))
    for i, row in enumerate(_rows(d.filters)):
        pairs += [(f"filter-{i}-{k}", v) for k, v in row.items()]
    if d.field is not None:
        pairs.append(("field", d.field))
    if d.kind == "breakdown":
        pairs.append(("top", str(d.top)))
        if d.contacts:
            pairs.append(("contacts", "1"))
    if d.buckets:
        pairs.append(("buckets", ", ".join(d.buckets)))
    k = 0
    for i, step in enumerate(d.steps):
        pairs.append((f"step-{i}-type", step.type))
        for row in _rows(step.filters):
            pairs += [(f"sf-{k}-step", str(i))] + [(f"sf-{k}-{n}", v) for n, v in row.items()]
            k += 1
    if d.kind == "funnel":
        pairs.append(("window_days", str(d.window_days)))
    return urlencode(pairs)


def report_title(definition: ReportDefinition, names: Names) -> str:
    """A report in a few words: what, of what, per what period, of whose activities."""
    d = definition
    types = [names.types.get(t, t) for t in d.types]
    group = names.groups.get(d.group, d.group) if d.group is not None else None
    per = f"per {d.granularity}"
    if d.kind == "group":
        return f"{group}: members {per}"
    if d.kind == "counts":
        title = f"Activities {per}" + (f": {', '.join(types)}" if types else ", all types")
    elif d.kind == "breakdown":
        title = f"{', '.join(types)} by {d.field}"
    elif d.kind == "numeric":
        title = f"{', '.join(types)}: {d.field} {per}"
    else:
        steps = " → ".join(names.types.get(s.type, s.type) for s in d.steps)
        title = f"Funnel: {steps}, within {d.window_days} days"
    return f"{title}, contacts in {group}" if group is not None else title


def range_text(definition: ReportDefinition) -> str:
    d = definition
    return f"{d.since.isoformat()} to {d.until.isoformat()} ({d.time_zone})"


def summary_of(result: ReportResult) -> str:
    """What the chart shows in words, for its ``<desc>``: each series' total and its
    highest value (the first three series)."""
    chart = result.chart
    if not chart.categories or not chart.series:
        return "Nothing in this range."
    parts = []
    for series in chart.series[:3]:
        known = [
            (v, c) for v, c in zip(series.values, chart.categories, strict=False) if v is not None
        ]
        if not known:
            parts.append(f"{series.name}: no values.")
            continue
        value, category = max(known, key=lambda pair: pair[0])
        parts.append(f"{series.name}: highest {_plain(value)} at {category}.")
    more = len(chart.series) - 3
    if more > 0:
        parts.append(f"And {more} more series in the table.")
    return " ".join(parts)


def _plain(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
