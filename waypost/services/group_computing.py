"""Keeping group membership current: a group computed in full with the groups built on it,
the groups of some contacts evaluated again after they changed, and the daily refresh of the
groups whose windows slide.

Each runs in transactions of its own or of its caller, under the locking protocol of
waypost/services/group_locks.py; what is written, and how, is
waypost/services/group_membership.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.domain.conditions import (
    EVERYTHING,
    Changes,
    Condition,
    parse_condition,
    uses_time_window,
)
from waypost.services.group_locks import (
    busy_contacts,
    hold_back_updates,
    lock_for_update,
    lock_group,
)
from waypost.services.group_membership import (
    GroupPlan,
    GroupPlanCache,
    apply_some,
    evaluate,
    recompute_all,
)
from waypost.services.group_rules import checked
from waypost.services.group_sql import load_context, within_database_limits
from waypost.store import Store
from waypost.store.schema import contact_groups, group_members


class GroupComputer:
    """Computes the membership of the groups on the store, with the plan of one process."""

    def __init__(self, store: Store, clock: Clock, plans: GroupPlanCache) -> None:
        self.store = store
        self.clock = clock
        self.plans = plans
        # Whether a playbook fires on a group's entries or exits (the hub wires it to the
        # playbook triggers): only then does a full computation read back who moved.
        self.listens: Callable[[Connection, uuid.UUID], bool] | None = None

    def compute(
        self,
        conn: Connection,
        group_id: uuid.UUID,
        condition: Condition,
        day: dt.date,
        *,
        new_group: bool = False,
    ) -> int:
        """Compute one group in full for ``day``'s windows; the number of entries and exits.
        The caller's transaction holds back the incremental updates from its start (see
        ``hold_back_updates``). The entries and exits are emitted for the playbooks that
        listen to the group, except those of a ``new_group``'s first computation: its members
        did not enter it, it began (docs/playbooks.md, "Triggers")."""
        lock_group(conn, group_id)
        ctx = checked(load_context(conn, day, None), condition)
        listened = not new_group and self.listens is not None and self.listens(conn, group_id)
        with within_database_limits():
            changes = recompute_all(conn, group_id, condition, ctx, self.clock.now(), listened)
        count = conn.execute(
            sa.select(sa.func.count()).where(group_members.c.group_id == group_id)
        ).scalar_one()
        conn.execute(
            contact_groups.update()
            .where(contact_groups.c.id == group_id)
            .values(member_count=count, computed_at=self.clock.now(), computed_day=day)
        )
        return changes

    def compute_with_dependents(
        self,
        conn: Connection,
        group_id: uuid.UUID,
        condition: Condition,
        day: dt.date,
        *,
        condition_changed: bool = False,
    ) -> None:
        """Compute one group in full, then the groups built on it, directly or not, in the
        order they refer to each other. Those are only computed when some member entered or
        left, unless the group's condition has just changed: then they always are."""
        if self.compute(conn, group_id, condition, day) or condition_changed:
            for dependent, dependent_condition in self._dependents(conn, group_id):
                self.compute(conn, dependent, dependent_condition, day)

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
            lock_for_update(conn, differing)
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
                    self.compute_with_dependents(conn, row.id, condition, day)
                    done.append(row.id)
        return done

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
