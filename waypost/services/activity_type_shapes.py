"""The shapes of activity types in the admin API: definitions, changes, limits and listings
(the rules are in waypost/services/activity_types.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from waypost.domain.fields import FieldSpec
from waypost.pagination import Cursor, PageLimit

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
CodeName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Alias = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# A hundred years: the purge computes the oldest day kept, which must stay a date, and the
# column is a 32-bit integer on PostgreSQL.
RetentionDays = Annotated[int, msgspec.Meta(ge=1, le=36_500)]
UnknownFields = Literal["reject", "accept_and_flag"]
# Marketo's activityTypeId; the column is a 32-bit integer on PostgreSQL.
TypeNumber = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


class RateLimit(msgspec.Struct, forbid_unknown_fields=True):
    """At most ``limit`` activities in any sliding window of ``window_seconds``."""

    limit: Annotated[int, msgspec.Meta(ge=1)]
    window_seconds: Annotated[int, msgspec.Meta(ge=1, le=31 * 86400)]


class RateLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Browser rate limits of a type; Ortto's defaults: 10 per contact a day, 100 per IP an hour.

    ``null`` for either turns that limit off.
    """

    per_contact: RateLimit | None = msgspec.field(default_factory=lambda: RateLimit(10, 86400))
    per_ip: RateLimit | None = msgspec.field(default_factory=lambda: RateLimit(100, 3600))


class ActivityTypeCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new activity type; ``code_name`` is derived from ``name`` when not given."""

    name: Name
    code_name: CodeName | None = None
    description: str = ""
    enabled: bool = True
    client_side: bool = False
    fields: list[FieldSpec] = msgspec.field(default_factory=list)
    aliases: list[Alias] = msgspec.field(default_factory=list)
    rate_limits: RateLimits | None = None
    retention_days: RetentionDays | None = None
    unknown_fields: UnknownFields = "reject"
    # Marketo's activityTypeId for this type; by default the next free number.
    number: TypeNumber | None = None


class ActivityTypeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change. ``code_name`` only until the first activity of the type."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    code_name: CodeName | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    client_side: bool | msgspec.UnsetType = msgspec.UNSET
    fields: list[FieldSpec] | msgspec.UnsetType = msgspec.UNSET
    aliases: list[Alias] | msgspec.UnsetType = msgspec.UNSET
    rate_limits: RateLimits | msgspec.UnsetType | None = msgspec.UNSET
    retention_days: RetentionDays | msgspec.UnsetType | None = msgspec.UNSET
    unknown_fields: UnknownFields | msgspec.UnsetType = msgspec.UNSET
    draft: bool | msgspec.UnsetType = msgspec.UNSET


class ActivityType(msgspec.Struct):
    """An activity type. ``code_name_locked`` is true once an activity of the type exists;
    ``draft`` marks a type created from an unknown Segment event, until a marketer approves
    it (PATCH ``draft: false``); ``number`` is Marketo's ``activityTypeId`` for it."""

    id: uuid.UUID
    code_name: str
    name: str
    description: str
    enabled: bool
    client_side: bool
    builtin: bool
    fields: list[FieldSpec]
    aliases: list[str]
    rate_limits: RateLimits
    retention_days: int | None
    unknown_fields: UnknownFields
    draft: bool
    # The type's stable number (Marketo's activityTypeId), given at creation, never reused.
    number: int
    code_name_locked: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class FieldViolationCount(msgspec.Struct):
    """How many activities an ``accept_and_flag`` type stored with this violation."""

    field: str
    code: str
    count: int
    last_seen_at: dt.datetime


class ActivityTypeQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Filters for the activity type list."""

    limit: PageLimit = 100
    cursor: Cursor | None = None
    enabled: bool | None = None
    client_side: bool | None = None
