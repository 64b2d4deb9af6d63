"""The SQL of what webhook attempts came to, written many at a time (docs/playbooks.md,
"Delivery").

Each attempt is a row of ``webhook_attempts``; its message is delivered, pending again (with
the next attempt's time) or failed, and its lease is cleared. An endpoint that answered
``410 Gone``, or that has answered nothing successfully for longer than
``WAYPOST_WEBHOOK_DISABLE_AFTER_DAYS``, is disabled, and its pending messages are failed with
``endpoint_disabled``: a disabled endpoint gets nothing until it is enabled again, when they
can be retried or replayed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.domain.webhook_schedule import next_wait
from waypost.ids import new_id
from waypost.records.outbox import DELIVERED, FAILED, PENDING
from waypost.services.webhook_claims import Claimed
from waypost.services.webhook_sending import Answer
from waypost.store.prepared import Prepared
from waypost.store.schema import webhook_attempts, webhook_endpoints, webhook_messages

GONE = "gone"
FAILING = "failing"
ENDPOINT_DISABLED = "endpoint_disabled"

_m = webhook_messages
_e = webhook_endpoints


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt and what it makes of its message.

    ``status`` is the message's new status; ``next_attempt_at`` is set when it is pending.
    ``http_status`` is None when no answer came, and ``error`` then says why (``timeout``,
    ``connection_refused``, ``connection_error``, ``address_refused``).
    """

    message_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    at: dt.datetime
    http_status: int | None
    duration_ms: int
    error: str | None
    response: str
    status: str
    next_attempt_at: dt.datetime | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == DELIVERED

    @property
    def gone(self) -> bool:
        return self.http_status == 410


def outcome_of(
    message: Claimed, answer: Answer, schedule: Sequence[float], unit: float, clock: Clock
) -> Outcome:
    """What ``answer`` makes of ``message``: delivered on a 2xx; else pending until the
    schedule's next wait (jittered by ``unit``, a random number in [0, 1), and lengthened by
    the answer's ``Retry-After``), or failed when the schedule has no step left."""
    status, next_at = DELIVERED, None
    if not answer.succeeded:
        wait = next_wait(schedule, message.attempt, unit, answer.retry_after)
        if wait is None:
            status = FAILED
        else:
            status, next_at = PENDING, clock.now() + dt.timedelta(seconds=wait)
    return Outcome(
        message_id=message.id,
        endpoint_id=message.endpoint.id,
        attempt=message.attempt,
        at=answer.at,
        http_status=answer.http_status,
        duration_ms=answer.duration_ms,
        error=answer.error,
        response=answer.response,
        status=status,
        next_attempt_at=next_at,
    )


# Built once and run through the driver (store/prepared.py): SQLAlchemy's per-row work cost
# more CPU than the database's. Only while the lease
# is still this node's: a message whose lease ran out may have been sent again by another
# node, and that node's answer is the one to keep.
_RECORD = Prepared(
    _m.update()
    .where(
        _m.c.id == sa.bindparam("b_id"),
        _m.c.status == PENDING,
        _m.c.lease_owner == sa.bindparam("b_node"),
    )
    .values(
        status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts"),
        last_status=sa.bindparam("b_http_status"),
        last_error=sa.bindparam("b_error"),
        next_attempt_at=sa.bindparam("b_next"),
        delivered_at=sa.bindparam("b_delivered"),
        lease_owner=None,
        lease_until=None,
        updated_at=sa.bindparam("b_now"),
    )
)
_ATTEMPT = Prepared(sa.insert(webhook_attempts))


def record(
    conn: Connection,
    node: str,
    outcomes: Sequence[Outcome],
    now: dt.datetime,
    disable_after: dt.timedelta,
) -> dict[uuid.UUID, str]:
    """Write ``outcomes`` (in the order the attempts ended) in ``conn``'s transaction; the
    endpoints this disabled, with the reason."""
    if not outcomes:
        return {}
    _ATTEMPT.executemany(
        conn,
        [
            {
                "id": new_id(),
                "message_id": o.message_id,
                "attempt": o.attempt,
                "at": o.at,
                "http_status": o.http_status,
                "duration_ms": o.duration_ms,
                "error": o.error,
                "response": o.response,
            }
            for o in outcomes
        ],
    )
    _RECORD.executemany(
        conn,
        [
            {
                "b_id": o.message_id,
                "b_node": node,
                "b_status": o.status,
                "b_attempts": o.attempt,
                "b_http_status": o.http_status,
                "b_error": o.error,
                "b_next": o.next_attempt_at if o.status == PENDING else None,
                "b_delivered": o.at if o.succeeded else None,
                "b_now": now,
            }
            for o in outcomes
        ],
    )
    failing_since = _endpoint_states(outcomes)
    recovered = [e for e, since in failing_since.items() if since is None]
    if recovered:
        conn.execute(
            _e.update()
            .where(_e.c.id.in_(recovered), _e.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
    failing = {e: since for e, since in failing_since.items() if since is not None}
    if failing:
        conn.execute(
            _e.update()
            .where(_e.c.id == sa.bindparam("b_id"), _e.c.failing_since.is_(None))
            .values(failing_since=sa.bindparam("b_since")),
            [{"b_id": e, "b_since": since} for e, since in failing.items()],
        )
    disabled: dict[uuid.UUID, str] = {}
    gone = {o.endpoint_id for o in outcomes if o.gone}
    for endpoint in disable(conn, gone, GONE, now):
        disabled[endpoint] = GONE
    if failing:
        cutoff = now - disable_after
        stale = conn.execute(
            sa.select(_e.c.id).where(
                _e.c.id.in_(list(failing)),
                _e.c.enabled == sa.true(),
                _e.c.failing_since <= cutoff,
            )
        ).scalars()
        for endpoint in disable(conn, list(stale), FAILING, now):
            disabled[endpoint] = FAILING
    return disabled


def _endpoint_states(outcomes: Sequence[Outcome]) -> dict[uuid.UUID, dt.datetime | None]:
    # Per endpoint: None when its last attempt here succeeded, else when the failures that
    # followed its last success began.
    states: dict[uuid.UUID, dt.datetime | None] = {}
    for o in outcomes:
        if o.succeeded:
            states[o.endpoint_id] = None
        elif states.get(o.endpoint_id) is None:
            states[o.endpoint_id] = o.at
    return states


def disable(
    conn: Connection, endpoint_ids: Collection[uuid.UUID], reason: str, now: dt.datetime
) -> list[uuid.UUID]:
    """Disable the enabled ones of ``endpoint_ids`` (``reason``: ``gone`` or ``failing``) and
    fail their pending messages; the ones this disabled."""
    if not endpoint_ids:
        return []
    ids = list(
        conn.execute(
            sa.select(_e.c.id).where(_e.c.id.in_(list(endpoint_ids)), _e.c.enabled == sa.true())
        ).scalars()
    )
    if ids:
        conn.execute(
            _e.update()
            .where(_e.c.id.in_(ids))
            .values(enabled=False, disabled_reason=reason, updated_at=now)
        )
        fail_pending(conn, ids, now)
    return ids


def fail_pending(conn: Connection, endpoint_ids: Collection[uuid.UUID], now: dt.datetime) -> int:
    """Fail the pending messages of ``endpoint_ids`` with ``endpoint_disabled``; how many."""
    if not endpoint_ids:
        return 0
    result = conn.execute(
        _m.update()
        .where(_m.c.endpoint_id.in_(list(endpoint_ids)), _m.c.status == PENDING)
        .values(
            status=FAILED,
            last_error=ENDPOINT_DISABLED,
            next_attempt_at=None,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)
