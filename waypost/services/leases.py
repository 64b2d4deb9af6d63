"""Leases on background work that one node at a time does, kept in ``worker_leases``.

A node takes a lease for a while and renews it as it works; another node gets it only once it
is released or has expired, so a node that dies mid-work holds it up for one lease at most.
Taking and renewing are one UPDATE each with the conditions in its WHERE clause: on
PostgreSQL two nodes updating the row at once are serialised on its row lock, and the second
finds the row taken; SQLite has one writer.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import sqlalchemy as sa

from waypost.clock import Clock
from waypost.records.contacts import upsert_insert
from waypost.store import Store
from waypost.store.schema import worker_leases

OWNER_LENGTH: int = worker_leases.c.owner.type.length  # type: ignore[attr-defined]


def node_name() -> str:
    """This process, as leases and purge runs name it: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:OWNER_LENGTH]


class Lease:
    """The lease ``name`` as ``owner`` holds it, for ``seconds`` from each take or renewal."""

    def __init__(
        self, store: Store, name: str, owner: str, clock: Clock, seconds: float = 300.0
    ) -> None:
        self.store = store
        self.name = name
        self.owner = owner[:OWNER_LENGTH]
        self.clock = clock
        self.seconds = seconds

    def acquire(self) -> bool:
        """Take the lease if it is free, expired, or held by this owner already."""
        now = self.clock.now()
        lease = worker_leases.c
        with self.store.write() as conn:
            conn.execute(
                upsert_insert(conn)(worker_leases)
                .values(name=self.name, owner=None, expires_at=None)
                .on_conflict_do_nothing()
            )
            taken = conn.execute(
                worker_leases.update()
                .where(
                    lease.name == self.name,
                    sa.or_(
                        lease.owner.is_(None), lease.owner == self.owner, lease.expires_at < now
                    ),
                )
                .values(owner=self.owner, expires_at=self._until(now))
            )
            return taken.rowcount == 1

    def renew(self) -> bool:
        """Extend the lease; False when it was lost (it expired and another owner took it)."""
        now = self.clock.now()
        with self.store.write() as conn:
            kept = conn.execute(
                worker_leases.update()
                .where(worker_leases.c.name == self.name, worker_leases.c.owner == self.owner)
                .values(expires_at=self._until(now))
            )
            return kept.rowcount == 1

    def release(self) -> None:
        """Give the lease up, if this owner still holds it."""
        with self.store.write() as conn:
            conn.execute(
                worker_leases.update()
                .where(worker_leases.c.name == self.name, worker_leases.c.owner == self.owner)
                .values(owner=None, expires_at=None)
            )

    def holder(self) -> str | None:
        """Who holds the lease now (None when free or expired)."""
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(worker_leases.c.owner, worker_leases.c.expires_at).where(
                    worker_leases.c.name == self.name
                )
            ).first()
        if row is None or row.owner is None or row.expires_at < self.clock.now():
            return None
        owner: str = row.owner
        return owner

    def _until(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.seconds)
