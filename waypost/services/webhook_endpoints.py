"""Webhook endpoints: where playbooks send their signed webhooks (docs/playbooks.md).

An endpoint's secret is shown twice only: in the answer to its creation and in the answer to
a rotation. After a rotation the previous secret signs too, for 24 hours, so that receivers
can switch without losing a message. The URL is checked (its form, and unless
``WAYPOST_WEBHOOK_ALLOW_PRIVATE`` the addresses it resolves to) before any transaction opens:
a name lookup can take seconds, and no write lock is held meanwhile.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import secrets
import uuid
from typing import Annotated, Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.clock import Clock
from waypost.domain.webhook_urls import MAX_URL_LENGTH, BadWebhookUrl
from waypost.errors import ApiError, conflict, not_found
from waypost.ids import new_id
from waypost.pagination import ListQuery, Page, cursor_id, page_by_id
from waypost.records.webhook_endpoints import disable
from waypost.services.webhook_addresses import check_destination
from waypost.settings import Settings
from waypost.store import Store, announce
from waypost.store.schema import playbooks, webhook_endpoints

SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's prefix, not a secret)
SECRET_BYTES = 32
# How long the previous secret signs too, after a rotation.
ROTATION_OVERLAP = dt.timedelta(hours=24)
MAX_DESCRIPTION = 1000

# The pattern only tells the document's readers what is accepted; the answer to what is not
# comes from check_url, which says what is wrong.
WebhookUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        extra_json_schema={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s]"},
        description="Where to POST: https://… (or http://), without user name or password.",
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]


class WebhookEndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new endpoint; its secret is made by Waypost and shown in the answer only."""

    url: WebhookUrl
    description: Description = ""
    enabled: bool = True


class WebhookEndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change. ``enabled: true`` on a disabled endpoint clears why it was
    disabled; ``enabled: false`` fails its pending messages."""

    url: WebhookUrl | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class WebhookEndpoint(msgspec.Struct):
    """An endpoint, without its secret. ``disabled_reason``: ``gone`` (it answered 410) or
    ``failing`` (no success for days), null when enabled or disabled by a person;
    ``failing_since``: the first failure since the last success."""

    id: uuid.UUID
    url: str
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: dt.datetime | None
    previous_secret_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CreatedWebhookEndpoint(WebhookEndpoint):
    """The answer to a creation: the endpoint and its secret, shown only here."""

    secret: str


class WebhookSecret(msgspec.Struct):
    """A new secret, shown only in this answer; the previous one signs too for 24 hours."""

    secret: str


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes, as Standard Webhooks libraries take it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _endpoint(row: sa.Row[Any]) -> WebhookEndpoint:
    m = row._mapping
    return WebhookEndpoint(
        id=m["id"],
        url=m["url"],
        description=m["description"],
        enabled=m["enabled"],
        disabled_reason=m["disabled_reason"],
        failing_since=m["failing_since"],
        previous_secret_expires_at=m["previous_secret_expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class WebhookEndpointService:
    """Webhook endpoints on the store."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.allow_private = settings.webhook_allow_private
        self.clock = clock

    def check_url(self, url: str) -> None:
        """400 ``invalid_field`` (field ``url``) for a URL webhooks cannot go to."""
        try:
            check_destination(url, self.allow_private)
        except BadWebhookUrl as exc:
            why = str(exc)
            raise ApiError(400, "invalid_field", f"{why[:1].upper()}{why[1:]}.", "url") from None

    def create(self, body: WebhookEndpointCreate) -> CreatedWebhookEndpoint:
        self.check_url(body.url)
        now = self.clock.now()
        endpoint_id = new_id()
        values = {
            "id": endpoint_id,
            "url": body.url,
            "description": body.description,
            "enabled": body.enabled,
            "secret": new_secret(),
            "previous_secret": None,
            "previous_secret_expires_at": None,
            "disabled_reason": None,
            "failing_since": None,
            "created_at": now,
            "updated_at": now,
        }
        with self.store.write() as conn:
            conn.execute(webhook_endpoints.insert().values(**values))
            announce(conn, "webhook_endpoint", endpoint_id)
        return msgspec.convert(values, CreatedWebhookEndpoint)

    def list_page(self, query: ListQuery) -> Page[WebhookEndpoint]:
        e = webhook_endpoints
        stmt = sa.select(e).order_by(e.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(e.c.id > after)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([_endpoint(r) for r in rows], query.limit, lambda found: found.id)

    def get(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        with self.store.read() as conn:
            return self.get_in(conn, endpoint_id)

    def get_in(self, conn: Connection, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        row = conn.execute(
            sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        ).first()
        if row is None:
            raise not_found("webhook endpoint")
        return _endpoint(row)

    def update(self, endpoint_id: uuid.UUID, body: WebhookEndpointUpdate) -> WebhookEndpoint:
        if body.url is not msgspec.UNSET:
            # Checked even when it is the URL kept now: what its name resolves to may have
            # changed, and a person sending it expects it to be checked.
            self.check_url(body.url)
        with self.store.write() as conn:
            current = self.get_in(conn, endpoint_id)
            now = self.clock.now()
            values: dict[str, object] = {}
            if body.url is not msgspec.UNSET and body.url != current.url:
                values["url"] = body.url
            if body.description is not msgspec.UNSET:
                values["description"] = body.description
            if body.enabled is True and not current.enabled:
                values |= {"enabled": True, "disabled_reason": None, "failing_since": None}
            if values:
                values["updated_at"] = now
                conn.execute(
                    webhook_endpoints.update()
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .values(**values)
                )
                announce(conn, "webhook_endpoint", endpoint_id)
            if body.enabled is False:
                disable(conn, endpoint_id, None, now)
            return self.get_in(conn, endpoint_id)

    def delete(self, endpoint_id: uuid.UUID) -> None:
        """Delete an endpoint with its messages and their attempts; 409 while a playbook
        sends to it (change or delete the playbook first)."""
        with self.store.write() as conn:
            self.get_in(conn, endpoint_id)
            users = self._playbooks_using(conn, endpoint_id)
            if users:
                raise conflict(
                    "Playbooks send to this endpoint: "
                    + ", ".join(repr(name) for name in users[:5])
                    + ". Remove it from their actions first."
                )
            conn.execute(webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id))
            announce(conn, "webhook_endpoint", endpoint_id)

    def rotate_secret(self, endpoint_id: uuid.UUID) -> WebhookSecret:
        """A new secret; the current one signs too until 24 hours from now (a secret older
        than that is dropped, as after two rotations in one day)."""
        secret = new_secret()
        e = webhook_endpoints
        with self.store.write() as conn:
            self.get_in(conn, endpoint_id)
            now = self.clock.now()
            conn.execute(
                e.update()
                .where(e.c.id == endpoint_id)
                .values(
                    secret=secret,
                    previous_secret=e.c.secret,
                    previous_secret_expires_at=now + ROTATION_OVERLAP,
                    updated_at=now,
                )
            )
            announce(conn, "webhook_endpoint", endpoint_id)
        return WebhookSecret(secret)

    def holds_secret(self, endpoint_id: uuid.UUID, secret: str) -> bool:
        """Whether ``secret`` is the endpoint's current secret (the admin UI shows a secret
        kept in the session only on the page of the endpoint it belongs to)."""
        with self.store.read() as conn:
            current = conn.execute(
                sa.select(webhook_endpoints.c.secret).where(webhook_endpoints.c.id == endpoint_id)
            ).scalar_one_or_none()
        return current is not None and hmac.compare_digest(current.encode(), secret.encode())

    def _playbooks_using(self, conn: Connection, endpoint_id: uuid.UUID) -> list[str]:
        wanted = str(endpoint_id)
        names = []
        for name, actions in conn.execute(sa.select(playbooks.c.name, playbooks.c.actions)):
            if any(
                isinstance(action, dict) and str(action.get("endpoint", "")).lower() == wanted
                for action in (actions if isinstance(actions, list) else [])
            ):
                names.append(name)
        return sorted(names)
