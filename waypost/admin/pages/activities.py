"""The activity log across all contacts: filtered by type, channel, contact and time (and by
field values once a type is chosen), newest first, a page at a time.

Field filters are the admin API's (``field.amount.gte=100``). The form asks for an ordered
field's comparison with a choice beside its value (``field_op.amount=gte``, as a GET form can
only name its inputs up front) and the page turns the pair into the API's form.

A contact's page shows the same log for one contact; both read it through :func:`read_log`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.responses import Response

from waypost.admin import listing
from waypost.admin.views import NavItem, Page, View, every
from waypost.domain.activity import Activity
from waypost.domain.field_filters import ORDERED_TYPES
from waypost.domain.fields import FieldSpec
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activities import ActivityQuery
from waypost.services.activity_types import ActivityType
from waypost.services.contact_search import ContactSummary

NAV = NavItem("Activities", "/admin/activities", "activities", 40)

# The log's own parameters; every other one in the query string is left alone.
FILTERS = ("type", "channel", "contact", "since", "until")
OP_PREFIX = "field_op."
# The comparisons of an ordered (integer, decimal, datetime) field, as the form offers them.
OPERATORS = (
    ("eq", "= equal to"), ("gt", "> more than"), ("gte", "≥ at least"),
    ("lt", "< less than"), ("lte", "≤ at most"),
)  # fmt: skip


def activity_query(params: Mapping[str, str], contact: uuid.UUID | None) -> ActivityQuery:
    """The service's query for a page of the log: 400 for a filter that is not valid.

    ``contact`` fixes the contact (a contact's page); otherwise the ``contact`` filter may.
    """
    if contact is None:
        contact = listing.identifier(params, "contact", "Contact")
    since = listing.when(params, "since", "From")
    until = listing.when(params, "until", "Until")
    if since is not None and until is not None and until <= since:
        raise ApiError(400, "invalid_field", "Until must be later than From.", "until")
    return ActivityQuery(
        limit=listing.limit(params),
        cursor=params.get("cursor") or None,
        contact=contact,
        type=listing.text(params, "type", "Activity type"),
        channel=listing.identifier(params, "channel", "Channel"),
        since=since,
        until=until,
    )


def chosen_field_filters(params: Mapping[str, str]) -> dict[str, str]:
    """Field filters apply to the type they were shown for: after the type was changed in
    the form, the previous type's field inputs are ignored (``fields_for`` names the type
    the inputs belonged to)."""
    shown_for = params.get("fields_for")
    if shown_for is not None and shown_for != params.get("type", ""):
        return {}
    chosen: dict[str, str] = {}
    for key, value in listing.field_filters(params).items():
        op = params.get(OP_PREFIX + key, "").strip()
        # An unknown operator is left for the service to refuse, naming it.
        chosen[f"{key}.{op}" if op and op != "eq" and "." not in key else key] = value
    return chosen


def service_field_filters(fields: list[FieldSpec], chosen: dict[str, str]) -> dict[str, str]:
    """The field filters as the service takes them: a datetime typed in the form's UTC
    (``2026-05-01T14:30``) gets its ``Z``; a time that is no ISO 8601 is a 400 here."""
    kinds = {spec.name: spec.type for spec in fields}
    return {
        key: listing.utc_text(value, listing.FIELD_PREFIX + key, key.partition(".")[0])
        if kinds.get(key.partition(".")[0]) == "datetime" and not key.endswith(".contains")
        else value
        for key, value in chosen.items()
    }


def channel_names(hub: Hub) -> dict[uuid.UUID, str]:
    """Every channel's name, by id (channels are few)."""
    channels = every(lambda cursor: hub.channels.list_page(ListQuery(limit=1000, cursor=cursor)))
    return {channel.id: channel.name for channel in channels}


@dataclass
class LogView:
    """A page of an activity log, with what its filter form and table show."""

    path: str
    anchor: str
    values: dict[str, str]
    types: list[ActivityType]
    channels: dict[uuid.UUID, str]
    items: list[Activity] = field(default_factory=list)
    contacts: dict[uuid.UUID, ContactSummary] = field(default_factory=dict)
    paging: listing.Paging | None = None
    error: ApiError | None = None
    fields: list[FieldSpec] = field(default_factory=list)
    field_values: dict[str, str] = field(default_factory=dict)
    # The filters of the page as the export takes them (docs/data-lifecycle.md#exports).
    export_filters: dict[str, str] = field(default_factory=dict)

    @property
    def exports(self) -> list[tuple[str, str]]:
        """Downloads of every activity the filters select, one per format."""
        return listing.export_links("/api/activities/export", self.export_filters)

    @property
    def type_names(self) -> dict[str, str]:
        return {t.code_name: t.name for t in self.types}

    @property
    def ordered_types(self) -> frozenset[str]:
        return ORDERED_TYPES

    @property
    def operators(self) -> tuple[tuple[str, str], ...]:
        return OPERATORS

    def condition(self, spec: FieldSpec) -> tuple[str, str]:
        """The comparison and value the form shows for a field: the field's first filter."""
        if spec.type in ORDERED_TYPES:
            for op, _ in OPERATORS:
                key = spec.name if op == "eq" else f"{spec.name}.{op}"
                if key in self.field_values:
                    return op, self.field_values[key]
        return "eq", self.field_values.get(spec.name, "")

    @property
    def other_field_filters(self) -> dict[str, str]:
        """Field filters the form has no input for (a second comparison, ``contains``, or
        unknown fields), so that they are shown and can be changed."""
        shown = set()
        for spec in self.fields:
            op, _ = self.condition(spec)
            shown.add(spec.name if op == "eq" else f"{spec.name}.{op}")
        return {k: v for k, v in self.field_values.items() if k not in shown}

    @property
    def filtered(self) -> bool:
        return any(self.values.get(name) for name in FILTERS) or bool(self.field_values)


def read_log(page: Page, path: str, contact: uuid.UUID | None, anchor: str = "") -> LogView:
    """The log page ``path`` shows for the request's filters; a bad filter is kept in
    ``error`` (status 400) so that the page can show it at the form."""
    hub = page.hub
    params = page.request.query_params
    types = sorted(hub.types.all(), key=lambda t: t.name.lower())
    view = LogView(
        path=path,
        anchor=anchor,
        values={
            **{name: params.get(name, "") for name in FILTERS},
            "since": listing.time_value(params, "since"),
            "until": listing.time_value(params, "until"),
        },
        types=types,
        channels=channel_names(hub),
    )
    chosen = next((t for t in types if t.code_name == params.get("type")), None)
    view.fields = list(chosen.fields) if chosen else []
    # Without a type the service refuses field filters with a message the form shows.
    view.field_values = chosen_field_filters(params)
    try:
        query = activity_query(params, contact)
        fields = service_field_filters(view.fields, view.field_values)
        if contact is None:
            found = hub.activities.log(query, fields)
            view.contacts = hub.contacts.summaries([a.contact for a in found.data])
        else:
            found = hub.activities.contact_log(contact, query, fields)
        view.items = found.data
        view.export_filters = _export_filters(query, fields)
        view.paging = listing.paging(path, _kept(params, view.field_values), found.next, anchor)
    except ApiError as exc:
        view.error = exc
    return view


def _export_filters(query: ActivityQuery, fields: Mapping[str, str]) -> dict[str, str]:
    given = {
        "type": query.type,
        "channel": query.channel,
        "contact": query.contact,
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
    }
    filters = {name: str(value) for name, value in given.items() if value is not None}
    filters.update({listing.FIELD_PREFIX + k: v for k, v in fields.items()})
    return filters


def _kept(params: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in params.items() if not k.startswith((listing.FIELD_PREFIX, OP_PREFIX))}
    kept.pop("fields_for", None)
    kept.update({listing.FIELD_PREFIX + k: v for k, v in fields.items()})
    return kept


def list_activities(page: Page) -> Response:
    log = read_log(page, "/admin/activities", None)
    return page.render("activities/list.html", log.error.status if log.error else 200, log=log)


VIEWS = [View("/admin/activities", list_activities, "activities")]
