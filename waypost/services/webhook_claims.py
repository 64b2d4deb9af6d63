"""The SQL of the webhook dispatcher's leases: which endpoints have due messages, and taking
some of one endpoint's due messages for this process (docs/playbooks.md, "Delivery").

A message is due when it is pending, its ``next_attempt_at`` has come and nobody holds a
live lease on it. Claiming sets ``lease_owner`` (the dispatcher's node id) and
``lease_until``, and moves ``next_attempt_at`` to ``lease_until``: until then no other
dispatcher takes it, and if this one dies the lease runs out and the message is due again for
another (or this one, restarted). A claimed message is thus never among the due ones an index
scan reads, however many are in flight. On PostgreSQL the rows are picked ``FOR UPDATE
SKIP LOCKED``, so several processes claiming at once take different messages without waiting
for each other; on SQLite the claim runs under the database's write lock.

Claims go endpoint by endpoint, each at most as many messages as the endpoint has free
slots, through the index on (endpoint, status, next attempt): a slow endpoint's backlog is
never read to find another endpoint's messages.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.records.outbox import PENDING
from waypost.store.schema import webhook_endpoints, webhook_messages

_m = webhook_messages
_e = webhook_endpoints


@dataclass(frozen=True, slots=True)
class Destination:
    """An endpoint as one claim saw it: where to send, and the secrets that sign."""

    id: uuid.UUID
    url: str
    # The current secret, then the previous one while a rotation's overlap lasts.
    secrets: tuple[str, ...]
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this process holds the lease on, to make attempt number ``attempt`` of."""

    id: uuid.UUID
    endpoint: Destination
    attempt: int
    body: str
    created_at: dt.datetime
    lease_until: dt.datetime


def _is_due(table: sa.FromClause, now: sa.ColumnElement[dt.datetime]) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.status == PENDING,
        table.c.next_attempt_at <= now,
        sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= now),
    )


# The statements are built once, with their values bound at each call: building and caching
# them anew cost more CPU than running them, a few times a second on a busy dispatcher.
_NOW = sa.bindparam("b_now", type_=_m.c.next_attempt_at.type)
_ENDPOINT = sa.bindparam("b_endpoint", type_=_m.c.endpoint_id.type)
_UNTIL = sa.bindparam("b_until", type_=_m.c.lease_until.type)

_DUE_ENDPOINTS = sa.select(
    _e.c.id,
    _e.c.url,
    _e.c.enabled,
    _e.c.secret,
    _e.c.previous_secret,
    _e.c.previous_secret_expires_at,
).where(
    sa.exists().where(_m.c.endpoint_id == _e.c.id, _is_due(_m, _NOW)),
    _e.c.id.not_in(sa.bindparam("b_skip", expanding=True, type_=_e.c.id.type)),
)

_NEXT_DUE = sa.select(sa.func.min(_m.c.next_attempt_at)).where(
    _m.c.status == PENDING, _m.c.next_attempt_at > _NOW
)


def _claim_statement(skip_locked: bool) -> sa.Update:
    inner = _m.alias("due")
    pick = (
        sa.select(inner.c.id)
        .where(
            inner.c.endpoint_id == _ENDPOINT,
            _is_due(inner, _NOW),
            # Disabled since it was found: it gets nothing.
            sa.exists().where(_e.c.id == _ENDPOINT, _e.c.enabled == sa.true()),
        )
        .order_by(inner.c.next_attempt_at)
        .limit(sa.bindparam("b_limit", type_=sa.Integer))
    )
    if skip_locked:
        pick = pick.with_for_update(skip_locked=True)
    return (
        _m.update()
        .where(_m.c.id.in_(pick))
        .values(
            lease_owner=sa.bindparam("b_node", type_=_m.c.lease_owner.type),
            lease_until=_UNTIL,
            next_attempt_at=_UNTIL,
        )
        .returning(_m.c.id, _m.c.attempts, _m.c.body, _m.c.created_at)
    )


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}


def due_endpoints(
    conn: Connection, now: dt.datetime, skip: Collection[uuid.UUID] = ()
) -> list[Destination]:
    """The endpoints, other than ``skip``, with at least one due message. A disabled one is
    among them only when a message was written for it as it was being disabled."""
    found = []
    for row in conn.execute(_DUE_ENDPOINTS, {"b_now": now, "b_skip": list(skip)}):
        secrets = [row.secret]
        expires = row.previous_secret_expires_at
        if row.previous_secret and expires is not None and expires > now:
            secrets.append(row.previous_secret)
        found.append(Destination(row.id, row.url, tuple(secrets), bool(row.enabled)))
    return found


def next_due_at(conn: Connection, now: dt.datetime) -> dt.datetime | None:
    """When the next pending message not yet due comes due (any endpoint), if one does."""
    first = conn.execute(_NEXT_DUE, {"b_now": now}).scalar_one_or_none()
    return first if isinstance(first, dt.datetime) else None


def claim(
    conn: Connection,
    endpoint: Destination,
    node: str,
    now: dt.datetime,
    lease_until: dt.datetime,
    limit: int,
) -> list[Claimed]:
    """Lease up to ``limit`` of ``endpoint``'s due messages to ``node``, oldest due first."""
    if limit <= 0:
        return []
    statement = _CLAIM[conn.dialect.name == "postgresql"]
    rows = conn.execute(
        statement,
        {
            "b_endpoint": endpoint.id,
            "b_now": now,
            "b_limit": limit,
            "b_node": node,
            "b_until": lease_until,
        },
    ).all()
    claimed = [
        Claimed(row.id, endpoint, row.attempts + 1, row.body, row.created_at, lease_until)
        for row in rows
    ]
    claimed.sort(key=lambda message: (message.created_at, message.id))
    return claimed


def release(conn: Connection, node: str, ids: Sequence[uuid.UUID], now: dt.datetime) -> None:
    """Give up ``node``'s leases on ``ids`` (claimed, never sent), so anyone may send them."""
    if ids:
        conn.execute(
            _m.update()
            .where(_m.c.id.in_(list(ids)), _m.c.lease_owner == node, _m.c.status == PENDING)
            .values(lease_owner=None, lease_until=None, next_attempt_at=now)
        )
