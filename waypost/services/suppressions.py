"""The suppressions erasures left, and the erasure log (docs/data-lifecycle.md#a-contacts-data).

A suppression is listed by its kind, its erasure and its time, never by what it stands for
(only a keyed hash is kept). To find the one of an email or an external id, give the value:
it is hashed with the installation's secret and compared, and kept nowhere. Lifting a
suppression lets that identity be tracked again from then on; what was erased stays erased.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec
import sqlalchemy as sa

from waypost.domain.suppressions import SuppressionKind, identity_digest
from waypost.errors import not_found
from waypost.pagination import Cursor, ListQuery, Page, PageLimit, cursor_id, page_by_id
from waypost.records.suppressions import read_secret
from waypost.store import Store, announce
from waypost.store.schema import erasures, suppressions


class Suppression(msgspec.Struct):
    """A suppressed identity: its kind (``email``, ``contact``, or an external id's kind such
    as ``user_id``), the erasure that added it, and when."""

    id: uuid.UUID
    kind: str
    erasure: uuid.UUID | None
    created_at: dt.datetime


class SuppressionQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``kind`` keeps one kind; ``value`` finds the suppression of an email, an external id or
    a contact id (with ``kind``, of that kind only)."""

    limit: PageLimit = 100
    cursor: Cursor | None = None
    kind: SuppressionKind | None = None
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=254)] | None = None


class Erasure(msgspec.Struct):
    """One erasure: who asked (``actor_kind`` ``key`` or ``user``, and its id), when, how many
    contacts (the contact and those merged into it), rows deleted by kind, identities
    suppressed. It names nobody."""

    id: uuid.UUID
    actor_kind: str
    actor_id: uuid.UUID | None
    erased_at: dt.datetime
    contacts: int
    deleted: dict[str, int]
    suppressions: int
    duration_ms: int


# The kinds a value is looked up as when no kind is given.
LOOKUP_KINDS = ("email", "user_id", "anonymous_id", "contact")


class SuppressionService:
    """Suppressions and the erasure log on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list_page(self, query: SuppressionQuery) -> Page[Suppression]:
        """Newest first (ids are UUIDv7)."""
        s = suppressions
        stmt = sa.select(s).order_by(s.c.id.desc()).limit(query.limit + 1)
        if (before := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(s.c.id < before)
        if query.kind is not None:
            stmt = stmt.where(s.c.kind == query.kind)
        with self.store.read() as conn:
            if query.value is not None:
                secret = read_secret(conn)
                if secret is None:
                    return Page([], None)
                kinds = (query.kind,) if query.kind is not None else LOOKUP_KINDS
                digests = [identity_digest(secret, kind, query.value) for kind in kinds]
                stmt = stmt.where(s.c.digest.in_(digests))
            rows = conn.execute(stmt).all()
        items = [Suppression(r.id, r.kind, r.erasure_id, r.created_at) for r in rows]
        return page_by_id(items, query.limit, lambda item: item.id)

    def lift(self, suppression_id: uuid.UUID) -> None:
        """Delete one suppression; 404 if there is none."""
        with self.store.write() as conn:
            gone = conn.execute(
                suppressions.delete().where(suppressions.c.id == suppression_id)
            ).rowcount
            if not gone:
                raise not_found("suppression")
            announce(conn, "suppression", suppression_id)

    def erasures_page(self, query: ListQuery) -> Page[Erasure]:
        """The erasure log, newest first."""
        e = erasures
        stmt = sa.select(e).order_by(e.c.id.desc()).limit(query.limit + 1)
        if (before := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(e.c.id < before)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        items = [
            Erasure(
                id=r.id,
                actor_kind=r.actor_kind,
                actor_id=r.actor_id,
                erased_at=r.erased_at,
                contacts=r.contacts,
                deleted=dict(r.deleted),
                suppressions=r.suppressions,
                duration_ms=r.duration_ms,
            )
            for r in rows
        ]
        return page_by_id(items, query.limit, lambda item: item.id)
