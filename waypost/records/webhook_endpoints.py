"""Webhook endpoints as records: disabling one inside the caller's write transaction.

An endpoint is disabled by a person (``PATCH`` with ``enabled: false``), by a ``410 Gone``
answer or after failing for days (the dispatcher); each way, the endpoint's pending messages
become failed with ``last_error`` ``endpoint_disabled`` in the same transaction, so that a
disabled endpoint gets nothing. They can be retried or replayed once it is enabled again
(docs/playbooks.md, "The delivery log").
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.records.outbox import FAILED, PENDING
from waypost.store import announce
from waypost.store.schema import webhook_endpoints, webhook_messages

ENDPOINT_DISABLED = "endpoint_disabled"
# Why Waypost disabled an endpoint by itself; None when a person did.
GONE = "gone"
FAILING = "failing"


def fail_pending(conn: Connection, endpoint_id: uuid.UUID, at: dt.datetime) -> int:
    """Make the endpoint's pending messages failed (``endpoint_disabled``); returns how many."""
    m = webhook_messages
    done = conn.execute(
        m.update()
        .where(m.c.endpoint_id == endpoint_id, m.c.status == PENDING)
        .values(status=FAILED, last_error=ENDPOINT_DISABLED, next_attempt_at=None, updated_at=at)
    )
    return done.rowcount


def disable(conn: Connection, endpoint_id: uuid.UUID, reason: str | None, at: dt.datetime) -> int:
    """Disable an endpoint and fail its pending messages; returns how many were failed.
    ``reason``: ``gone``, ``failing``, or None when a person disabled it. An endpoint disabled
    already keeps its first reason; its pending messages are failed all the same (one written
    by a transaction that saw the endpoint still enabled)."""
    e = webhook_endpoints
    done = conn.execute(
        e.update()
        .where(e.c.id == endpoint_id, e.c.enabled == sa.true())
        .values(enabled=False, disabled_reason=reason, updated_at=at)
    )
    if done.rowcount:
        announce(conn, "webhook_endpoint", endpoint_id)
    return fail_pending(conn, endpoint_id, at)
