"""The webhook outbox as records: messages written inside the caller's write transaction.

A message is a row of ``webhook_messages``; the dispatcher (``services/webhook_dispatcher``)
takes the due ones after the commit. Writing a message in the transaction of what triggered
it is what makes delivery lose nothing (docs/playbooks.md, "Delivery").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.store import after_commit
from waypost.store.schema import webhook_messages

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One webhook call to make: ``body`` is the JSON sent and signed on every attempt."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_type: str
    body: str
    created_at: dt.datetime
    playbook_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    # A message for a disabled endpoint is kept as failed, to be replayed once it is enabled.
    status: str = PENDING
    last_error: str | None = None


def enqueue(
    conn: Connection,
    messages: Sequence[OutboxMessage],
    wake: Callable[[], None] | None = None,
) -> None:
    """Write ``messages`` in ``conn``'s transaction; ``wake`` is called once it commits."""
    if not messages:
        return
    conn.execute(
        sa.insert(webhook_messages),
        [
            {
                "id": m.id,
                "endpoint_id": m.endpoint_id,
                "playbook_id": m.playbook_id,
                "run_id": m.run_id,
                "contact_id": m.contact_id,
                "event_type": m.event_type,
                "body": m.body,
                "status": m.status,
                "attempts": 0,
                "next_attempt_at": m.created_at if m.status == PENDING else None,
                "last_error": m.last_error,
                "created_at": m.created_at,
                "updated_at": m.created_at,
            }
            for m in messages
        ],
    )
    if wake is not None:
        after_commit(conn, wake)
