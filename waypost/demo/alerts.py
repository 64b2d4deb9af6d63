"""The demo bank's loan alerts: a playbook and the bank's backend that receives its webhooks.

When a visitor's loan calculation passes :data:`THRESHOLD`, the playbook "Large loan
calculation" calls the webhook endpoint at the demo site's ``/webhooks/waypost``; the backend
verifies the Standard Webhooks signature with the endpoint's secret, as any receiver must
(docs/playbooks.md), and keeps the newest alerts for its ``/alerts`` page, as a bank would
notify an adviser.

The endpoint is on the demo's own address, on this machine: Waypost calls such an address only
with ``WAYPOST_WEBHOOK_ALLOW_PRIVATE=1``, which ``waypost serve --demo`` turns on. Without it
the demo runs without alerts, and its alerts page says why.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass

from waypost.domain.playbooks import ActivityTrigger, EveryTime, WebhookAction
from waypost.domain.webhook_signing import BadSecret, sign
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery, every
from waypost.services.playbooks import PlaybookCreate, PlaybookUpdate
from waypost.services.webhook_endpoints import WebhookEndpointCreate, WebhookEndpointUpdate

PLAYBOOK_NAME = "Large loan calculation"
THRESHOLD = "100000"
WEBHOOK_PATH = "/webhooks/waypost"
# Standard Webhooks' advice: refuse a message signed more than five minutes away from now.
TOLERANCE_SECONDS = 300
MAX_BODY = 256 * 1024
KEPT = 20

log = logging.getLogger("waypost.demo")


def prepare_alerts(hub: Hub, site_url: str, loan_type: str) -> str | None:
    """Make sure the endpoint and the playbook exist and are enabled; answer the endpoint's
    secret (a fresh one: a secret is shown only when made), or None when this Waypost may not
    call the demo's address."""
    url = site_url.rstrip("/") + WEBHOOK_PATH
    endpoints = every(lambda c: hub.webhook_endpoints.list_page(ListQuery(limit=1000, cursor=c)))
    found = next((e for e in endpoints if e.url == url), None)
    try:
        if found is None:
            body = WebhookEndpointCreate(url=url, description="The demo bank's loan alerts")
            created = hub.webhook_endpoints.create(body)
            endpoint_id, secret = created.id, created.secret
        else:
            hub.webhook_endpoints.update(found.id, WebhookEndpointUpdate(enabled=True))
            endpoint_id, secret = found.id, hub.webhook_endpoints.rotate_secret(found.id).secret
    except ApiError as exc:
        if exc.field != "url":
            raise
        log.info("The demo runs without loan alerts: %s", exc.message)
        return None
    trigger = ActivityTrigger(type=loan_type, fields={"amount": {"gte": THRESHOLD}})
    actions = [WebhookAction(endpoint=endpoint_id)]
    playbooks = every(lambda c: hub.playbooks.list_page(ListQuery(limit=1000, cursor=c)))
    playbook = next((p for p in playbooks if p.name == PLAYBOOK_NAME), None)
    if playbook is None:
        hub.playbooks.create(
            PlaybookCreate(
                name=PLAYBOOK_NAME,
                description=f"Tell the bank's advisers when a loan of {THRESHOLD} or more is "
                "calculated.",
                trigger=trigger,
                cadence=EveryTime(),
                actions=actions,
            )
        )
    else:
        change = PlaybookUpdate(enabled=True, trigger=trigger, actions=actions, audience=None)
        hub.playbooks.update(playbook.id, change)
    return secret


@dataclass(frozen=True)
class Alert:
    """One received message, as the alerts page shows it."""

    webhook_id: str
    received_at: dt.datetime
    contact: str
    email: str | None
    amount: str | None


class AlertInbox:
    """The backend's receiver: verifies each message and keeps the newest :data:`KEPT`."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.alerts: deque[Alert] = deque(maxlen=KEPT)

    def verified(self, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
        """Whether ``body`` carries a valid, recent signature by the endpoint's secret."""
        if self.secret is None:
            return False
        webhook_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        if not webhook_id or not stamp.isdigit() or len(stamp) > 12:
            return False
        if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE_SECONDS:
            return False
        try:
            expected = sign(self.secret, webhook_id, int(stamp), body.decode())
        except (BadSecret, UnicodeDecodeError):
            return False
        offered = headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(expected, s) for s in offered)

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        """Take one message; answer the HTTP status for Waypost (2xx: do not send it again)."""
        if len(body) > MAX_BODY:
            return 413
        if not self.verified(headers, body):
            return 401
        webhook_id = headers["webhook-id"]
        if any(a.webhook_id == webhook_id for a in self.alerts):
            return 204  # a retry of a message already taken: at least once, kept once
        try:
            data = json.loads(body)["data"]
            contact = data["contact"]
            fields = (data.get("activity") or {}).get("fields") or {}
            alert = Alert(
                webhook_id,
                dt.datetime.now(dt.UTC),
                str(contact["id"]),
                contact.get("email"),
                None if fields.get("amount") is None else str(fields["amount"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400
        self.alerts.appendleft(alert)
        return 204
