"""One stored activity as the API shows it: in the activity log, the export and webhooks."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec


class Activity(msgspec.Struct):
    """One stored activity. ``consent_agreed`` is the channel's tracking consent state when it
    was received (null when the channel names no tracking consent). ``flags`` lists the field
    violations an ``accept_and_flag`` type let through."""

    id: uuid.UUID
    type: str
    contact: uuid.UUID
    channel: uuid.UUID
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    fields: dict[str, Any] | None
    flags: list[dict[str, Any]] | None
    occurred_at: dt.datetime
    received_at: dt.datetime
    client_id: str | None
    consent_agreed: bool | None
    consent_version: int | None
