"""An in-memory copy of keys, channels, activity types, consents and the suppressed
identities of erased contacts, for the hot path.

Each process reloads it once a change to what it holds is published on the store's change feed
(services announce every change they commit, see waypost/store/changes.py), and at least every
``catalog_ttl_seconds`` whatever the feed says, so a change the feed did not carry (one made in
another process on the same database) is seen within that time.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass, field

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.fields import FieldSpec
from waypost.domain.keys import Access
from waypost.domain.suppressions import Suppressed
from waypost.domain.value_counts import counted_fields
from waypost.records.suppressions import (
    SuppressionsVersion,
    load_suppressed,
    suppressions_version,
)
from waypost.store import Change, StorageUnavailable, Store
from waypost.store.schema import activity_types, api_keys, channels, consents
from waypost.store.type_fields import load_type_fields


@dataclass(frozen=True)
class KeyInfo:
    id: uuid.UUID
    access: Access
    channel_id: uuid.UUID | None
    enabled: bool


@dataclass(frozen=True)
class ChannelInfo:
    id: uuid.UUID
    kind: str
    default_language: str
    allowed_origins: frozenset[str]
    tracking_consent: str | None
    tracking_consent_id: uuid.UUID | None
    enforce_consent: bool
    identity_secret: str
    unknown_events: str = "reject"


@dataclass(frozen=True)
class RateLimitInfo:
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class TypeInfo:
    id: uuid.UUID
    code_name: str
    name: str
    enabled: bool
    client_side: bool
    fields: tuple[FieldSpec, ...]
    unknown_fields: str
    per_contact: RateLimitInfo | None
    per_ip: RateLimitInfo | None
    # Marketo's activityTypeId for the type.
    number: int = 0
    # The fields whose values the writer counts per day (waypost.domain.value_counts).
    counted: tuple[str, ...] = ()

    @functools.cached_property
    def decimal_primary(self) -> bool:
        """Whether the primary field is a decimal, whose value is not written to
        ``primary_value`` (worked out once per type, not per activity)."""
        return any(f.primary and f.type == "decimal" for f in self.fields)


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of the catalog."""

    keys: dict[str, KeyInfo] = field(default_factory=dict)
    channels: dict[uuid.UUID, ChannelInfo] = field(default_factory=dict)
    types: dict[str, TypeInfo] = field(default_factory=dict)
    aliases: dict[str, TypeInfo] = field(default_factory=dict)
    consents: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    all_origins: frozenset[str] = frozenset()
    # The identities of erased contacts (docs/data-lifecycle.md#a-contacts-data).
    suppressed: Suppressed = field(default_factory=Suppressed)
    # Types by number (Marketo's activityTypeId).
    numbers: dict[int, TypeInfo] = field(default_factory=dict)


DEFAULT_PER_CONTACT = RateLimitInfo(10, 86400)
DEFAULT_PER_IP = RateLimitInfo(100, 3600)


class _Limits(msgspec.Struct):
    per_contact: RateLimitInfo | None = DEFAULT_PER_CONTACT
    per_ip: RateLimitInfo | None = DEFAULT_PER_IP


# What the catalog holds; it does not hold groups.
CACHED_KINDS = frozenset({"channel", "key", "activity_type", "consent", "suppression"})


class Catalog:
    """The cached catalog of one process."""

    def __init__(self, store: Store, ttl_seconds: float) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._lock = threading.Lock()
        # One load at a time: the requests that find the copy stale together (each on a worker
        # thread) wait for one load rather than each making its own.
        self._loading = threading.Lock()
        # Loads ended so far, and the outage that failed the last one (if it failed so).
        self._loads = 0
        self._outage: StorageUnavailable | None = None
        # The suppressions as last read, kept across reloads while they have not changed: an
        # installation may have erased many people, and the catalog reloads every few seconds.
        self._suppressed: tuple[SuppressionsVersion, Suppressed] | None = None

    def invalidate(self) -> None:
        """Forget the cached copy; the next use reloads it."""
        with self._lock:
            self._generation += 1
            self._snapshot = None

    def changed(self, change: Change) -> None:
        """A change feed's subscriber: forget the copy when what it holds changed."""
        if change.kind in CACHED_KINDS:
            self.invalidate()

    def fresh(self) -> Snapshot | None:
        """The cached copy if it is still fresh, without touching the database."""
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._loaded_at < self.ttl:
            return snapshot
        return None

    def get(self) -> Snapshot:
        """The current copy, reloaded from the database when stale (blocking)."""
        snapshot = self.fresh()
        if snapshot is not None:
            return snapshot
        loads = self._loads
        with self._loading:
            snapshot = self.fresh()
            if snapshot is not None:
                return snapshot  # loaded while this caller waited
            outage = self._outage
            if outage is not None and self._loads != loads:
                # The load this caller waited for found the database unreachable: fail now,
                # rather than each waiter in turn waiting for a load of its own to fail.
                raise StorageUnavailable(str(outage)) from outage
            self._outage = None
            generation = self._generation
            try:
                loaded = self._load()
            except StorageUnavailable as exc:
                self._outage = exc
                raise
            finally:
                self._loads += 1
            with self._lock:
                if generation == self._generation:
                    self._snapshot = loaded
                    self._loaded_at = time.monotonic()
            return loaded

    def _load(self) -> Snapshot:
        with self.store.read() as conn:
            key_rows = conn.execute(
                sa.select(
                    api_keys.c.key_hash,
                    api_keys.c.id,
                    api_keys.c.access,
                    api_keys.c.channel_id,
                    api_keys.c.enabled,
                )
            ).all()
            consent_rows = conn.execute(
                sa.select(consents.c.code_name, consents.c.id, consents.c.version)
            ).all()
            channel_rows = conn.execute(sa.select(channels)).all()
            type_rows = conn.execute(sa.select(activity_types)).all()
            fields = load_type_fields(conn)
            suppressed = self._load_suppressed(conn)
        consent_map = {r.code_name: (r.id, r.version) for r in consent_rows}
        keys = {r.key_hash: KeyInfo(r.id, r.access, r.channel_id, r.enabled) for r in key_rows}
        channel_map: dict[uuid.UUID, ChannelInfo] = {}
        for r in channel_rows:
            consent = consent_map.get(r.tracking_consent) if r.tracking_consent else None
            channel_map[r.id] = ChannelInfo(
                id=r.id,
                kind=r.kind,
                default_language=r.default_language,
                allowed_origins=frozenset(r.allowed_origins),
                tracking_consent=r.tracking_consent,
                tracking_consent_id=consent[0] if consent else None,
                enforce_consent=r.enforce_consent,
                identity_secret=r.identity_secret,
                unknown_events=r.unknown_events,
            )
        types: dict[str, TypeInfo] = {}
        aliases: dict[str, TypeInfo] = {}
        numbers: dict[int, TypeInfo] = {}
        for r in type_rows:
            limits = msgspec.convert(r.rate_limits or {}, _Limits)
            info = TypeInfo(
                id=r.id,
                code_name=r.code_name,
                name=r.name,
                enabled=r.enabled,
                client_side=r.client_side,
                fields=tuple(fields.get(r.id, ())),
                unknown_fields=r.unknown_fields,
                per_contact=limits.per_contact,
                per_ip=limits.per_ip,
                number=r.number,
                counted=counted_fields(fields.get(r.id, ())),
            )
            types[r.code_name] = info
            numbers[r.number] = info
            for alias in r.aliases:
                aliases[alias] = info
        origins = frozenset(o for c in channel_map.values() for o in c.allowed_origins)
        return Snapshot(
            keys, channel_map, types, aliases, consent_map, origins, suppressed, numbers
        )

    def _load_suppressed(self, conn: Connection) -> Suppressed:
        version = suppressions_version(conn)
        kept = self._suppressed
        if kept is not None and kept[0] == version:
            return kept[1]
        loaded = load_suppressed(conn)
        self._suppressed = (version, loaded)
        return loaded
