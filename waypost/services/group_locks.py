"""How group computations and incremental updates take turns on PostgreSQL.

Two kinds of transaction write memberships: a full computation of a group (a new group, a
changed condition, a recomputation asked for, the daily refresh of sliding windows) and an
incremental update of some contacts after they changed. Several processes, on several nodes,
run both against one database. The protocol, in the order a transaction takes its locks:

- A full computation holds an advisory lock (``COMPUTING``) exclusively, first thing in its
  transaction (``hold_back_updates``), then locks the row of each group it computes
  (``lock_group``). An incremental update holds the same advisory lock shared in each of its
  two phases, so the two never overlap: an update that read while a computation was under way
  would compare a selection made before the latest changes with kept members about to be
  replaced, find no difference, and leave whatever that computation commits.
- An incremental update first reads, without writing (``busy_contacts``): the contacts another
  transaction is changing (an update writing their memberships, a data input, a merge) are
  reported busy instead of waited for, and evaluated again when writing. Only the contacts
  whose membership differs, or that were busy, reach the write phase (``lock_for_update``),
  which locks them in id order so that two processes never evaluate one contact at once.
- Member counts are written in the order of the groups' ids (see ``build_plan`` in
  waypost/services/group_membership.py), so two updates never each hold a group's row the
  other waits for.

SQLite has a single writer, which rules every one of these races out; there the functions
take no lock (the row lock of ``lock_group`` compiles to a plain SELECT).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.store.schema import contact_groups

# Any constant, the same on every node.
COMPUTING = 0x77617970_67726F75

_exclusive = sa.text("SELECT pg_advisory_xact_lock(:key)")
_shared = sa.text("SELECT pg_advisory_xact_lock_shared(:key)")


def hold_back_updates(conn: Connection) -> None:
    """Wait for the incremental updates under way, and keep new ones waiting until this
    transaction ends; first thing in a transaction that computes a group in full, before it
    writes any group's row (an update holding its locks would wait for that row, and this
    transaction for the update). Taken again in the same transaction, it is held already."""
    if conn.dialect.name == "postgresql":
        conn.execute(_exclusive, {"key": COMPUTING})


def lock_group(conn: Connection, group_id: uuid.UUID) -> None:
    """Before a group is computed in full: hold back the incremental updates (if the caller
    has not yet) and lock the group's row, which incremental updates hold in KEY SHARE."""
    hold_back_updates(conn)
    conn.execute(
        sa.select(contact_groups.c.id).where(contact_groups.c.id == group_id).with_for_update()
    )


def busy_contacts(conn: Connection, contact_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """For the read phase of an incremental update: wait for the full computations under way,
    then the contacts of ``contact_ids`` another transaction is changing (an update writing
    their memberships, a data input, a merge). What a read finds about those may be undone by
    that transaction's commit, so they are evaluated again in the write phase, which waits for
    it. SQLite's single writer rules both out."""
    if conn.dialect.name != "postgresql":
        return set()
    conn.execute(_shared, {"key": COMPUTING})
    free = conn.execute(
        sa.text("SELECT id FROM contacts WHERE id = ANY(:ids) FOR SHARE SKIP LOCKED"),
        {"ids": contact_ids},
    ).scalars()
    return set(contact_ids) - set(free)


def lock_for_update(conn: Connection, contact_ids: list[uuid.UUID]) -> None:
    """For the write phase of an incremental update of ``contact_ids`` (sorted): wait for the
    full computations under way and keep new ones waiting, then wait for the other
    evaluations of these contacts, until this transaction ends."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(_shared, {"key": COMPUTING})
    # Serialise evaluations of one contact across processes, and let a full recomputation of
    # a group (which locks its row for update) go first. NO KEY UPDATE, not UPDATE: the
    # writer's inserts of activities take KEY SHARE on their contacts (the foreign key), in
    # their own order, and FOR UPDATE deadlocked with them.
    conn.execute(
        sa.text("SELECT id FROM contacts WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"),
        {"ids": contact_ids},
    )
    # KEY SHARE, not SHARE: it holds a recomputation (FOR UPDATE) back all the same, but not
    # another process's update of member_count (FOR NO KEY UPDATE), so two processes that
    # both hold it never deadlock upgrading it.
    conn.execute(sa.select(contact_groups.c.id).with_for_update(read=True, key_share=True))


def lock_for_erasure(conn: Connection, contact_id: uuid.UUID) -> None:
    """First thing in the transaction that erases a contact (services/erasure.py): wait for
    the full computations under way and keep new ones waiting, as an incremental update does,
    then lock the contact for deletion, so that no activity, merge or group evaluation of it
    runs until the erasure commits; those that do then find no contact."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(_shared, {"key": COMPUTING})
    conn.execute(sa.text("SELECT id FROM contacts WHERE id = :id FOR UPDATE"), {"id": contact_id})
    conn.execute(sa.select(contact_groups.c.id).with_for_update(read=True, key_share=True))
