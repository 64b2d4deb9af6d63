"""The rules a playbook must follow against what exists, each refusal a 400 ``invalid_field``
naming the part at fault: the trigger's activity type (``trigger.type``) and its field filters
(``trigger.fields.<name>``), group (``trigger.group``) or consent (``trigger.consent``); the
audience, a group condition (``audience...``) that must parse, name existing types, groups and
consents, and compile; the actions' endpoints (``actions[<n>].endpoint``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.conditions import (
    ActivityCondition,
    Condition,
    ConsentCondition,
    GroupCondition,
    located,
)
from waypost.domain.field_filters import FieldFilter
from waypost.domain.playbooks import (
    Action,
    ActivityTrigger,
    ConsentAgreedTrigger,
    ConsentRevokedTrigger,
    PlaybookError,
    Trigger,
    check_actions,
    compile_filters,
    parse_audience,
)
from waypost.error_words import quoted
from waypost.errors import ApiError
from waypost.services.group_sql import (
    CompileError,
    check_field_filters,
    load_context,
    members_select,
)
from waypost.store.schema import activity_types, consents, contact_groups, webhook_endpoints
from waypost.store.type_fields import load_type_fields


def invalid(message: str, field: str) -> ApiError:
    """The 400 of a playbook that names what does not exist, or cannot be evaluated."""
    return ApiError(400, "invalid_field", message, field)


def check_playbook(
    conn: Connection,
    trigger: Trigger,
    audience: dict[str, Any] | None,
    actions: Sequence[Action],
    today: dt.date,
    limits: bool = True,
) -> None:
    """Refuse a playbook whose trigger, audience or actions break a rule (a 400 naming where).
    ``limits``: the audience is held to the limits of a new condition (False for one saved
    before them and not changed)."""
    try:
        check_actions(actions)
        condition = parse_audience(audience, limits=limits)
    except PlaybookError as exc:
        raise invalid(str(exc), exc.field) from None
    check_trigger(conn, trigger)
    if condition is not None:
        check_audience(conn, condition, today)
    check_endpoints(conn, actions)


def check_trigger(conn: Connection, trigger: Trigger) -> tuple[FieldFilter, ...]:
    """The trigger's field filters, typed, once what it names is known to exist."""
    if isinstance(trigger, ActivityTrigger):
        type_id = conn.execute(
            sa.select(activity_types.c.id).where(activity_types.c.code_name == trigger.type)
        ).scalar_one_or_none()
        if type_id is None:
            raise invalid(
                f"No activity type has the code name {quoted(trigger.type)}.", "trigger.type"
            )
        specs = load_type_fields(conn, [type_id]).get(type_id, [])
        try:
            return compile_filters(specs, trigger.fields)
        except PlaybookError as exc:
            raise invalid(str(exc), exc.field) from None
    if isinstance(trigger, ConsentAgreedTrigger | ConsentRevokedTrigger):
        found = conn.execute(
            sa.select(consents.c.id).where(consents.c.code_name == trigger.consent)
        ).first()
        if found is None:
            raise invalid(
                f"No consent has the code name {quoted(trigger.consent)}.", "trigger.consent"
            )
        return ()
    found = conn.execute(
        sa.select(contact_groups.c.id).where(contact_groups.c.id == trigger.group)
    ).first()
    if found is None:
        raise invalid(f"No contact group has the id {trigger.group}.", "trigger.group")
    return ()


def check_audience(conn: Connection, condition: Condition, today: dt.date) -> None:
    """Refuse an audience that names a group, type or consent that does not exist, or that
    cannot be compiled against today's activity types."""
    groups = set(conn.execute(sa.select(contact_groups.c.id)).scalars())
    types = set(conn.execute(sa.select(activity_types.c.code_name)).scalars())
    consent_codes = set(conn.execute(sa.select(consents.c.code_name)).scalars())
    for where, node in located(condition, "audience"):
        if isinstance(node, GroupCondition) and node.group not in groups:
            raise invalid(f"No contact group has the id {node.group}.", f"{where}")
        if isinstance(node, ActivityCondition) and node.type not in types:
            raise invalid(
                f"No activity type has the code name {quoted(node.type)}.", f"{where}.type"
            )
        if isinstance(node, ConsentCondition) and node.consent not in consent_codes:
            raise invalid(f"No consent has the code name {quoted(node.consent)}.", where)
    ctx = load_context(conn, today, None)
    try:
        check_field_filters(condition, ctx, "audience")
        members_select(condition, ctx)
    except CompileError as exc:
        field = exc.field or "audience"
        raise invalid(str(exc).removeprefix(f"{field}: "), field) from None


def check_endpoints(conn: Connection, actions: Sequence[Action]) -> None:
    """Refuse an action whose endpoint does not exist."""
    wanted = [action.endpoint for action in actions]
    known: set[uuid.UUID] = set(
        conn.execute(
            sa.select(webhook_endpoints.c.id).where(webhook_endpoints.c.id.in_(wanted))
        ).scalars()
    )
    for i, endpoint in enumerate(wanted):
        if endpoint not in known:
            raise invalid(f"No webhook endpoint has the id {endpoint}.", f"actions[{i}].endpoint")
