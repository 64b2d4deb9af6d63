"""Changes to what processes cache (channels, keys, activity types, consents, groups,
playbooks, webhook endpoints, the suppressions of erased identities), announced once the
transaction that made them has committed.

A service notes a change inside its write transaction with :func:`announce`; the Store
publishes the notes on its :class:`ChangeFeed` after the commit, and drops them when the
transaction rolls back, so no cache forgets a copy for a change that never happened. Caches
subscribe to the feed, not to the services, so the feed can carry changes from other nodes too
(an implementation of :class:`ChangeFeed` over PostgreSQL ``LISTEN/NOTIFY`` or Redis pub/sub)
without a service noticing.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple, Protocol

from sqlalchemy import Connection

log = logging.getLogger("waypost.changes")

ChangeKind = Literal[
    "channel",
    "key",
    "activity_type",
    "consent",
    "group",
    "playbook",
    "webhook_endpoint",
    "suppression",
]

# Where a write transaction's notes wait for its commit (see Store.write).
PENDING = "waypost.changes"


class Change(NamedTuple):
    """One definition was added, changed or removed: its kind and id."""

    kind: ChangeKind
    id: uuid.UUID


Subscriber = Callable[[Change], None]


class ChangeFeed(Protocol):
    """Where committed changes are published and whoever caches them listens."""

    def publish(self, kind: ChangeKind, id: uuid.UUID) -> None:
        """Tell every subscriber; called after the change has committed."""

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` with each change published from now on."""


class LocalChangeFeed:
    """The feed of one process: subscribers are called at once, in the publishing thread."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def publish(self, kind: ChangeKind, id: uuid.UUID) -> None:
        change = Change(kind, id)
        for callback in self._subscribers:
            # The change has committed whatever a subscriber does: its failure must not turn
            # the caller's success into an error, nor keep the change from the others.
            try:
                callback(change)
            except Exception:
                log.exception("a subscriber failed on %s %s", kind, id)

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, callback)


def announce(conn: Connection, kind: ChangeKind, id: uuid.UUID) -> None:
    """Note, inside a write transaction of the Store, that a definition changed; the Store
    publishes it once the transaction has committed."""
    info = conn.info
    if PENDING not in info:
        # Outside Store.write nothing would publish the note, and a cache would stay stale.
        raise RuntimeError("announce() needs a write transaction of the Store")
    pending: list[Change] | None = info[PENDING]
    if pending is None:
        info[PENDING] = pending = []
    pending.append(Change(kind, id))


def publish_all(feed: ChangeFeed, changes: Iterable[Change]) -> None:
    """Publish each change once, in the order first noted."""
    for change in dict.fromkeys(changes):
        feed.publish(change.kind, change.id)
