"""Contact groups: definitions, membership kept current, checks and explanations.

Membership is computed in full when a group is created or its condition changes, and once a
day for groups whose windows slide (``within_days``). Between those, every stored activity,
contact field change and consent change re-evaluates the groups for the contacts it touched
(see waypost/services/group_updates.py), from the daily rollups. Every entry and exit is
recorded with its time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.clock import Clock, SystemClock
from waypost.domain.conditions import (
    EVERYTHING,
    ActivityCondition,
    All,
    AnyOf,
    Changes,
    Condition,
    ConditionError,
    ConsentCondition,
    GroupCondition,
    Not,
    located,
    parse_condition,
    referenced_groups,
    uses_time_window,
)
from waypost.errors import ApiError, conflict, not_found
from waypost.ids import new_id
from waypost.pagination import (
    Cursor,
    ListQuery,
    Page,
    PageLimit,
    cursor_id,
    encode_cursor,
    page_by_id,
)
from waypost.records.contacts import contact_not_found, require_contact
from waypost.services.group_history import (
    GroupHistory,
    MemberContact,
    member_contacts,
    membership_history,
)
from waypost.services.group_membership import (
    GroupPlan,
    GroupPlanCache,
    apply_some,
    busy_contacts,
    evaluate,
    hold_back_updates,
    recompute_all,
    wait_for_computations,
)
from waypost.services.group_sql import (
    CompileError,
    Context,
    check_field_filters,
    load_context,
    members_select,
    within_database_limits,
)
from waypost.services.reports import window
from waypost.store import Store, announce
from waypost.store.schema import (
    activities,
    activity_types,
    consents,
    contact_groups,
    group_members,
    group_membership_events,
)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class GroupCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new group: its condition is documented in docs/contact-groups.md."""

    name: Name
    condition: dict[str, Any]
    description: str = ""


class GroupUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    condition: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class ConditionCheck(msgspec.Struct, forbid_unknown_fields=True):
    """A condition to try: how many contacts it holds for, saving nothing."""

    condition: dict[str, Any]


class ConditionCount(msgspec.Struct):
    valid: bool
    count: int


class Group(msgspec.Struct):
    id: uuid.UUID
    name: str
    description: str
    condition: dict[str, Any]
    member_count: int
    computed_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class Member(msgspec.Struct):
    contact: uuid.UUID
    since: dt.datetime


class Membership(msgspec.Struct):
    """A contact's membership of a group, now or at ``at``."""

    group: uuid.UUID
    contact: uuid.UUID
    member: bool
    since: dt.datetime | None
    at: dt.datetime | None = None


class ContactGroup(msgspec.Struct):
    id: uuid.UUID
    name: str
    since: dt.datetime


class Explanation(msgspec.Struct):
    """One node of a condition and whether it held for the contact; activity conditions also
    give the count and the activities that counted (at most 100, newest first)."""

    condition: dict[str, Any]
    held: bool
    count: int | None = None
    activities: list[uuid.UUID] | None = None
    children: list[Explanation] | None = None


class Explained(msgspec.Struct):
    group: uuid.UUID
    contact: uuid.UUID
    member: bool
    explanation: Explanation


class MemberQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: PageLimit = 100
    cursor: Cursor | None = None


class CheckQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``at``: answer for that moment (ISO 8601 with an offset) instead of now."""

    at: dt.datetime | None = None


def _row(row: sa.Row[Any]) -> Group:
    return Group(
        id=row.id,
        name=row.name,
        description=row.description,
        condition=row.condition,
        member_count=row.member_count,
        computed_at=row.computed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class GroupService:
    """Groups on the store."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock if clock is not None else SystemClock()
        self.plans = GroupPlanCache()

    # -- definitions -----------------------------------------------------------------------

    def create(self, body: GroupCreate) -> Group:
        condition = self._parse(body.condition)
        group_id = new_id()
        now = self.clock.now()
        try:
            with self.store.write() as conn:
                hold_back_updates(conn)
                self._check_references(conn, group_id, condition)
                conn.execute(
                    contact_groups.insert().values(
                        id=group_id,
                        name=body.name,
                        description=body.description,
                        condition=body.condition,
                        member_count=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
                self._recompute(conn, group_id, condition, self._today())
                announce(conn, "group", group_id)
                return self._get(conn, group_id)
        except IntegrityError:
            raise conflict(f"A group named {body.name!r} exists already.", "name") from None

    def update(self, group_id: uuid.UUID, body: GroupUpdate) -> Group:
        try:
            with self.store.write() as conn:
                if body.condition is not msgspec.UNSET:
                    hold_back_updates(conn)
                self._get(conn, group_id)
                values: dict[str, Any] = {}
                if body.name is not msgspec.UNSET:
                    values["name"] = body.name
                if body.description is not msgspec.UNSET:
                    values["description"] = body.description
                condition = None
                if body.condition is not msgspec.UNSET:
                    condition = self._parse(body.condition)
                    self._check_references(conn, group_id, condition)
                    values["condition"] = body.condition
                values["updated_at"] = self.clock.now()
                conn.execute(
                    contact_groups.update().where(contact_groups.c.id == group_id).values(**values)
                )
                if condition is not None:
                    self._recompute(conn, group_id, condition, self._today())
                    for dependent in self._dependents(conn, group_id):
                        self._recompute(conn, dependent[0], dependent[1], self._today())
                announce(conn, "group", group_id)
                return self._get(conn, group_id)
        except IntegrityError:
            raise conflict("A group with that name exists already.", "name") from None

    def delete(self, group_id: uuid.UUID) -> None:
        with self.store.write() as conn:
            self._get(conn, group_id)
            users = [
                row.name
                for row in conn.execute(
                    sa.select(contact_groups.c.name, contact_groups.c.condition)
                )
                if group_id in referenced_groups(parse_condition(row.condition))
            ]
            if users:
                raise conflict(f"Groups {', '.join(users)} use this group; change them first.")
            conn.execute(contact_groups.delete().where(contact_groups.c.id == group_id))
            announce(conn, "group", group_id)

    def get(self, group_id: uuid.UUID) -> Group:
        with self.store.read() as conn:
            return self._get(conn, group_id)

    def list_page(self, query: MemberQuery) -> Page[Group]:
        stmt = sa.select(contact_groups).order_by(contact_groups.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(contact_groups.c.id > after)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([_row(r) for r in rows], query.limit, lambda g: g.id)

    def validate(self, body: ConditionCheck) -> ConditionCount:
        """Count the contacts a condition holds for, now, saving nothing."""
        condition = self._parse(body.condition)
        with self.store.read() as conn:
            self._check_references(conn, None, condition)
            ctx = load_context(conn, self._today(), None)
            stmt = members_select(condition, self._checked(ctx, condition))
            with within_database_limits():
                count = conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))
                return ConditionCount(True, int(count.scalar_one()))

    # -- membership --------------------------------------------------------------------------

    def members(self, group_id: uuid.UUID, query: MemberQuery) -> Page[Member]:
        m = group_members
        stmt = (
            sa.select(m.c.contact_id, m.c.since)
            .where(m.c.group_id == group_id)
            .order_by(m.c.contact_id)
            .limit(query.limit + 1)
        )
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(m.c.contact_id > after)
        with self.store.read() as conn:
            self._get(conn, group_id)
            rows = conn.execute(stmt).all()
        items = [Member(r.contact_id, r.since) for r in rows]
        more = len(items) > query.limit
        items = items[: query.limit]
        return Page(items, encode_cursor(str(items[-1].contact)) if more else None)

    def contact_groups(self, contact_id: uuid.UUID, query: ListQuery) -> Page[ContactGroup]:
        """The groups a contact is in, oldest group first, a page at a time."""
        stmt = (
            sa.select(contact_groups.c.id, contact_groups.c.name, group_members.c.since)
            .join(group_members, group_members.c.group_id == contact_groups.c.id)
            .order_by(contact_groups.c.id)
            .limit(query.limit + 1)
        )
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(contact_groups.c.id > after)
        with self.store.read() as conn:
            contact_id = require_contact(conn, contact_id)
            rows = conn.execute(stmt.where(group_members.c.contact_id == contact_id)).all()
        items = [ContactGroup(r.id, r.name, r.since) for r in rows]
        return page_by_id(items, query.limit, lambda g: g.id)

    def member_contacts(self, group_id: uuid.UUID, query: MemberQuery) -> Page[MemberContact]:
        """The members with their emails and names, for people to read."""
        with self.store.read() as conn:
            self._get(conn, group_id)
            return member_contacts(conn, group_id, query.limit, query.cursor)

    def history(
        self, group_id: uuid.UUID, days: int = 30, today: dt.date | None = None
    ) -> GroupHistory:
        """The members at the end of each of the last ``days`` UTC days, with the day's
        entries and exits."""
        first, last = window(days, today or self._today())
        with self.store.read() as conn:
            self._get(conn, group_id)
            return GroupHistory(
                group_id, first, last, membership_history(conn, group_id, first, last)
            )

    def check(
        self, group_id: uuid.UUID, contact_id: uuid.UUID, at: dt.datetime | None
    ) -> Membership:
        """A lookup of the kept membership (no recomputation), now or at a past moment."""
        if at is not None and at.tzinfo is None:
            raise ApiError(400, "invalid_field", "at needs an offset, e.g. Z.", "at")
        with self.store.read() as conn:
            self._get(conn, group_id)
            contact_id = require_contact(conn, contact_id)
            if at is None:
                since = conn.execute(
                    sa.select(group_members.c.since).where(
                        group_members.c.group_id == group_id,
                        group_members.c.contact_id == contact_id,
                    )
                ).scalar_one_or_none()
                return Membership(group_id, contact_id, since is not None, since)
            e = group_membership_events
            last = conn.execute(
                sa.select(e.c.entered, e.c.at)
                .where(e.c.group_id == group_id, e.c.contact_id == contact_id, e.c.at <= at)
                .order_by(e.c.at.desc(), e.c.seq.desc())
                .limit(1)
            ).first()
        member = last is not None and bool(last.entered)
        return Membership(group_id, contact_id, member, last.at if member and last else None, at)

    def explain(self, group_id: uuid.UUID, contact_id: uuid.UUID) -> Explained:
        """Which conditions held for the contact, and which activities counted."""
        with self.store.read() as conn:
            group = self._get(conn, group_id)
            contact_id = require_contact(conn, contact_id)
            condition = parse_condition(group.condition)
            ctx = self._checked(load_context(conn, self._today(), [contact_id]), condition)
            explanation = self._explain(conn, condition, group.condition, ctx, contact_id)
        return Explained(group_id, contact_id, explanation.held, explanation)

    def _explain(
        self,
        conn: Connection,
        condition: Condition,
        raw: dict[str, Any],
        ctx: Context,
        contact_id: uuid.UUID,
    ) -> Explanation:
        held = conn.execute(members_select(condition, ctx)).first() is not None
        node = Explanation(condition=raw, held=held)
        if isinstance(condition, All | AnyOf):
            key = "all" if isinstance(condition, All) else "any"
            node.children = [
                self._explain(conn, item, item_raw, ctx, contact_id)
                for item, item_raw in zip(condition.items, raw[key], strict=True)
            ]
        elif isinstance(condition, Not):
            node.children = [self._explain(conn, condition.item, raw["not"], ctx, contact_id)]
        elif isinstance(condition, ActivityCondition):
            node.count, node.activities = self._counted(conn, condition, ctx, contact_id)
        return node

    def _counted(
        self, conn: Connection, condition: ActivityCondition, ctx: Context, contact_id: uuid.UUID
    ) -> tuple[int, list[uuid.UUID]]:
        """How many activities counted, and the newest 100 of them."""
        ref = ctx.types.get(condition.type)
        if ref is None or ref.id is None:
            return 0, []
        from waypost.services.group_sql import day_start, field_conditions

        first, last = condition.window(ctx.today)
        stmt = sa.select(activities.c.id).where(
            activities.c.contact_id == contact_id, activities.c.type_id == ref.id
        )
        if first is not None:
            stmt = stmt.where(activities.c.occurred_at >= day_start(first))
        if last is not None:
            stmt = stmt.where(activities.c.occurred_at < day_start(last + dt.timedelta(days=1)))
        if condition.fields:
            stmt = stmt.where(*field_conditions(condition, ref, ctx))
        count = conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar_one()
        newest = stmt.order_by(activities.c.occurred_at.desc()).limit(100)
        return int(count), list(conn.execute(newest).scalars())

    # -- computing ---------------------------------------------------------------------------

    def update_contacts(
        self, contact_ids: Iterable[uuid.UUID], changes: Changes = EVERYTHING
    ) -> int:
        """Re-evaluate, for these contacts, the groups ``changes`` can concern; the number of
        entries and exits.

        The groups are evaluated first in a read transaction; only contacts whose membership
        differs are evaluated again and written in a write transaction, so the common case
        (an activity that changes no membership) takes no write lock.
        """
        ids = sorted(set(contact_ids))
        if not ids:
            return 0
        with self.store.read() as conn:
            busy = busy_contacts(conn, ids)
            plan = self.plans.get(conn, self._today())
            differing = sorted(set(self._differing(conn, plan, changes, ids)) | busy)
        if not differing:
            return 0
        changes_made = 0
        with self.store.write() as conn:
            wait_for_computations(conn)
            if conn.dialect.name == "postgresql":
                # Serialise evaluations of one contact across processes, and let a full
                # recomputation of a group (which locks its row for update) go first. NO KEY
                # UPDATE, not UPDATE: the writer's inserts of activities take KEY SHARE on their
                # contacts (the foreign key), in their own order, and FOR UPDATE deadlocked
                # with them.
                conn.execute(
                    sa.text(
                        "SELECT id FROM contacts WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"
                    ),
                    {"ids": differing},
                )
                # KEY SHARE, not SHARE: it holds a recomputation (FOR UPDATE) back all the same,
                # but not another process's update of member_count (FOR NO KEY UPDATE), so two
                # processes that both hold it never deadlock upgrading it.
                conn.execute(
                    sa.select(contact_groups.c.id).with_for_update(read=True, key_share=True)
                )
            plan = self.plans.get(conn, self._today())
            changed: set[uuid.UUID] = set()
            for group in plan.groups:
                if group.affected(changes, changed):
                    made = apply_some(
                        conn, group.id, *evaluate(conn, group, differing), self.clock.now()
                    )
                    if made:
                        changed.add(group.id)
                        changes_made += made
        return changes_made

    def _differing(
        self, conn: Connection, plan: GroupPlan, changes: Changes, ids: list[uuid.UUID]
    ) -> list[uuid.UUID]:
        """The contacts whose membership of some group would change."""
        differing: set[uuid.UUID] = set()
        changed: set[uuid.UUID] = set()
        for group in plan.groups:
            # A group that refers to another whose members would change is evaluated too; it
            # reads the kept members, so what it finds is checked again when writing.
            if group.affected(changes, changed):
                entered, left = evaluate(conn, group, ids)
                if entered or left:
                    differing |= entered | left
                    changed.add(group.id)
        return sorted(differing)

    def refresh_windows(self, today: dt.date | None = None) -> list[uuid.UUID]:
        """Recompute, once per UTC day, the groups whose windows slide.

        A node claims a group by moving its ``computed_day`` forward; only the node whose
        update changed the row recomputes it, so several nodes never do the work twice.
        """
        day = today or self._today()
        done: list[uuid.UUID] = []
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(contact_groups.c.id, contact_groups.c.condition).where(
                    sa.or_(
                        contact_groups.c.computed_day.is_(None),
                        contact_groups.c.computed_day < day,
                    )
                )
            ).all()
        for row in rows:
            condition = parse_condition(row.condition)
            if not uses_time_window(condition):
                continue
            with self.store.write() as conn:
                hold_back_updates(conn)
                claimed = conn.execute(
                    contact_groups.update()
                    .where(
                        contact_groups.c.id == row.id,
                        sa.or_(
                            contact_groups.c.computed_day.is_(None),
                            contact_groups.c.computed_day < day,
                        ),
                    )
                    .values(computed_day=day)
                ).rowcount
                if claimed:
                    if self._recompute(conn, row.id, condition, day):
                        # Groups built on this one change with it.
                        for dependent, dependent_condition in self._dependents(conn, row.id):
                            self._recompute(conn, dependent, dependent_condition, day)
                    done.append(row.id)
        return done

    def recompute(self, group_id: uuid.UUID) -> Group:
        with self.store.write() as conn:
            hold_back_updates(conn)
            group = self._get(conn, group_id)
            if self._recompute(conn, group_id, parse_condition(group.condition), self._today()):
                # Groups built on this one change with it.
                for dependent, dependent_condition in self._dependents(conn, group_id):
                    self._recompute(conn, dependent, dependent_condition, self._today())
            return self._get(conn, group_id)

    def _recompute(
        self, conn: Connection, group_id: uuid.UUID, condition: Condition, day: dt.date
    ) -> int:
        # Callers hold back the incremental updates from the start of their transaction (see
        # hold_back_updates); taken again, it is held already.
        hold_back_updates(conn)
        conn.execute(
            sa.select(contact_groups.c.id).where(contact_groups.c.id == group_id).with_for_update()
        )
        ctx = self._checked(load_context(conn, day, None), condition)
        with within_database_limits():
            changes = recompute_all(conn, group_id, condition, ctx, self.clock.now())
        count = conn.execute(
            sa.select(sa.func.count()).where(group_members.c.group_id == group_id)
        ).scalar_one()
        conn.execute(
            contact_groups.update()
            .where(contact_groups.c.id == group_id)
            .values(member_count=count, computed_at=self.clock.now(), computed_day=day)
        )
        return changes

    # -- rules ------------------------------------------------------------------------------

    def _parse(self, data: dict[str, Any]) -> Condition:
        try:
            return parse_condition(data)
        except ConditionError as exc:
            raise ApiError(400, "invalid_field", str(exc), "condition") from None

    def _checked(self, ctx: Context, condition: Condition) -> Context:
        try:
            check_field_filters(condition, ctx)
            members_select(condition, ctx)
        except CompileError as exc:
            raise ApiError(400, "invalid_field", str(exc), "condition") from None
        return ctx

    def _check_references(
        self, conn: Connection, group_id: uuid.UUID | None, condition: Condition
    ) -> None:
        rows = {
            r.id: parse_condition(r.condition)
            for r in conn.execute(sa.select(contact_groups.c.id, contact_groups.c.condition))
        }
        for where, node in located(condition):
            if isinstance(node, GroupCondition) and node.group not in rows:
                raise _invalid(f"{where}: no group {node.group}.")
        graph = {gid: referenced_groups(cond) for gid, cond in rows.items()}
        graph[group_id or uuid.UUID(int=0)] = referenced_groups(condition)
        try:
            tuple(TopologicalSorter(graph).static_order())
        except CycleError:
            raise ApiError(
                400,
                "invalid_field",
                "The condition makes groups refer to each other in a cycle.",
                "condition",
            ) from None
        types = set(conn.execute(sa.select(activity_types.c.code_name)).scalars())
        consent_codes = set(conn.execute(sa.select(consents.c.code_name)).scalars())
        for where, node in located(condition):
            if isinstance(node, ActivityCondition) and node.type not in types:
                raise _invalid(f"{where}: no activity type {node.type!r}.")
            if isinstance(node, ConsentCondition) and node.consent not in consent_codes:
                raise _invalid(f"{where}: no consent {node.consent!r}.")

    def _dependents(
        self, conn: Connection, group_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, Condition]]:
        """The groups built on this one, directly or not, in the order to compute them."""
        affected = {group_id}
        result = []
        for group in self.plans.get(conn, self._today()).groups:
            if group.groups & affected:
                affected.add(group.id)
                result.append((group.id, group.condition))
        return result

    def _today(self) -> dt.date:
        return self.clock.now().date()

    def _get(self, conn: Connection, group_id: uuid.UUID) -> Group:
        row = conn.execute(sa.select(contact_groups).where(contact_groups.c.id == group_id)).first()
        if row is None:
            raise not_found("group")
        return _row(row)


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_field", message, "condition")


__all__ = ["GroupService", "contact_not_found"]
