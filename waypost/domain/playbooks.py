"""Playbooks as shapes and pure rules: what a playbook listens to, who it is for, how often it
may run for one contact, and the body of the webhook it sends (docs/playbooks.md).

- ``trigger``: ``{"event": "activity", "type": "<code name>", "fields"?: {"amount": {"gte":
  "10000"}}}`` (field filters as in group conditions), ``{"event": "group_entered" |
  "group_exited", "group": "<id>"}``, ``{"event": "consent_agreed" | "consent_revoked",
  "consent": "<code name>"}``;
- ``audience``: a condition in the contact-group language (absent: everyone);
- ``cadence``: ``{"mode": "every_time"}``, ``{"mode": "once"}``, ``{"mode": "once_per",
  "days": N}``;
- ``actions``: ``[{"kind": "webhook", "endpoint": "<id>"}]``, one to ten, each endpoint once.

Nothing here reads storage: the services check that what a playbook names exists.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from waypost.domain.activity import Activity
from waypost.domain.conditions import FIELD_OPS, Condition, ConditionError, parse_condition
from waypost.domain.display_names import DisplayName
from waypost.domain.field_filters import FieldFilter, FilterError, parse_filters
from waypost.domain.field_values import number_text, parse_datetime
from waypost.domain.fields import FieldSpec
from waypost.domain.triggers import ActivityStored

MAX_ACTIONS = 10
MAX_ONCE_PER_DAYS = 3650

Name = DisplayName
CodeName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
FieldName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
FilterValue = str | int | float | bool
FieldFilters = Annotated[dict[FieldName, dict[str, FilterValue]], msgspec.Meta(max_length=50)]
Days = Annotated[int, msgspec.Meta(ge=1, le=MAX_ONCE_PER_DAYS)]

# What fired a run, as playbook_runs.event records it.
Event = Literal["activity", "group_entered", "group_exited", "consent_agreed", "consent_revoked"]
# The webhook's ``type`` for each.
MESSAGE_TYPES: dict[str, str] = {
    "activity": "activity.performed",
    "group_entered": "group.entered",
    "group_exited": "group.exited",
    "consent_agreed": "consent.agreed",
    "consent_revoked": "consent.revoked",
}


# -- the shapes ------------------------------------------------------------------------------


class ActivityTrigger(
    msgspec.Struct,
    tag_field="event",
    tag="activity",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    """An activity of a type was stored, its fields passing the filters (all of them)."""

    type: CodeName
    fields: FieldFilters | None = None


class GroupEnteredTrigger(
    msgspec.Struct, tag_field="event", tag="group_entered", forbid_unknown_fields=True
):
    """A contact entered a contact group."""

    group: uuid.UUID


class GroupExitedTrigger(
    msgspec.Struct, tag_field="event", tag="group_exited", forbid_unknown_fields=True
):
    """A contact left a contact group."""

    group: uuid.UUID


class ConsentAgreedTrigger(
    msgspec.Struct, tag_field="event", tag="consent_agreed", forbid_unknown_fields=True
):
    """A contact agreed to a consent."""

    consent: CodeName


class ConsentRevokedTrigger(
    msgspec.Struct, tag_field="event", tag="consent_revoked", forbid_unknown_fields=True
):
    """A contact revoked a consent."""

    consent: CodeName


Trigger = (
    ActivityTrigger
    | GroupEnteredTrigger
    | GroupExitedTrigger
    | ConsentAgreedTrigger
    | ConsentRevokedTrigger
)
GroupTrigger = GroupEnteredTrigger | GroupExitedTrigger
ConsentTrigger = ConsentAgreedTrigger | ConsentRevokedTrigger


class EveryTime(msgspec.Struct, tag_field="mode", tag="every_time", forbid_unknown_fields=True):
    """Run each time the trigger fires."""


class Once(msgspec.Struct, tag_field="mode", tag="once", forbid_unknown_fields=True):
    """Run once per contact, ever."""


class OncePer(msgspec.Struct, tag_field="mode", tag="once_per", forbid_unknown_fields=True):
    """Run at most once per contact in any ``days`` days."""

    days: Days


Cadence = EveryTime | Once | OncePer


class WebhookAction(msgspec.Struct, tag_field="kind", tag="webhook", forbid_unknown_fields=True):
    """Send the run's signed webhook message to an endpoint."""

    endpoint: uuid.UUID


Action = WebhookAction
Actions = Annotated[list[Action], msgspec.Meta(min_length=1, max_length=MAX_ACTIONS)]


def event_of(trigger: Trigger) -> Event:
    """The trigger's ``event``, as runs record it."""
    tag = type(trigger).__struct_config__.tag
    assert isinstance(tag, str)
    return tag  # type: ignore[return-value]


# -- checks ------------------------------------------------------------------------------------


class PlaybookError(ValueError):
    """A playbook breaks a rule; ``field`` is the path of the part at fault
    (``trigger.fields.amount``, ``audience.all[0].activity``, ``actions[1].endpoint``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_actions(actions: Sequence[Action]) -> None:
    """Each endpoint once: a run calls an endpoint once."""
    seen: set[uuid.UUID] = set()
    for i, action in enumerate(actions):
        if action.endpoint in seen:
            raise PlaybookError(
                "This endpoint is called by an earlier action already; each endpoint once.",
                f"actions[{i}].endpoint",
            )
        seen.add(action.endpoint)


def parse_audience(audience: dict[str, Any] | None, *, limits: bool = False) -> Condition | None:
    """The audience's condition, or None for everyone; PlaybookError names where it fails.
    ``limits``: held to the limits of a new condition, as an audience sent to be saved is."""
    if audience is None:
        return None
    try:
        return parse_condition(audience, "audience", limits=limits)
    except ConditionError as exc:
        message = str(exc).removeprefix(f"{exc.path}: ")
        raise PlaybookError(f"{message[:1].upper()}{message[1:]}.", exc.path) from None


def compile_filters(
    specs: Sequence[FieldSpec], fields: Mapping[str, Mapping[str, object]] | None
) -> tuple[FieldFilter, ...]:
    """An activity trigger's field filters against its type's fields, with typed values;
    PlaybookError naming ``trigger.fields.<name>`` for a field the type does not have, an
    operator its type does not take, or a value of the wrong kind."""
    filters: list[FieldFilter] = []
    for name, ops in (fields or {}).items():
        where = f"trigger.fields.{name}"
        if not ops:
            raise PlaybookError('A field filter takes an operator: {"eq": value}.', where)
        params: dict[str, str] = {}
        for op, value in ops.items():
            if op not in FIELD_OPS:
                raise PlaybookError(
                    f"Unknown operator {op!r}; use {', '.join(sorted(FIELD_OPS))}.", where
                )
            params[name if op == "eq" else f"{name}.{op}"] = _as_text(value)
        try:
            filters.extend(parse_filters(specs, params, max_length=None))  # compared in Python
        except FilterError as exc:
            raise PlaybookError(str(exc), where) from None
    return tuple(filters)


def _as_text(value: object) -> str:
    # As a group condition's filter takes its values (waypost/services/group_sql.py).
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return number_text(value)
    return str(value)


# -- matching ----------------------------------------------------------------------------------


def activity_matches(filters: Sequence[FieldFilter], event: ActivityStored) -> bool:
    """Whether the stored activity's field values pass every filter (its type is the
    trigger's: the caller looked it up by type)."""
    values = event.fields
    return all(_passes(f, values.get(f.spec.name)) for f in filters)


def _passes(f: FieldFilter, value: object) -> bool:
    if value is None:
        return False
    kind = f.spec.type
    try:
        actual: Any
        if f.op == "contains":
            return str(f.value).casefold() in str(value).casefold()
        if kind == "decimal":
            # Stored as text ("50000.10"): compared as numbers, "50000.1" equals it.
            actual = decimal.Decimal(str(value))
        elif kind == "datetime":
            actual = parse_datetime(str(value))
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return False
            actual = value
        elif kind == "boolean":
            return f.op == "eq" and value is f.value
        else:
            actual = value
        expected: Any = f.value
        if f.op == "eq":
            return bool(actual == expected)
        if f.op == "gt":
            return bool(actual > expected)
        if f.op == "gte":
            return bool(actual >= expected)
        if f.op == "lt":
            return bool(actual < expected)
        return bool(actual <= expected)
    except (ValueError, ArithmeticError, TypeError):
        # A value stored before the field's type changed: it matches no filter.
        return False


def cadence_allows(cadence: Cadence, last_run: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a playbook may run for a contact whose last run of it was at ``last_run``
    (None: never)."""
    if last_run is None or isinstance(cadence, EveryTime):
        return True
    if isinstance(cadence, Once):
        return False
    return now - last_run >= dt.timedelta(days=cadence.days)


# -- the webhook body --------------------------------------------------------------------------


class PlaybookRef(msgspec.Struct):
    """The playbook that ran."""

    id: uuid.UUID
    name: str


class ContactData(msgspec.Struct):
    """The contact it ran for, with Kentico's contact fields as the admin API shows them."""

    id: uuid.UUID
    email: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    birthday: dt.date | None = None
    mobile_phone: str | None = None
    business_phone: str | None = None
    company_name: str | None = None
    job_title: str | None = None
    address1: str | None = None
    city: str | None = None
    zip: str | None = None
    country: str | None = None
    state: str | None = None
    notes: str | None = None


class GroupRef(msgspec.Struct):
    """The group entered or left."""

    id: uuid.UUID
    name: str


class ConsentRef(msgspec.Struct):
    """The consent agreed to or revoked, and the version of its text."""

    code_name: str
    version: int


class MessageData(msgspec.Struct, omit_defaults=True):
    """What the message is about: the activity, the group or the consent, per its type."""

    playbook: PlaybookRef
    contact: ContactData
    activity: Activity | None = None
    group: GroupRef | None = None
    consent: ConsentRef | None = None


class MessageBody(msgspec.Struct):
    """The JSON a webhook sends: Standard Webhooks' ``type``, ``timestamp`` and ``data``."""

    type: str
    timestamp: dt.datetime
    data: MessageData


def activity_data(event: ActivityStored) -> Activity:
    """The ``activity`` of a message, from the event the writer emitted."""
    return Activity(
        id=event.id,
        type=event.type_code,
        contact=event.contact_id,
        channel=event.channel_id,
        title=event.title,
        value=event.value,
        url=event.url,
        referrer=event.referrer,
        fields=event.fields or None,
        flags=event.flags,
        occurred_at=event.occurred_at,
        received_at=event.received_at,
        client_id=event.client_id,
        consent_agreed=event.consent_agreed,
        consent_version=event.consent_version,
    )


@dataclass(frozen=True, slots=True)
class Subject:
    """What a run fired on, beside the contact: one of an activity, a group, a consent."""

    activity: Activity | None = None
    group: GroupRef | None = None
    consent: ConsentRef | None = None


_encode = msgspec.json.Encoder().encode


def message_body(
    event: Event,
    at: dt.datetime,
    playbook: PlaybookRef,
    contact: ContactData,
    subject: Subject,
) -> str:
    """The message a run sends to each of its endpoints, encoded once."""
    data = MessageData(playbook, contact, subject.activity, subject.group, subject.consent)
    return _encode(MessageBody(MESSAGE_TYPES[event], at, data)).decode()
