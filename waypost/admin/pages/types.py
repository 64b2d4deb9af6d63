"""Activity types: the list with activity counts, the create and edit form, enable/disable.

The form is Kentico's (display name; the code name, Kentico's "Identifiers", pre-filled from
the name; description; enabled) with Waypost's client-side switch, typed fields, rate limits and
retention. The service decides what is valid; its errors come back next to the form, with
what the user typed kept.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.forms import Form, reworded
from waypost.admin.views import NavItem, Page, View
from waypost.domain.codenames import derive_code_name
from waypost.domain.fields import MAX_TEXT_LENGTH, FieldType
from waypost.errors import ApiError, from_validation_error, invalid
from waypost.services.activity_type_shapes import MAX_RATE_LIMIT
from waypost.services.activity_types import (
    ActivityType,
    ActivityTypeCreate,
    ActivityTypeUpdate,
    RateLimit,
    RateLimits,
)

NAV = NavItem("Activity types", "/admin/types", "types", 20)

FIELD_TYPES: tuple[FieldType, ...] = (
    "text", "integer", "decimal", "boolean", "datetime", "url", "email", "phone",
)  # fmt: skip
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
LIMITS = (("contact", "per_contact", "Per contact"), ("ip", "per_ip", "Per IP address"))


# -- form values: what the template shows, from a type, the defaults or a submitted form ----


def _limit_values(limit: RateLimit | None) -> dict[str, str]:
    if limit is None:
        return {"limit": "", "window": "1", "unit": "days"}
    for unit, seconds in reversed(UNITS.items()):
        if limit.window_seconds % seconds == 0:
            return {
                "limit": str(limit.limit),
                "window": str(limit.window_seconds // seconds),
                "unit": unit,
            }
    raise AssertionError("every window is a whole number of seconds")


def values_of(found: ActivityType | None) -> dict[str, Any]:
    """The form's values for an existing type, or a new type's defaults."""
    limits = found.rate_limits if found else RateLimits()
    return {
        "name": found.name if found else "",
        "code_name": found.code_name if found else "",
        "code_name_auto": found is None,
        "description": found.description if found else "",
        "enabled": found.enabled if found else True,
        "client_side": found.client_side if found else False,
        "fields": [
            {
                "name": f.name,
                "type": f.type,
                "required": f.required,
                "primary": f.primary,
                "description": f.description,
                "max_length": "" if f.max_length is None else str(f.max_length),
            }
            for f in (found.fields if found else [])
        ],
        "limits": {key: _limit_values(getattr(limits, attr)) for key, attr, _ in LIMITS},
        "retention_days": str(found.retention_days or "") if found else "",
    }


def values_from(form: Form) -> dict[str, Any]:
    """The form's values as submitted, to show them again with an error."""
    return {
        "name": form.get("name"),
        "code_name": form.get("code_name"),
        "code_name_auto": form.checked("code_name_auto"),
        "description": form.get("description"),
        "enabled": form.checked("enabled"),
        "client_side": form.checked("client_side"),
        "fields": [
            {
                "name": row.get("name", ""),
                "type": row.get("type", "text"),
                "required": bool(row.get("required")),
                "primary": bool(row.get("primary")),
                "description": row.get("description", ""),
                "max_length": row.get("max_length", ""),
            }
            for row in form.rows("fields")
            if row.get("name")
        ],
        "limits": {
            key: {
                "limit": form.get(f"limit_{key}"),
                "window": form.get(f"limit_{key}_window"),
                "unit": form.get(f"limit_{key}_unit"),
            }
            for key, _, _ in LIMITS
        },
        "retention_days": form.get("retention_days"),
    }


# -- from the submitted form to the service's body -------------------------------------------


def _rate_limits(form: Form) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, attr, label in LIMITS:
        limit = form.optional_int(f"limit_{key}", f"{label}: the number of activities")
        if limit is None:
            result[attr] = None
            continue
        window = form.optional_int(f"limit_{key}_window", f"{label}: the window")
        unit = UNITS.get(form.get(f"limit_{key}_unit"))
        if window is None:
            raise invalid(f"{label}: give the window the limit counts in.", f"limit_{key}_window")
        if unit is None:
            raise invalid(f"{label}: choose the window's unit.", f"limit_{key}_unit")
        result[attr] = {"limit": limit, "window_seconds": window * unit}
    return result


def _max_length(row: dict[str, str], where: str) -> int | None:
    # Told here, in the form's words, rather than by the service ("max_length applies to
    # text fields only"): the form knows the row and its field's name.
    text = row.get("max_length", "")
    if not text:
        return None
    name = row["name"]
    if row.get("type", "text") != "text":
        raise invalid(
            f"Field {name!r}: Max length is for text fields only; clear it or make the field text.",
            where,
        )
    digits = text.isascii() and text.isdigit() and len(text) <= 9
    if not digits or not 1 <= int(text) <= MAX_TEXT_LENGTH:
        raise invalid(
            f"Field {name!r}: Max length is a number of characters, from 1 to "
            f"{MAX_TEXT_LENGTH:,} (got {text!r}).",
            where,
        )
    return int(text)


def _fields(form: Form) -> list[dict[str, object]]:
    fields: list[dict[str, object]] = []
    for row in form.rows("fields"):
        if not row.get("name"):
            continue  # the blank row of the editor
        fields.append(
            {
                "name": row["name"],
                "type": row.get("type", "text"),
                "required": bool(row.get("required")),
                "primary": bool(row.get("primary")),
                "description": row.get("description", ""),
                "max_length": _max_length(row, f"fields[{len(fields)}].max_length"),
            }
        )
    return fields


def in_form_words(error: ApiError) -> ApiError:
    """The service's errors about a field's max_length, told as the form's Max length, and
    about a rate limit, told of the box it came from (``limit_contact_window``)."""
    if error.field and error.field.endswith(".max_length"):
        return reworded(error, error.message.replace("max_length", "max length"))
    for key, attr, label in LIMITS:
        if error.field == f"rate_limits.{attr}.limit":
            message = (
                f"{label}: the number of activities is at least 1 and at most {MAX_RATE_LIMIT:,}."
            )
            return ApiError(error.status, error.code, message, f"limit_{key}")
        if error.field == f"rate_limits.{attr}.window_seconds":
            message = f"{label}: the window is from 1 second to 31 days long."
            return ApiError(error.status, error.code, message, f"limit_{key}_window")
    return error


def body_from(form: Form, current: ActivityType | None) -> ActivityTypeCreate | ActivityTypeUpdate:
    """The create (``current`` None) or update body the form asks for."""
    name = form.get("name")
    code_name: str | None = form.get("code_name") or None
    if form.checked("code_name_auto") and code_name == derive_code_name(name):
        # The code name still mirrors the name: let the service derive it, so that it can
        # pick a free one (``_2``) when the plain one is taken.
        code_name = None
    raw: dict[str, object] = {
        "name": name,
        "description": form.get("description"),
        "enabled": form.checked("enabled"),
        "client_side": form.checked("client_side"),
        "fields": _fields(form),
        "rate_limits": _rate_limits(form),
        "retention_days": form.optional_int("retention_days", "Retention"),
    }
    if current is None:
        raw["code_name"] = code_name
        target: type[ActivityTypeCreate | ActivityTypeUpdate] = ActivityTypeCreate
    else:
        if code_name is not None and code_name != current.code_name:
            raw["code_name"] = code_name
        target = ActivityTypeUpdate
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None


# -- handlers -----------------------------------------------------------------------------


def list_types(page: Page) -> Response:
    types = page.hub.types.all()
    counts = page.hub.rollups.totals_by_type()
    types.sort(key=lambda t: (not t.builtin, t.name.lower()))
    return page.render("types/list.html", types=types, counts=counts)


def _form(page: Page, found: ActivityType | None, values: dict[str, Any], **extra: Any) -> Response:
    status = extra.pop("status", 200)
    return page.render(
        "types/form.html",
        status,
        found=found,
        values=values,
        field_types=FIELD_TYPES,
        units=list(UNITS),
        limit_rows=LIMITS,
        max_text_length=MAX_TEXT_LENGTH,
        error=extra.pop("error", None),
    )


def new_type(page: Page) -> Response:
    if page.request.method == "GET":
        return _form(page, None, values_of(None))
    try:
        body = body_from(page.form, None)
        assert isinstance(body, ActivityTypeCreate)
        created = page.hub.types.create(body)
    except ApiError as exc:
        error = in_form_words(exc)
        return _form(page, None, values_from(page.form), error=error, status=exc.status)
    return page.redirect(
        "/admin/types", f"Created the activity type {created.name} ({created.code_name})."
    )


def edit_type(page: Page) -> Response:
    found = page.hub.types.get(page.uuid_param("type_id", "activity type"))
    if page.request.method == "GET":
        return _form(page, found, values_of(found))
    try:
        body = body_from(page.form, found)
        assert isinstance(body, ActivityTypeUpdate)
        changed = page.hub.types.update(found.id, body)
    except ApiError as exc:
        error = in_form_words(exc)
        return _form(page, found, values_from(page.form), error=error, status=exc.status)
    return page.redirect("/admin/types", f"Saved the activity type {changed.name}.")


def enable_type(page: Page) -> Response:
    changed = page.hub.types.set_enabled(page.uuid_param("type_id", "activity type"), True)
    return page.redirect("/admin/types", f"Enabled {changed.name}.")


def disable_type(page: Page) -> Response:
    changed = page.hub.types.set_enabled(page.uuid_param("type_id", "activity type"), False)
    return page.redirect(
        "/admin/types", f"Disabled {changed.name}: new activities of it are rejected."
    )


def delete_type(page: Page) -> Response:
    type_id = page.uuid_param("type_id", "activity type")
    found = page.hub.types.get(type_id)
    page.hub.types.delete(type_id)
    return page.redirect("/admin/types", f"Deleted the activity type {found.name}.")


ITEM = "/admin/types/{type_id}"
VIEWS = [
    View("/admin/types", list_types, "types"),
    View("/admin/types/new", new_type, "types", ("GET", "POST"), write=True),
    View(ITEM, edit_type, "types", ("GET", "POST")),
    View(ITEM + "/enable", enable_type, "types", ("POST",)),
    View(ITEM + "/disable", disable_type, "types", ("POST",)),
    View(ITEM + "/delete", delete_type, "types", ("POST",)),
]
