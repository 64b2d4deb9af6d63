"""Contact groups: definitions, their members, and the group service the API and admin call.

Membership is computed in full when a group is created or its condition changes, and once a
day for groups whose windows slide (``within_days``). Between those, every stored activity,
contact field change and consent change re-evaluates the groups for the contacts it touched
(see waypost/services/group_updates.py), from the daily rollups. Every entry and exit is
recorded with its time. The computing is waypost/services/group_computing.py; checks and
explanations of one contact are waypost/services/group_checks.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.clock import Clock, SystemClock
from waypost.domain.conditions import (
    EVERYTHING,
    Changes,
    ConditionError,
    parse_condition,
    referenced_groups,
)
from waypost.domain.display_names import Description, DisplayName
from waypost.error_words import quoted
from waypost.errors import conflict, not_found, with_offset
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
from waypost.records.contacts import require_contact
from waypost.services.group_checks import (
    CheckQuery,
    Explained,
    Explanation,
    Membership,
    explain,
    membership,
)
from waypost.services.group_computing import GroupComputer
from waypost.services.group_history import (
    GroupHistory,
    MemberContact,
    member_contacts,
    membership_history,
)
from waypost.services.group_locks import hold_back_updates
from waypost.services.group_membership import GroupPlanCache
from waypost.services.group_rules import check_references, checked, parsed
from waypost.services.group_sql import load_context, members_select, within_database_limits
from waypost.services.reports import window
from waypost.store import Store, announce
from waypost.store.schema import contact_groups, group_members, playbooks

Name = DisplayName


class GroupCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new group: its condition is documented in docs/contact-groups.md."""

    name: Name
    condition: dict[str, Any]
    description: Description = ""


class GroupUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change of a group: what is left out stays; a new condition recomputes the group."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    condition: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class ConditionCheck(msgspec.Struct, forbid_unknown_fields=True):
    """A condition to try: how many contacts it holds for, saving nothing."""

    condition: dict[str, Any]


class ConditionCount(msgspec.Struct):
    """The answer of a dry run: the condition is valid, and holds for ``count`` contacts."""

    valid: bool
    count: int


class Group(msgspec.Struct):
    """A group with its kept member count and when it was last computed in full."""

    id: uuid.UUID
    name: str
    description: str
    condition: dict[str, Any]
    member_count: int
    computed_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class Member(msgspec.Struct):
    """A member of a group, since when."""

    contact: uuid.UUID
    since: dt.datetime


class ContactGroup(msgspec.Struct):
    """A group a contact is in, since when."""

    id: uuid.UUID
    name: str
    since: dt.datetime


class MemberQuery(msgspec.Struct, forbid_unknown_fields=True):
    """A page of groups or members."""

    limit: PageLimit = 100
    cursor: Cursor | None = None


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
        self.computer = GroupComputer(store, self.clock, self.plans)

    # -- definitions -----------------------------------------------------------------------

    def create(self, body: GroupCreate) -> Group:
        """Save a group and compute its members."""
        condition = parsed(body.condition)
        group_id = new_id()
        now = self.clock.now()
        try:
            with self.store.write() as conn:
                hold_back_updates(conn)
                check_references(conn, group_id, condition)
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
                self.computer.compute(conn, group_id, condition, self._today(), new_group=True)
                announce(conn, "group", group_id)
                return self._get(conn, group_id)
        except IntegrityError:
            raise conflict(f"A group named {quoted(body.name)} exists already.", "name") from None

    def update(self, group_id: uuid.UUID, body: GroupUpdate) -> Group:
        """Change a group; a new condition recomputes it and the groups built on it."""
        try:
            with self.store.write() as conn:
                if body.condition is not msgspec.UNSET:
                    hold_back_updates(conn)
                current = self._get(conn, group_id)
                values: dict[str, Any] = {}
                if body.name is not msgspec.UNSET:
                    values["name"] = body.name
                if body.description is not msgspec.UNSET:
                    values["description"] = body.description
                condition = None
                if body.condition is not msgspec.UNSET:
                    condition = parsed(body.condition, body.condition != current.condition)
                    check_references(conn, group_id, condition)
                    values["condition"] = body.condition
                values["updated_at"] = self.clock.now()
                conn.execute(
                    contact_groups.update().where(contact_groups.c.id == group_id).values(**values)
                )
                if condition is not None:
                    self.computer.compute_with_dependents(
                        conn, group_id, condition, self._today(), condition_changed=True
                    )
                announce(conn, "group", group_id)
                return self._get(conn, group_id)
        except IntegrityError:
            raise conflict("A group with that name exists already.", "name") from None

    def delete(self, group_id: uuid.UUID) -> None:
        """Delete a group no other group's condition and no playbook uses."""
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
            books = _playbooks_using(conn, group_id)
            if books:
                raise conflict(f"Playbooks {', '.join(books)} use this group; change them first.")
            conn.execute(contact_groups.delete().where(contact_groups.c.id == group_id))
            announce(conn, "group", group_id)

    def get(self, group_id: uuid.UUID) -> Group:
        """One group, or a 404."""
        with self.store.read() as conn:
            return self._get(conn, group_id)

    def list_page(self, query: MemberQuery) -> Page[Group]:
        """The groups in id order, a page at a time."""
        stmt = sa.select(contact_groups).order_by(contact_groups.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(contact_groups.c.id > after)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([_row(r) for r in rows], query.limit, lambda g: g.id)

    def validate(self, body: ConditionCheck) -> ConditionCount:
        """Count the contacts a condition holds for, now, saving nothing."""
        condition = parsed(body.condition)
        with self.store.read() as conn:
            check_references(conn, None, condition)
            ctx = load_context(conn, self._today(), None)
            stmt = members_select(condition, checked(ctx, condition))
            with within_database_limits():
                count = conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))
                return ConditionCount(True, int(count.scalar_one()))

    # -- membership --------------------------------------------------------------------------

    def members(self, group_id: uuid.UUID, query: MemberQuery) -> Page[Member]:
        """The members in contact id order, a page at a time."""
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
        if at is not None:
            with_offset(at, "at")
        with self.store.read() as conn:
            self._get(conn, group_id)
            contact_id = require_contact(conn, contact_id)
            return membership(conn, group_id, contact_id, at)

    def explain(self, group_id: uuid.UUID, contact_id: uuid.UUID) -> Explained:
        """Which conditions held for the contact, and which activities counted."""
        with self.store.read() as conn:
            group = self._get(conn, group_id)
            contact_id = require_contact(conn, contact_id)
            condition = parse_condition(group.condition)
            ctx = checked(load_context(conn, self._today(), [contact_id]), condition)
            explanation = explain(conn, condition, group.condition, ctx, contact_id)
        return Explained(group_id, contact_id, explanation.held, explanation)

    # -- computing ---------------------------------------------------------------------------

    def update_contacts(
        self, contact_ids: Iterable[uuid.UUID], changes: Changes = EVERYTHING
    ) -> int:
        """Re-evaluate, for these contacts, the groups ``changes`` can concern; the number of
        entries and exits (see ``GroupComputer.update_contacts``)."""
        return self.computer.update_contacts(contact_ids, changes)

    def refresh_windows(self, today: dt.date | None = None) -> list[uuid.UUID]:
        """Recompute, once per UTC day, the groups whose windows slide; the groups done."""
        return self.computer.refresh_windows(today)

    def recompute(self, group_id: uuid.UUID) -> Group:
        """Compute a group in full now, and the groups built on it if its members changed."""
        with self.store.write() as conn:
            hold_back_updates(conn)
            group = self._get(conn, group_id)
            condition = parse_condition(group.condition)
            self.computer.compute_with_dependents(conn, group_id, condition, self._today())
            return self._get(conn, group_id)

    def _today(self) -> dt.date:
        return self.clock.now().date()

    def _get(self, conn: Connection, group_id: uuid.UUID) -> Group:
        row = conn.execute(sa.select(contact_groups).where(contact_groups.c.id == group_id)).first()
        if row is None:
            raise not_found("group")
        return _row(row)


def _playbooks_using(conn: Connection, group_id: uuid.UUID) -> list[str]:
    """The playbooks whose trigger or audience names the group."""
    found = []
    for row in conn.execute(sa.select(playbooks.c.name, playbooks.c.trigger, playbooks.c.audience)):
        audience = row.audience
        if (row.trigger or {}).get("group") == str(group_id) or (
            audience is not None and group_id in _groups_named(audience)
        ):
            found.append(row.name)
    return sorted(found)


def _groups_named(audience: Any) -> set[uuid.UUID]:
    try:
        return referenced_groups(parse_condition(audience))
    except ConditionError:
        return set()


__all__ = [
    "CheckQuery",
    "ConditionCheck",
    "ConditionCount",
    "ContactGroup",
    "Explained",
    "Explanation",
    "Group",
    "GroupCreate",
    "GroupService",
    "GroupUpdate",
    "Member",
    "MemberQuery",
    "Membership",
]
