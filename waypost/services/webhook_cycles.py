"""The webhook dispatcher's database side (docs/playbooks.md, "Delivery").

One cycle, run on the dispatcher's database thread, records the attempts that ended since the
last one and gives back the claims not sent, in one transaction, then claims, in the same
one, what the endpoints' lanes have room for. When there is nothing to record and a look
finds nothing due, the cycle only reads: an idle dispatcher never takes SQLite's write lock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.services.webhook_claims import (
    Claimed,
    Destination,
    claim,
    due_endpoints,
    next_due_at,
    release,
)
from waypost.services.webhook_results import Outcome, fail_pending, record
from waypost.store import Store


@dataclass(frozen=True, slots=True)
class Work:
    """What one cycle is to do: record ``outcomes``, give back ``releases``, and claim (if
    ``claim``) up to each endpoint's lane limit less what its lane ``held``."""

    outcomes: list[Outcome]
    releases: list[uuid.UUID]
    claim: bool
    held: dict[uuid.UUID, int]
    # How many messages each endpoint's lane may hold; ``lane`` for the others.
    limits: dict[uuid.UUID, int] = field(default_factory=dict)
    lane: int = 0
    # Woken, polled or timed rather than refilling lanes: also find the next due time.
    discover: bool = False

    def limit(self, endpoint: uuid.UUID) -> int:
        return self.limits.get(endpoint, self.lane)


@dataclass(slots=True)
class Done:
    """What a cycle came to."""

    claimed: list[Claimed] = field(default_factory=list)
    # Endpoints the claim looked at, and those of them that had more due than it took.
    looked: set[uuid.UUID] = field(default_factory=set)
    backlogged: set[uuid.UUID] = field(default_factory=set)
    # Endpoints the recorded answers disabled, with the reason.
    disabled: dict[uuid.UUID, str] = field(default_factory=dict)
    # When the next message not yet due comes due, as far as this cycle knows.
    next_due: dt.datetime | None = None


class Cycles:
    """Cycles of one dispatcher: its ``node`` id, its leases' length, the failing time after
    which an endpoint is disabled."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        node: str,
        lease: dt.timedelta,
        disable_after: dt.timedelta,
    ) -> None:
        self.store = store
        self.clock = clock
        self.node = node
        self.lease = lease
        self.disable_after = disable_after

    def run(self, work: Work) -> Done:
        """Record, give back, claim."""
        done = Done(
            next_due=min(
                (o.next_attempt_at for o in work.outcomes if o.next_attempt_at is not None),
                default=None,
            )
        )
        if not (work.outcomes or work.releases):
            if not work.claim:
                return done
            with self.store.read() as conn:
                if not self._look(conn, work, done):
                    return done
        # Short transactions, which a busy writer must not keep waiting (store/engine.py).
        with self.store.write(often=True) as conn:
            if conn.dialect.name == "postgresql":
                # Nothing here needs to survive a crash: a lease lost is a message due again,
                # an answer lost is a message sent again (at least once, as documented).
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            now = self.clock.now()
            done.disabled.update(record(conn, self.node, work.outcomes, now, self.disable_after))
            release(conn, self.node, work.releases, now)
            found = self._look(conn, work, done) if work.claim else []
            # Messages written for an endpoint while it was being disabled.
            fail_pending(conn, [d.id for d in found if not d.enabled], now)
            lease_until = now + self.lease
            for destination in found:
                if not destination.enabled or destination.id in done.disabled:
                    continue
                free = work.limit(destination.id) - work.held.get(destination.id, 0)
                taken = claim(conn, destination, self.node, now, lease_until, free)
                done.claimed.extend(taken)
                done.looked.add(destination.id)
                if len(taken) >= free:
                    done.backlogged.add(destination.id)
        return done

    def _look(self, conn: Connection, work: Work, done: Done) -> list[Destination]:
        # The endpoints with due messages and room in their lanes; and, unless only refilling
        # lanes, when the next message comes due (for the dispatcher's timer).
        now = self.clock.now()
        full = [e for e, held in work.held.items() if held >= work.limit(e)]
        found = due_endpoints(conn, now, full)
        if work.discover:
            later = next_due_at(conn, now)
            if later is not None and (done.next_due is None or later < done.next_due):
                done.next_due = later
        return found
