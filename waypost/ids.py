"""Identifiers and clock: UUIDv7 keeps indexes append-friendly; every timestamp is UTC."""

from __future__ import annotations

import datetime as dt
import uuid

import uuid_utils.compat


def new_id() -> uuid.UUID:
    """A fresh UUIDv7 (time-ordered) as a standard ``uuid.UUID``."""
    return uuid_utils.compat.uuid7()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
