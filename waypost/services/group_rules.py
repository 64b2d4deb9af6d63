"""The rules a group's condition must follow, each refusal a 400 naming ``condition``.

A condition must parse (docs/contact-groups.md), name only groups, activity types and consents
that exist, make no groups refer to each other in a cycle, and compile to SQL against today's
activity types (a field filter must name a field its type has, with a value of its kind).
"""

from __future__ import annotations

import uuid
from graphlib import CycleError, TopologicalSorter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.conditions import (
    ActivityCondition,
    Condition,
    ConditionError,
    ConsentCondition,
    GroupCondition,
    located,
    parse_condition,
    referenced_groups,
)
from waypost.error_words import quoted
from waypost.errors import ApiError
from waypost.services.group_sql import CompileError, Context, check_field_filters, members_select
from waypost.store.schema import activity_types, consents, contact_groups


def parsed(data: dict[str, Any], limits: bool = True) -> Condition:
    """The condition of a request body, or a 400 saying what is wrong with it. ``limits``:
    held to the limits of a new condition (False for one saved before them, sent back as it
    was by a form that changes something else)."""
    try:
        return parse_condition(data, limits=limits)
    except ConditionError as exc:
        raise invalid(str(exc)) from None


def checked(ctx: Context, condition: Condition) -> Context:
    """``ctx``, once the condition is known to compile against it; a 400 if it does not."""
    try:
        check_field_filters(condition, ctx)
        members_select(condition, ctx)
    except CompileError as exc:
        raise invalid(str(exc)) from None
    return ctx


def check_references(conn: Connection, group_id: uuid.UUID | None, condition: Condition) -> None:
    """Refuse a condition (of the group ``group_id``, None for one not saved) that names a
    group, activity type or consent that does not exist, or closes a cycle of groups."""
    rows = {
        r.id: parse_condition(r.condition)
        for r in conn.execute(sa.select(contact_groups.c.id, contact_groups.c.condition))
    }
    for where, node in located(condition):
        if isinstance(node, GroupCondition) and node.group not in rows:
            raise invalid(f"{where}: no group {node.group}.")
    graph = {gid: referenced_groups(cond) for gid, cond in rows.items()}
    graph[group_id or uuid.UUID(int=0)] = referenced_groups(condition)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError:
        raise invalid("The condition makes groups refer to each other in a cycle.") from None
    types = set(conn.execute(sa.select(activity_types.c.code_name)).scalars())
    consent_codes = set(conn.execute(sa.select(consents.c.code_name)).scalars())
    for where, node in located(condition):
        if isinstance(node, ActivityCondition) and node.type not in types:
            raise invalid(f"{where}: no activity type {quoted(node.type)}.")
        if isinstance(node, ConsentCondition) and node.consent not in consent_codes:
            raise invalid(f"{where}: no consent {quoted(node.consent)}.")


def invalid(message: str) -> ApiError:
    """The 400 of a condition that breaks a rule."""
    return ApiError(400, "invalid_field", message, "condition")
