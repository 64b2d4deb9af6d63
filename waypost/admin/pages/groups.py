"""Contact groups: the list, the builder form, a group's page (its condition in words, its
membership over time, its members), and deleting a group.

The form sends the condition as JSON in a textarea, so it works without scripts; the builder
(static/admin/group-builder.js) edits the same textarea visually and asks the admin API's dry
run (``POST /api/groups/validate``) for a live count. Without scripts, the form's "Count
contacts" button asks the same dry run through the page. The groups service decides what a
valid condition is; its message comes back next to the form, with what the user typed kept.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.charts import Series, line
from waypost.admin.condition_text import CONTACT_LABELS, Names, describe
from waypost.admin.forms import Form
from waypost.admin.views import NavItem, Page, View, every
from waypost.domain.conditions import DATE_COLUMNS
from waypost.domain.field_filters import operators
from waypost.errors import ApiError, check_depth, from_validation_error, invalid
from waypost.pagination import ListQuery
from waypost.services.groups import (
    ConditionCheck,
    Group,
    GroupCreate,
    GroupUpdate,
    MemberQuery,
)

NAV = NavItem("Contact groups", "/admin/groups", "groups", 60)

HISTORY_DAYS = (7, 30, 90, 365)
MEMBERS_PER_PAGE = 50


def _groups(page: Page) -> list[Group]:
    found: list[Group] = every(
        lambda cursor: page.hub.groups.list_page(MemberQuery(limit=1000, cursor=cursor))
    )
    return sorted(found, key=lambda g: g.name.lower())


def _names(page: Page) -> Names:
    consents = every(
        lambda cursor: page.hub.consents.list_page(ListQuery(limit=1000, cursor=cursor))
    )
    return Names(
        types={t.code_name: t.name for t in page.hub.types.all()},
        consents={c.code_name: c.display_name for c in consents},
        groups={str(g.id): g.name for g in _groups(page)},
    )


def builder_catalog(page: Page, current: Group | None) -> dict[str, Any]:
    """What the builder offers: types with their fields and the operators each field's type
    takes (the service's own rule), consents, the other groups, and the contact fields (dates
    compare with before / after)."""
    types = sorted(page.hub.types.all(), key=lambda t: (not t.builtin, t.name.lower()))
    consents = every(
        lambda cursor: page.hub.consents.list_page(ListQuery(limit=1000, cursor=cursor))
    )
    return {
        "types": [
            {
                "code": t.code_name,
                "name": t.name,
                "enabled": t.enabled,
                "fields": [
                    {"name": f.name, "type": f.type, "operators": list(operators(f.type))}
                    for f in t.fields
                ],
            }
            for t in types
        ],
        "consents": [{"code": c.code_name, "name": c.display_name} for c in consents],
        "groups": [
            {"id": str(g.id), "name": g.name}
            for g in _groups(page)
            if current is None or g.id != current.id
        ],
        "contact_fields": [
            {"name": name, "label": label, "date": name in DATE_COLUMNS}
            for name, label in CONTACT_LABELS.items()
        ],
    }


# -- the form --------------------------------------------------------------------------------


def example_condition() -> dict[str, Any]:
    return {"all": [{"activity": {"type": "pagevisit", "at_least": 1, "within_days": 30}}]}


def values_of(found: Group | None) -> dict[str, str]:
    condition = found.condition if found else example_condition()
    return {
        "name": found.name if found else "",
        "description": found.description if found else "",
        "condition": json.dumps(condition, indent=2, ensure_ascii=False),
    }


def values_from(form: Form) -> dict[str, str]:
    return {
        "name": form.get("name"),
        "description": form.get("description"),
        "condition": form.raw("condition"),
    }


def condition_from(form: Form) -> dict[str, Any]:
    """The condition sent as JSON: 400 when it is not JSON, or not an object."""
    text = form.raw("condition").strip()
    if not text:
        raise invalid("Give the group a condition.", "condition")
    try:
        check_depth(text.encode(errors="replace"))
    except ApiError as exc:
        raise invalid(exc.message, "condition") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid(
            f"The condition is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            "condition",
        ) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise invalid("The condition holds a number too long to read.", "condition") from None
    if not isinstance(value, dict):
        raise invalid('A condition is a JSON object, such as {"all": [...]}.', "condition")
    return value


def _convert(raw: dict[str, Any], target: type[Any]) -> Any:
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None


def _form(
    page: Page,
    found: Group | None,
    values: dict[str, str],
    error: ApiError | None = None,
    count: int | None = None,
) -> Response:
    return page.render(
        "groups/form.html",
        error.status if error else 200,
        found=found,
        values=values,
        error=error,
        count=count,
        catalog=builder_catalog(page, found),
    )


def _submit(page: Page, found: Group | None) -> Response:
    form = page.form
    try:
        condition = condition_from(form)
        if form.get("intent") == "count":
            counted = page.hub.groups.validate(ConditionCheck(condition))
            return _form(page, found, values_from(form), count=counted.count)
        raw: dict[str, Any] = {"name": form.get("name"), "description": form.get("description")}
        if found is None:
            created = page.hub.groups.create(_convert({**raw, "condition": condition}, GroupCreate))
            return page.redirect(
                f"/admin/groups/{created.id}",
                f"Created the group {created.name}: {created.member_count:,} contacts are in it.",
            )
        if condition != found.condition:
            # An unchanged condition is not sent: a new one recomputes the group.
            raw["condition"] = condition
        changed = page.hub.groups.update(found.id, _convert(raw, GroupUpdate))
    except ApiError as exc:
        return _form(page, found, values_from(form), error=exc)
    return page.redirect(
        f"/admin/groups/{changed.id}",
        f"Saved the group {changed.name}: {changed.member_count:,} contacts are in it.",
    )


# -- handlers -----------------------------------------------------------------------------


def list_groups(page: Page) -> Response:
    return page.render("groups/list.html", groups=_groups(page))


def new_group(page: Page) -> Response:
    if page.request.method == "GET":
        return _form(page, None, values_of(None))
    return _submit(page, None)


def edit_group(page: Page) -> Response:
    found = page.hub.groups.get(page.uuid_param("group_id", "group"))
    if page.request.method == "GET":
        return _form(page, found, values_of(found))
    return _submit(page, found)


def _days(page: Page) -> int:
    text = page.request.query_params.get("days", "30")
    if not text.isdigit() or int(text) not in HISTORY_DAYS:
        choices = ", ".join(str(d) for d in HISTORY_DAYS)
        raise invalid(f"The chart covers {choices} days (got {text!r}).", "days")
    return int(text)


def membership_chart(page: Page, group: Group, days: int) -> Any:
    history = page.hub.groups.history(group.id, days)
    labels = [f"{d.day:%b} {d.day.day}" for d in history.days]
    first, last = history.days[0], history.days[-1]
    entered = sum(d.entered for d in history.days)
    left = sum(d.left for d in history.days)
    summary = (
        f"From {first.members:,} members at the end of {first.day:%B} {first.day.day} to "
        f"{last.members:,} today; {entered:,} entries and {left:,} exits in {days} days."
    )
    return line(
        "membership",
        f"Members per day, last {days} days",
        labels,
        Series("Members", [d.members for d in history.days]),
        summary=summary,
        extra=[
            Series("Entered", [d.entered for d in history.days]),
            Series("Left", [d.left for d in history.days]),
        ],
    )


def _show(page: Page, group: Group, error: ApiError | None = None) -> Response:
    days = _days(page)
    cursor = page.request.query_params.get("cursor") or None
    members = page.hub.groups.member_contacts(
        group.id, MemberQuery(limit=MEMBERS_PER_PAGE, cursor=cursor)
    )
    return page.render(
        "groups/show.html",
        error.status if error else 200,
        group=group,
        phrase=describe(group.condition, _names(page)),
        chart=membership_chart(page, group, days),
        days=days,
        day_choices=HISTORY_DAYS,
        members=members,
        cursor=cursor,
        error=error,
    )


def show_group(page: Page) -> Response:
    return _show(page, page.hub.groups.get(page.uuid_param("group_id", "group")))


def delete_group(page: Page) -> Response:
    group = page.hub.groups.get(page.uuid_param("group_id", "group"))
    try:
        page.hub.groups.delete(group.id)
    except ApiError as exc:
        if exc.status != 409:
            raise
        return _show(page, group, exc)
    return page.redirect("/admin/groups", f"Deleted the group {group.name}.")


ITEM = "/admin/groups/{group_id}"
VIEWS = [
    View("/admin/groups", list_groups, "groups"),
    View("/admin/groups/new", new_group, "groups", ("GET", "POST"), write=True),
    View(ITEM, show_group, "groups"),
    View(ITEM + "/edit", edit_group, "groups", ("GET", "POST"), write=True),
    View(ITEM + "/delete", delete_group, "groups", ("POST",)),
]
