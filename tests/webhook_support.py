"""Helpers for the webhook tests: endpoints on loopback, and messages written through the
outbox with attempt rows inserted as the dispatcher writes them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import sqlalchemy as sa

from waypost.hub import Hub
from waypost.ids import new_id
from waypost.records.outbox import DELIVERED, PENDING, OutboxMessage, enqueue
from waypost.services.webhook_endpoints import CreatedWebhookEndpoint, WebhookEndpointCreate
from waypost.store.schema import webhook_attempts, webhook_messages

RECEIVER = "http://127.0.0.1:9/hooks"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def make_endpoint(hub: Hub, url: str = RECEIVER, **fields: Any) -> CreatedWebhookEndpoint:
    """An endpoint on a hub whose settings allow loopback addresses."""
    return hub.webhook_endpoints.create(WebhookEndpointCreate(url=url, **fields))


def add_message(
    hub: Hub,
    endpoint_id: uuid.UUID,
    *,
    status: str = PENDING,
    created_at: dt.datetime = T0,
    last_error: str | None = None,
    attempts: list[dict[str, Any]] | None = None,
    contact_id: uuid.UUID | None = None,
    playbook_id: uuid.UUID | None = None,
    event_type: str = "activity.performed",
) -> uuid.UUID:
    """A message written by ``records.outbox.enqueue``, then its ``attempts`` (dicts of
    ``webhook_attempts`` columns; ``at`` defaults to a second apart after ``created_at``) and
    the message's status and counters as the dispatcher leaves them."""
    message_id = new_id()
    body = json.dumps({"type": event_type, "timestamp": created_at.isoformat(), "data": {}})
    message = OutboxMessage(
        id=message_id,
        endpoint_id=endpoint_id,
        event_type=event_type,
        body=body,
        created_at=created_at,
        playbook_id=playbook_id,
        contact_id=contact_id,
    )
    attempts = attempts or []
    with hub.store.write() as conn:
        enqueue(conn, [message])
        rows = [
            {
                "id": new_id(),
                "message_id": message_id,
                "attempt": n,
                "at": created_at + dt.timedelta(seconds=n),
                "http_status": None,
                "duration_ms": 12,
                "error": None,
                "response": "",
            }
            | attempt
            for n, attempt in enumerate(attempts, start=1)
        ]
        if rows:
            conn.execute(sa.insert(webhook_attempts), rows)
        last = rows[-1] if rows else {}
        conn.execute(
            webhook_messages.update()
            .where(webhook_messages.c.id == message_id)
            .values(
                status=status,
                attempts=len(rows),
                last_status=last.get("http_status"),
                last_error=last_error if last_error is not None else last.get("error"),
                next_attempt_at=created_at if status == PENDING else None,
                delivered_at=last.get("at") if status == DELIVERED else None,
            )
        )
    return message_id


def message_row(hub: Hub, message_id: uuid.UUID) -> Any:
    with hub.store.read() as conn:
        return conn.execute(
            sa.select(webhook_messages).where(webhook_messages.c.id == message_id)
        ).one()
