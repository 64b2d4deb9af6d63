"""Conditions compiled to set-based SQL: one SELECT of contact ids per condition.

Activity counts come from the daily rollups (contact, type, day, count), so a group over
millions of activities reads the rollups of the types and days it names, not the activities.
Only a condition that filters on field values reads the activities of its type.

``all`` intersects, ``any`` unites, ``not`` complements; complements are kept symbolic as long
as possible (``A and not B`` is ``A EXCEPT B``) so the set of every contact is only read when a
condition has nothing positive to start from. Restricted to some contacts (``only``), the same
SQL evaluates those contacts alone, which is how an activity updates memberships incrementally.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from waypost.domain.conditions import (
    ActivityCondition,
    All,
    AnyOf,
    Condition,
    ConsentCondition,
    ContactCondition,
    GroupCondition,
    Not,
    located,
)
from waypost.domain.field_filters import FieldFilter, FilterError, parse_filters
from waypost.domain.field_values import number_text
from waypost.domain.fields import FieldSpec
from waypost.errors import ApiError
from waypost.services.activities import field_condition
from waypost.store.schema import (
    activities,
    activity_rollups,
    activity_types,
    consent_agreements,
    consents,
    contact_groups,
    contacts,
    group_members,
)
from waypost.store.type_fields import load_type_fields

Select = sa.Select[Any]


@dataclass(frozen=True)
class TypeRef:
    id: uuid.UUID | None
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class Context:
    """What compilation needs: today's date, types and consents by code, the dialect."""

    today: dt.date
    types: dict[str, TypeRef]
    consents: dict[str, uuid.UUID]
    dialect: str
    # Some contacts, or a bind parameter (expanding) that will name them.
    only: Sequence[uuid.UUID] | sa.BindParameter[Any] | None = None


@dataclass(frozen=True)
class _Set:
    select: Select
    negated: bool = False


class CompileError(ValueError):
    """A condition that cannot be compiled; ``field`` names where, when one place is at fault
    (``all[1].activity.fields.amount``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# What databases say when a statement is beyond what they parse or plan (SQLite's parser stack
# and expression depth, PostgreSQL's class 54 "program limit exceeded").
_TOO_COMPLEX = (
    "parser stack overflow",
    "expression tree is too large",
    "too many terms in compound select",
    "at most 64 tables in a join",
)


@contextmanager
def within_database_limits() -> Iterator[None]:
    """A condition whose SQL the database refuses as too complex is a 400, not an outage."""
    try:
        yield
    except DBAPIError as exc:
        message = str(exc.orig).lower()
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        if sqlstate.startswith("54") or any(m in message for m in _TOO_COMPLEX):
            raise ApiError(
                400,
                "invalid_field",
                "The condition is too complex for the database to evaluate at once; split it "
                "into groups that refer to each other.",
                "condition",
            ) from None
        raise


def members_select(condition: Condition, ctx: Context) -> Select:
    """SELECT contact_id of every (surviving) contact the condition holds for."""
    result = _compile(condition, ctx)
    if result.negated:
        return _universe(ctx).except_(result.select)  # type: ignore[return-value]
    return result.select


def _universe(ctx: Context) -> Select:
    stmt = sa.select(contacts.c.id.label("contact_id")).where(contacts.c.merged_into.is_(None))
    if ctx.only is not None:
        stmt = stmt.where(contacts.c.id.in_(ctx.only))
    return stmt


def _only(stmt: Select, column: Any, ctx: Context) -> Select:
    return stmt.where(column.in_(ctx.only)) if ctx.only is not None else stmt


def _compile(condition: Condition, ctx: Context) -> _Set:
    if isinstance(condition, Not):
        inner = _compile(condition.item, ctx)
        return _Set(inner.select, not inner.negated)
    if isinstance(condition, All):
        parts = [_compile(item, ctx) for item in condition.items]
        positive = [p.select for p in parts if not p.negated]
        negative = [p.select for p in parts if p.negated]
        if not positive:
            return _Set(_union(negative), negated=True)
        stmt = _intersect(positive)
        if negative:
            stmt = _subq(_subq(stmt).except_(_union(negative)))
        return _Set(stmt)
    if isinstance(condition, AnyOf):
        parts = [_compile(item, ctx) for item in condition.items]
        positive = [p.select for p in parts if not p.negated]
        negative = [p.select for p in parts if p.negated]
        if not negative:
            return _Set(_union(positive))
        # any(P, not N) = not (all(N) and not any(P))
        stmt = _intersect(negative)
        if positive:
            stmt = _subq(_subq(stmt).except_(_union(positive)))
        return _Set(stmt, negated=True)
    if isinstance(condition, ActivityCondition):
        return _activity(condition, ctx)
    if isinstance(condition, ContactCondition):
        return _Set(_contact(condition, ctx))
    if isinstance(condition, ConsentCondition):
        return _Set(_consent(condition, ctx))
    if isinstance(condition, GroupCondition):
        stmt = sa.select(group_members.c.contact_id).where(
            group_members.c.group_id == condition.group
        )
        return _Set(_only(stmt, group_members.c.contact_id, ctx))
    raise CompileError(f"cannot compile {condition!r}")


def _subq(stmt: Any) -> Select:
    """A compound select as a plain SELECT, so it can be combined again on every database."""
    sub = stmt.subquery()
    return sa.select(sub.c[0].label("contact_id"))


def _intersect(selects: list[Select]) -> Select:
    if len(selects) == 1:
        return selects[0]
    return _subq(sa.intersect(*[_subq(s) for s in selects]))


def _union(selects: list[Select]) -> Select:
    if len(selects) == 1:
        return selects[0]
    return _subq(sa.union(*[_subq(s) for s in selects]))


def _activity(condition: ActivityCondition, ctx: Context) -> _Set:
    ref = ctx.types.get(condition.type)
    if condition.count == "at_most":
        inner = ActivityCondition(
            condition.type,
            "at_least",
            condition.n + 1,
            condition.within_days,
            condition.start,
            condition.end,
            condition.fields,
        )
        return _Set(_activity(inner, ctx).select, negated=True)
    if condition.n == 0:
        if condition.count == "exactly":
            inner = ActivityCondition(
                condition.type,
                "at_least",
                1,
                condition.within_days,
                condition.start,
                condition.end,
                condition.fields,
            )
            return _Set(_activity(inner, ctx).select, negated=True)
        return _Set(_universe(ctx))  # at least 0: everyone
    if ref is None or ref.id is None:
        # No such type (yet): nobody has done it.
        return _Set(sa.select(contacts.c.id.label("contact_id")).where(sa.false()))
    first, last = condition.window(ctx.today)
    if condition.fields:
        total: Any = sa.func.count()
        stmt = sa.select(activities.c.contact_id).where(activities.c.type_id == ref.id)
        if first is not None:
            stmt = stmt.where(activities.c.occurred_at >= day_start(first))
        if last is not None:
            stmt = stmt.where(activities.c.occurred_at < day_start(last + dt.timedelta(days=1)))
        stmt = stmt.where(*field_conditions(condition, ref, ctx))
        stmt = _only(stmt, activities.c.contact_id, ctx)
    else:
        r = activity_rollups
        total = sa.func.sum(r.c.count)
        stmt = sa.select(r.c.contact_id).where(r.c.type_id == ref.id)
        if first is not None:
            stmt = stmt.where(r.c.day >= first)
        if last is not None:
            stmt = stmt.where(r.c.day <= last)
        stmt = _only(stmt, r.c.contact_id, ctx)
    key = stmt.selected_columns[0]
    stmt = stmt.group_by(key)
    if condition.count == "exactly":
        stmt = stmt.having(total == condition.n)
    elif condition.n > 1:
        stmt = stmt.having(total >= condition.n)
    return _Set(stmt)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def field_conditions(
    condition: ActivityCondition, ref: TypeRef, ctx: Context
) -> list[sa.ColumnElement[bool]]:
    where = f"activity {condition.type!r}"  # check_field_filters names the place
    return [field_condition(f, ctx.dialect) for f in _filters(condition, ref, where)]


def check_field_filters(condition: Condition, ctx: Context, path: str = "") -> None:
    """CompileError naming the place (``all[1].activity.fields.amount``, under ``path`` when
    the condition is part of something larger) of the first field filter its activity type
    cannot take."""
    for where, node in located(condition, path):
        if isinstance(node, ActivityCondition) and node.fields:
            ref = ctx.types.get(node.type)
            if ref is not None:
                _filters(node, ref, where)


def _filters(condition: ActivityCondition, ref: TypeRef, where: str) -> list[FieldFilter]:
    params: dict[str, str] = {}
    for name, op, value in condition.fields:
        key = name if op == "eq" else f"{name}.{op}"
        if isinstance(value, bool):
            params[key] = str(value).lower()
        elif isinstance(value, float):
            params[key] = number_text(value)  # as an activity's field takes it: 1e21 too
        else:
            params[key] = str(value)
    try:
        # Held to the limits when the condition was saved (or tried).
        return parse_filters(ref.fields, params, max_length=None)
    except FilterError as exc:
        # The parameter is field.<name>[.<op>]; field names hold no dot.
        name = exc.parameter.split(".")[1]
        raise CompileError(f"{where}.fields.{name}: {exc}", f"{where}.fields.{name}") from None


def _contact(condition: ContactCondition, ctx: Context) -> Select:
    name, op, value = condition.field, condition.op, condition.value
    column: Any
    if name.startswith("attributes."):
        # As text on both databases (SQLite's JSON_EXTRACT keeps a number a number).
        column = sa.cast(contacts.c.attributes[name.split(".", 1)[1]].as_string(), sa.Text)
    else:
        column = contacts.c[name]
    if name == "email" and op in ("equals", "not_equals", "in"):
        column = contacts.c.email_key
        value = [str(v).lower() for v in value] if op == "in" else str(value).lower()
    if op == "equals":
        predicate = column == _operand(name, value)
    elif op == "not_equals":
        predicate = sa.or_(column.is_(None), column != _operand(name, value))
    elif op == "contains":
        needle = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        predicate = column.ilike(f"%{needle}%", escape="\\")
    elif op == "in":
        predicate = column.in_([_operand(name, v) for v in value])
    elif op == "exists":
        predicate = column.is_not(None) if value else column.is_(None)
    else:
        day = value if name == "birthday" else day_start(value)
        predicate = column < day if op == "before" else column >= day
    stmt = sa.select(contacts.c.id.label("contact_id")).where(
        contacts.c.merged_into.is_(None), predicate
    )
    return _only(stmt, contacts.c.id, ctx)


def _operand(name: str, value: Any) -> Any:
    if name in ("country", "state") and isinstance(value, str):
        return value.upper()
    return value


def _consent(condition: ConsentCondition, ctx: Context) -> Select:
    consent_id = ctx.consents.get(condition.consent)
    if consent_id is None:
        return sa.select(contacts.c.id.label("contact_id")).where(sa.false())
    a = consent_agreements
    newer = sa.alias(consent_agreements, "newer")
    stmt = sa.select(a.c.contact_id).where(
        a.c.consent_id == consent_id,
        a.c.agreed.is_(True),
        ~sa.exists().where(
            newer.c.contact_id == a.c.contact_id,
            newer.c.consent_id == a.c.consent_id,
            sa.or_(
                newer.c.created_at > a.c.created_at,
                sa.and_(newer.c.created_at == a.c.created_at, newer.c.id > a.c.id),
            ),
        ),
    )
    return _only(stmt, a.c.contact_id, ctx)


@dataclass(frozen=True)
class ConditionCatalog:
    """Types (with their fields) and consents by code name: what conditions name."""

    types: dict[str, TypeRef]
    consents: dict[str, uuid.UUID]

    def context(
        self,
        today: dt.date,
        dialect: str,
        only: Sequence[uuid.UUID] | sa.BindParameter[Any] | None = None,
    ) -> Context:
        return Context(today, self.types, self.consents, dialect, only)


def load_condition_catalog(conn: sa.Connection) -> ConditionCatalog:
    fields = load_type_fields(conn)
    types = {
        r.code_name: TypeRef(r.id, tuple(fields.get(r.id, ())))
        for r in conn.execute(sa.select(activity_types.c.id, activity_types.c.code_name))
    }
    consent_ids = {
        r.code_name: r.id for r in conn.execute(sa.select(consents.c.code_name, consents.c.id))
    }
    return ConditionCatalog(types, consent_ids)


def _version_select() -> Select:
    # Every row's id and updated_at, not the count and the newest updated_at: a change
    # stamped earlier than the newest (a slow transaction committed after a faster one, a
    # node whose clock is behind) changes no maximum, but it changes its own row.
    parts = []
    for table in (activity_types, consents, contact_groups):
        stamps = (
            sa.select(
                (
                    sa.cast(table.c.id, sa.String) + "@" + sa.cast(table.c.updated_at, sa.String)
                ).label("stamp")
            )
            .order_by(table.c.id)
            .subquery()
        )
        parts.append(sa.select(sa.func.aggregate_strings(stamps.c.stamp, ",")).scalar_subquery())
    return sa.select(*parts)


_VERSION = _version_select()


def catalog_version(conn: sa.Connection) -> tuple[object, ...]:
    """Changes whenever a type, a consent or a group is added, changed or removed: a cached
    ConditionCatalog and the parsed groups stay valid while it stays the same."""
    return tuple(conn.execute(_VERSION).one())


def load_context(conn: sa.Connection, today: dt.date, only: Sequence[uuid.UUID] | None) -> Context:
    """Types (with their fields) and consents by code name, for compiling conditions."""
    return load_condition_catalog(conn).context(today, conn.dialect.name, only)
