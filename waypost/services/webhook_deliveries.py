"""The delivery log: every webhook message of an endpoint with its attempts, and sending
messages again (retry one, replay what failed in a time range).

The messages are the outbox's rows (``webhook_messages``) and the attempts the dispatcher's
(``webhook_attempts``). Retry and replay only make messages due now; the dispatcher sends them,
woken once the transaction has committed (docs/playbooks.md, "The delivery log").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.errors import ApiError, conflict, not_found, with_offset
from waypost.pagination import Cursor, Page, PageLimit, after_cursor, encode_cursor
from waypost.records.outbox import FAILED, PENDING
from waypost.store import Store, after_commit
from waypost.store.schema import webhook_attempts, webhook_endpoints, webhook_messages

Status = Literal["pending", "delivered", "failed"]


class DeliveryQuery(msgspec.Struct, forbid_unknown_fields=True):
    """A page of an endpoint's delivery log, newest first; ``status`` filters it."""

    limit: PageLimit = 100
    cursor: Cursor | None = None
    status: Status | None = None


class DeliveryAttempt(msgspec.Struct):
    """One attempt: when, the HTTP status (null when no answer came: a timeout, a refused
    connection or address), how long it took, what went wrong, and the first 1 KB of the
    answer's body."""

    attempt: int
    at: dt.datetime
    http_status: int | None
    duration_ms: int
    error: str | None
    response: str


class Delivery(msgspec.Struct):
    """A message of the log. ``webhook_id`` is the ``webhook-id`` header of every attempt;
    ``status``: ``pending`` (to be sent at ``next_attempt_at``), ``delivered`` or ``failed``
    (given up, or the endpoint disabled: ``last_error`` says which)."""

    id: uuid.UUID
    webhook_id: str
    endpoint: uuid.UUID
    type: str
    status: Status
    attempt_count: int
    next_attempt_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    delivered_at: dt.datetime | None
    playbook: uuid.UUID | None
    contact: uuid.UUID | None
    attempts: list[DeliveryAttempt]


class DeliveryDetail(Delivery):
    """One message with its body: the JSON sent, exactly as it is signed."""

    payload: str


class ReplayRange(msgspec.Struct, forbid_unknown_fields=True):
    """Send again every failed message of the endpoint created in [since, until)."""

    since: dt.datetime
    until: dt.datetime


class ReplayCount(msgspec.Struct):
    """How many failed messages were made due again."""

    count: int


def webhook_id(message_id: uuid.UUID) -> str:
    """The ``webhook-id`` header of a message: the same on every attempt."""
    return f"msg_{message_id.hex}"


def _attempts(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[DeliveryAttempt]]:
    found: dict[uuid.UUID, list[DeliveryAttempt]] = {i: [] for i in ids}
    if not ids:
        return found
    a = webhook_attempts
    rows = conn.execute(
        sa.select(a).where(a.c.message_id.in_(ids)).order_by(a.c.message_id, a.c.at, a.c.attempt)
    )
    for r in rows:
        found[r.message_id].append(
            DeliveryAttempt(r.attempt, r.at, r.http_status, r.duration_ms, r.error, r.response)
        )
    return found


def _delivery(row: sa.Row[Any], attempts: list[DeliveryAttempt]) -> Delivery:
    return Delivery(
        id=row.id,
        webhook_id=webhook_id(row.id),
        endpoint=row.endpoint_id,
        type=row.event_type,
        status=row.status,
        attempt_count=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivered_at=row.delivered_at,
        playbook=row.playbook_id,
        contact=row.contact_id,
        attempts=attempts,
    )


# Every column but the body, which a list leaves out: the single read shows it.
_LISTED = [c for c in webhook_messages.c if c.name != "body"]


class WebhookDeliveryService:
    """The delivery log, retry and replay. ``wake`` tells the dispatcher that messages are
    due; it is called after the commit that made them so."""

    def __init__(self, store: Store, clock: Clock, wake: Callable[[], None]) -> None:
        self.store = store
        self.clock = clock
        self.wake = wake

    def list_page(self, endpoint_id: uuid.UUID, query: DeliveryQuery) -> Page[Delivery]:
        m = webhook_messages
        stmt = (
            sa.select(*_LISTED)
            .where(m.c.endpoint_id == endpoint_id)
            .order_by(m.c.created_at.desc(), m.c.id.desc())
            .limit(query.limit + 1)
        )
        if query.status is not None:
            stmt = stmt.where(m.c.status == query.status)
        if (after := after_cursor(query.cursor)) is not None:
            stamp, ident = after
            stmt = stmt.where(
                sa.or_(m.c.created_at < stamp, sa.and_(m.c.created_at == stamp, m.c.id < ident))
            )
        with self.store.read() as conn:
            self._endpoint(conn, endpoint_id)
            rows = conn.execute(stmt).all()
            shown = rows[: query.limit]
            attempts = _attempts(conn, [r.id for r in shown])
        items = [_delivery(r, attempts[r.id]) for r in shown]
        cursor = None
        if len(rows) > query.limit:
            last = items[-1]
            cursor = encode_cursor(f"{last.created_at.isoformat()}|{last.id}")
        return Page(items, cursor)

    def get(self, message_id: uuid.UUID) -> DeliveryDetail:
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(webhook_messages).where(webhook_messages.c.id == message_id)
            ).first()
            if row is None:
                raise not_found("webhook delivery")
            attempts = _attempts(conn, [row.id])[row.id]
        found = _delivery(row, attempts)
        return DeliveryDetail(**msgspec.structs.asdict(found), payload=row.body)

    def retry(self, message_id: uuid.UUID) -> DeliveryDetail:
        """Make one message due now, whatever its status (a delivered one is sent again);
        409 while its endpoint is disabled."""
        m = webhook_messages

        # The endpoint is locked before the message, while the dispatcher recording an attempt
        # locks them the other way round: PostgreSQL may roll one back, and this runs again.
        def retry(conn: Connection) -> None:
            row = conn.execute(sa.select(m.c.endpoint_id).where(m.c.id == message_id)).first()
            if row is None:
                raise not_found("webhook delivery")
            self._check_enabled(conn, row.endpoint_id)
            now = self.clock.now()
            conn.execute(
                m.update()
                .where(m.c.id == message_id)
                .values(status=PENDING, next_attempt_at=now, updated_at=now)
            )
            after_commit(conn, self.wake)

        self.store.write_retrying(retry)
        return self.get(message_id)

    def replay(self, endpoint_id: uuid.UUID, window: ReplayRange) -> ReplayCount:
        """Make every failed message of the endpoint created in [since, until) due now."""
        since = with_offset(window.since, "since")
        until = with_offset(window.until, "until")
        if until <= since:
            raise ApiError(400, "invalid_field", "until must be after since.", "until")
        m = webhook_messages

        # Runs again when PostgreSQL rolled it back for a deadlock (see retry).
        def replay(conn: Connection) -> int:
            self._check_enabled(conn, endpoint_id)
            now = self.clock.now()
            done = conn.execute(
                m.update()
                .where(
                    m.c.endpoint_id == endpoint_id,
                    m.c.status == FAILED,
                    m.c.created_at >= since,
                    m.c.created_at < until,
                )
                .values(status=PENDING, next_attempt_at=now, updated_at=now)
            )
            count: int = done.rowcount
            if count:
                after_commit(conn, self.wake)
            return count

        return ReplayCount(self.store.write_retrying(replay))

    def _endpoint(
        self, conn: Connection, endpoint_id: uuid.UUID, lock: bool = False
    ) -> sa.Row[Any, Any]:
        e = webhook_endpoints
        stmt = sa.select(e.c.id, e.c.enabled).where(e.c.id == endpoint_id)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            raise not_found("webhook endpoint")
        return row

    def _check_enabled(self, conn: Connection, endpoint_id: uuid.UUID) -> None:
        # Locked on PostgreSQL: a concurrent disabling waits for this transaction, then fails
        # the messages it made pending, so none stays pending for a disabled endpoint.
        if not self._endpoint(conn, endpoint_id, lock=True).enabled:
            raise conflict(
                "The endpoint is disabled, so nothing is sent to it; enable it first "
                "(PATCH it with enabled: true)."
            )
