"""What can trigger a playbook, as the write transactions that change it say so.

The writer, the group updater and the consent records emit these events inside their write
transaction (``waypost.store.emit``); the playbook triggers, a handler the store calls before
that transaction commits, turn the ones a playbook listens to into runs and outbox messages,
in the same transaction (docs/playbooks.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ActivityStored:
    """An activity was stored, as the admin API shows it (``fields`` in canonical form)."""

    id: uuid.UUID
    type_id: uuid.UUID
    type_code: str
    contact_id: uuid.UUID
    channel_id: uuid.UUID
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    fields: dict[str, Any]
    occurred_at: dt.datetime
    received_at: dt.datetime
    flags: list[dict[str, Any]] | None = None
    client_id: str | None = None
    consent_agreed: bool | None = None
    consent_version: int | None = None


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """Contacts entered (``entered`` True) or left a contact group."""

    group_id: uuid.UUID
    contact_ids: frozenset[uuid.UUID]
    entered: bool
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class ConsentChanged:
    """A contact agreed to (``agreed`` True) or revoked a consent."""

    consent_id: uuid.UUID
    consent_code: str
    version: int
    contact_id: uuid.UUID
    agreed: bool
    at: dt.datetime


TriggerEvent = ActivityStored | MembershipChanged | ConsentChanged
