"""Playbooks: the list, the form (trigger, audience with the group condition builder, cadence,
the webhook endpoints to call), a playbook's page with its runs, enabling, disabling and
deleting.

The form is a plain form: the trigger's kind is a select and only the controls of that kind
are read; field filters are rows of field, operator and value. The audience is a condition
in the contact-group language, edited as JSON in a textarea that the group builder
(static/admin/group-builder.js) edits visually, with its live count of the contacts who match
now. The playbook service decides what is valid; its message comes back next to the control at
fault, with what the user typed kept.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.condition_text import FIELD_OPS, Names, describe
from waypost.admin.forms import Form
from waypost.admin.pages.groups import builder_catalog, condition_from, example_condition
from waypost.admin.playbook_text import (
    CADENCE_LABELS,
    EVENT_LABELS,
    RUN_EVENTS,
    cadence_text,
    subject_text,
    trigger_text,
)
from waypost.admin.views import NavItem, Page, View, every
from waypost.domain.playbooks import ActivityTrigger, ConsentTrigger, GroupTrigger, OncePer
from waypost.errors import ApiError, from_validation_error, invalid
from waypost.pagination import ListQuery
from waypost.services.groups import MemberQuery
from waypost.services.playbooks import Playbook, PlaybookCreate, PlaybookUpdate, RunQuery

NAV = NavItem("Playbooks", "/admin/playbooks", "playbooks", 65)

RUNS_PER_PAGE = 50
BLANK_FILTERS = 2
# The operators of field filters (waypost/domain/field_filters.py), as the form offers them.
OPERATORS = [(op, FIELD_OPS[op]) for op in ("eq", "gt", "gte", "lt", "lte", "contains")]


def names(page: Page) -> Names:
    hub = page.hub
    consents = every(lambda c: hub.consents.list_page(ListQuery(limit=1000, cursor=c)))
    groups = every(lambda c: hub.groups.list_page(MemberQuery(limit=1000, cursor=c)))
    return Names(
        types={t.code_name: t.name for t in hub.types.all()},
        consents={c.code_name: c.display_name for c in consents},
        groups={str(g.id): g.name for g in groups},
    )


def _playbooks(page: Page) -> list[Playbook]:
    found: list[Playbook] = every(
        lambda cursor: page.hub.playbooks.list_page(ListQuery(limit=1000, cursor=cursor))
    )
    return sorted(found, key=lambda p: p.name.lower())


# -- the form --------------------------------------------------------------------------------


def values_of(found: Playbook | None) -> dict[str, Any]:
    """The form's values for a playbook (or a new one)."""
    values: dict[str, Any] = {
        "name": found.name if found else "",
        "description": found.description if found else "",
        "enabled": found.enabled if found else True,
        "event": "activity",
        "type": "",
        "group": "",
        "consent": "",
        "filters": [],
        "audience_mode": "condition" if found and found.audience else "everyone",
        "audience": json.dumps(
            found.audience if found and found.audience else example_condition(),
            indent=2,
            ensure_ascii=False,
        ),
        "cadence": "every_time",
        "days": "7",
        "endpoints": [str(a.endpoint) for a in found.actions] if found else [],
    }
    if found is None:
        return values
    trigger = found.trigger
    values["event"] = msgspec.to_builtins(trigger)["event"]
    if isinstance(trigger, ActivityTrigger):
        values["type"] = trigger.type
        values["filters"] = [
            {"field": name, "op": op, "value": _text(value)}
            for name, ops in (trigger.fields or {}).items()
            for op, value in ops.items()
        ]
    elif isinstance(trigger, GroupTrigger):
        values["group"] = str(trigger.group)
    else:
        values["consent"] = trigger.consent
    values["cadence"] = msgspec.to_builtins(found.cadence)["mode"]
    if isinstance(found.cadence, OncePer):
        values["days"] = str(found.cadence.days)
    return values


def _text(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def values_from(form: Form) -> dict[str, Any]:
    """The form's values as sent, to show again with an error."""
    return {
        "name": form.get("name"),
        "description": form.get("description"),
        "enabled": form.checked("enabled"),
        "event": form.get("event"),
        "type": form.get("type"),
        "group": form.get("group"),
        "consent": form.get("consent"),
        "filters": [row for row in form.rows("filter") if row.get("field")],
        "audience_mode": form.get("audience_mode"),
        "audience": form.raw("audience"),
        "cadence": form.get("cadence"),
        "days": form.get("days"),
        "endpoints": form.getlist("endpoint"),
    }


def body_from(form: Form) -> dict[str, Any]:
    """The playbook the form describes, as the API would take it."""
    event = form.get("event")
    trigger: dict[str, Any] = {"event": event}
    if event == "activity":
        trigger["type"] = form.get("type")
        fields: dict[str, dict[str, str]] = {}
        for row in form.rows("filter"):
            name = row.get("field", "")
            if name:
                fields.setdefault(name, {})[row.get("op", "eq")] = row.get("value", "")
        if fields:
            trigger["fields"] = fields
    elif event in ("group_entered", "group_exited"):
        trigger["group"] = form.get("group")
    else:
        trigger["consent"] = form.get("consent")
    cadence: dict[str, Any] = {"mode": form.get("cadence")}
    if cadence["mode"] == "once_per":
        days = form.optional_int("days", "Days")
        if days is None:
            raise invalid("Give the number of days between two runs for one contact.", "days")
        cadence["days"] = days
    endpoints = form.getlist("endpoint")
    if not endpoints:
        raise invalid("Choose at least one webhook endpoint to call.", "endpoints")
    audience = None
    if form.get("audience_mode") == "condition":
        try:
            audience = condition_from(_renamed(form, "audience", "condition"))
        except ApiError as exc:
            raise invalid(exc.message, "audience") from None
    return {
        "name": form.get("name"),
        "description": form.get("description"),
        "enabled": form.checked("enabled"),
        "trigger": trigger,
        "audience": audience,
        "cadence": cadence,
        "actions": [{"kind": "webhook", "endpoint": e} for e in endpoints],
    }


def _renamed(form: Form, name: str, as_name: str) -> Form:
    return Form([(as_name, form.raw(name))])


# The controls a service error's field points to (trigger.fields.amount -> the filters).
_CONTROLS = (
    ("trigger.type", "type"),
    ("trigger.fields", "filters"),
    ("trigger.group", "group"),
    ("trigger.consent", "consent"),
    ("trigger", "event"),
    ("audience", "audience"),
    ("cadence", "days"),
    ("actions", "endpoints"),
)


def on_form(error: ApiError) -> ApiError:
    """The error with its field named as the form's control."""
    field = error.field or ""
    for prefix, control in _CONTROLS:
        if field == prefix or field.startswith((prefix + ".", prefix + "[")):
            return ApiError(error.status, error.code, error.message, control)
    return error


def _convert(raw: dict[str, Any], target: type[Any]) -> Any:
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None


def _form(
    page: Page,
    found: Playbook | None,
    values: dict[str, Any],
    error: ApiError | None = None,
) -> Response:
    hub = page.hub
    consents = every(lambda c: hub.consents.list_page(ListQuery(limit=1000, cursor=c)))
    groups = every(lambda c: hub.groups.list_page(MemberQuery(limit=1000, cursor=c)))
    filters = list(values["filters"]) + [{"field": "", "op": "eq", "value": ""}] * BLANK_FILTERS
    return page.render(
        "playbooks/form.html",
        error.status if error else 200,
        found=found,
        values=values,
        filters=filters,
        error=error,
        events=list(EVENT_LABELS.items()),
        cadences=list(CADENCE_LABELS.items()),
        operators=OPERATORS,
        types=sorted(hub.types.all(), key=lambda t: t.name.lower()),
        groups=sorted(groups, key=lambda g: g.name.lower()),
        consents=sorted(consents, key=lambda c: c.display_name.lower()),
        endpoints=hub.playbooks.endpoint_choices(),
        catalog=builder_catalog(page, None),
    )


def _submit(page: Page, found: Playbook | None) -> Response:
    form = page.form
    try:
        raw = body_from(form)
        if found is None:
            created = page.hub.playbooks.create(_convert(raw, PlaybookCreate))
            return page.redirect(f"/admin/playbooks/{created.id}", f"Created {created.name}.")
        changed = page.hub.playbooks.update(found.id, _convert(raw, PlaybookUpdate))
    except ApiError as exc:
        return _form(page, found, values_from(form), error=on_form(exc))
    return page.redirect(f"/admin/playbooks/{changed.id}", f"Saved {changed.name}.")


# -- handlers -----------------------------------------------------------------------------


def list_playbooks(page: Page) -> Response:
    known = names(page)
    counts = page.hub.playbooks.run_counts()
    rows = [
        (p, trigger_text(p.trigger, known), cadence_text(p.cadence), counts.get(p.id, 0))
        for p in _playbooks(page)
    ]
    return page.render("playbooks/list.html", rows=rows)


def new_playbook(page: Page) -> Response:
    if page.request.method == "GET":
        return _form(page, None, values_of(None))
    return _submit(page, None)


def edit_playbook(page: Page) -> Response:
    found = page.hub.playbooks.get(page.uuid_param("playbook_id", "playbook"))
    if page.request.method == "GET":
        return _form(page, found, values_of(found))
    return _submit(page, found)


def show_playbook(page: Page) -> Response:
    hub = page.hub
    playbook = hub.playbooks.get(page.uuid_param("playbook_id", "playbook"))
    cursor = page.request.query_params.get("cursor") or None
    runs = hub.playbooks.runs(playbook.id, RunQuery(limit=RUNS_PER_PAGE, cursor=cursor))
    known = names(page)
    choices = {e.id: e for e in hub.playbooks.endpoint_choices()}
    summaries = hub.contacts.summaries([r.contact for r in runs.data])
    return page.render(
        "playbooks/show.html",
        playbook=playbook,
        trigger=trigger_text(playbook.trigger, known),
        cadence=cadence_text(playbook.cadence),
        audience=describe(playbook.audience, known) if playbook.audience else None,
        actions=[(a.endpoint, choices.get(a.endpoint)) for a in playbook.actions],
        runs=runs,
        cursor=cursor,
        contacts=summaries,
        run_events=RUN_EVENTS,
        subject=lambda run: subject_text(run.event, run.subject, known),
        consent_trigger=isinstance(playbook.trigger, ConsentTrigger),
    )


def enable_playbook(page: Page) -> Response:
    changed = page.hub.playbooks.enable(page.uuid_param("playbook_id", "playbook"))
    return page.redirect(f"/admin/playbooks/{changed.id}", f"Enabled {changed.name}.")


def disable_playbook(page: Page) -> Response:
    changed = page.hub.playbooks.disable(page.uuid_param("playbook_id", "playbook"))
    return page.redirect(f"/admin/playbooks/{changed.id}", f"Disabled {changed.name}.")


def delete_playbook(page: Page) -> Response:
    playbook = page.hub.playbooks.get(page.uuid_param("playbook_id", "playbook"))
    page.hub.playbooks.delete(playbook.id)
    return page.redirect("/admin/playbooks", f"Deleted the playbook {playbook.name}.")


ITEM = "/admin/playbooks/{playbook_id}"
VIEWS = [
    View("/admin/playbooks", list_playbooks, "playbooks"),
    View("/admin/playbooks/new", new_playbook, "playbooks", ("GET", "POST"), write=True),
    View(ITEM, show_playbook, "playbooks"),
    View(ITEM + "/edit", edit_playbook, "playbooks", ("GET", "POST"), write=True),
    View(ITEM + "/enable", enable_playbook, "playbooks", ("POST",)),
    View(ITEM + "/disable", disable_playbook, "playbooks", ("POST",)),
    View(ITEM + "/delete", delete_playbook, "playbooks", ("POST",)),
]
