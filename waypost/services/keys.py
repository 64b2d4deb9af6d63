"""API keys: create (shown once), list, disable, delete, authenticate a bearer token, and
when each was last used."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.keys import Access, bearer_token, generate_key, hash_key
from waypost.errors import ApiError, invalid, not_found
from waypost.ids import new_id, utcnow
from waypost.pagination import Cursor, Page, PageLimit, cursor_id, page_by_id
from waypost.services.key_usage import KeyUsage
from waypost.store import Store, announce
from waypost.store.schema import api_keys, channels

Name = Annotated[str, msgspec.Meta(max_length=200)]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new key. Tracking and publishable keys belong to a channel; admin keys to none."""

    access: Access
    channel: uuid.UUID | None = None
    name: Name = ""


class KeyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of a key that can change."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class ApiKey(msgspec.Struct):
    """A key as listed: never the secret, only its prefix and last four characters."""

    id: uuid.UUID
    channel: uuid.UUID | None
    access: Access
    name: str
    prefix: str
    last_four: str
    enabled: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    last_used_at: dt.datetime | None


class CreatedKey(ApiKey):
    """A key just created: ``key`` is the secret, shown this once and never again."""

    key: str


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: an enabled key, its access type and channel."""

    key_id: uuid.UUID
    access: Access
    channel_id: uuid.UUID | None


class KeyQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Filters for the key list."""

    limit: PageLimit = 100
    cursor: Cursor | None = None
    channel: uuid.UUID | None = None
    access: Access | None = None


def _row_to_key(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        channel=m["channel_id"],
        access=m["access"],
        name=m["name"],
        prefix=m["prefix"],
        last_four=m["last_four"],
        enabled=m["enabled"],
        created_at=m["created_at"],
        disabled_at=m["disabled_at"],
        last_used_at=m["last_used_at"],
    )


UNAUTHORIZED = "Send 'Authorization: Bearer <key>' with an enabled API key."


class KeyService:
    """API keys on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.usage = KeyUsage(store)

    def create(self, body: KeyCreate) -> CreatedKey:
        with self.store.write() as conn:
            return self.create_in(conn, body)

    def create_in(self, conn: Connection, body: KeyCreate) -> CreatedKey:
        if body.access == "admin":
            if body.channel is not None:
                raise invalid("Admin keys belong to no channel; leave 'channel' null.", "channel")
        else:
            if body.channel is None:
                raise ApiError(
                    400,
                    "missing_field",
                    f"A {body.access} key belongs to a channel; give 'channel'.",
                    "channel",
                )
            kind = conn.execute(
                sa.select(channels.c.kind).where(channels.c.id == body.channel)
            ).scalar_one_or_none()
            if kind is None:
                raise invalid("No channel has that identifier.", "channel")
            if body.access == "publishable" and kind != "website":
                raise invalid(
                    "Publishable keys are for website channels; use a tracking key.", "channel"
                )
        material = generate_key(body.access)
        key_id = new_id()
        now = utcnow()
        conn.execute(
            api_keys.insert().values(
                id=key_id,
                channel_id=body.channel,
                access=body.access,
                name=body.name,
                prefix=material.prefix,
                last_four=material.last_four,
                key_hash=material.key_hash,
                enabled=True,
                created_at=now,
                disabled_at=None,
            )
        )
        announce(conn, "key", key_id)
        return CreatedKey(
            id=key_id,
            channel=body.channel,
            access=body.access,
            name=body.name,
            prefix=material.prefix,
            last_four=material.last_four,
            enabled=True,
            created_at=now,
            disabled_at=None,
            last_used_at=None,
            key=material.secret,
        )

    def list_page(self, query: KeyQuery) -> Page[ApiKey]:
        stmt = sa.select(api_keys).order_by(api_keys.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(api_keys.c.id > after)
        if query.channel is not None:
            stmt = stmt.where(api_keys.c.channel_id == query.channel)
        if query.access is not None:
            stmt = stmt.where(api_keys.c.access == query.access)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([_row_to_key(r) for r in rows], query.limit, lambda k: k.id)

    def get(self, key_id: uuid.UUID) -> ApiKey:
        with self.store.read() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise not_found("API key")
        return _row_to_key(row)

    def update(self, key_id: uuid.UUID, body: KeyUpdate) -> ApiKey:
        values: dict[str, object] = {}
        if body.name is not msgspec.UNSET:
            values["name"] = body.name
        if body.enabled is not msgspec.UNSET:
            values["enabled"] = body.enabled
            values["disabled_at"] = None if body.enabled else utcnow()
        with self.store.write() as conn:
            if values:
                done = conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(**values)
                )
                if done.rowcount == 0:
                    raise not_found("API key")
                announce(conn, "key", key_id)
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise not_found("API key")
        return _row_to_key(row)

    def delete(self, key_id: uuid.UUID) -> None:
        with self.store.write() as conn:
            if conn.execute(api_keys.delete().where(api_keys.c.id == key_id)).rowcount == 0:
                raise not_found("API key")
            announce(conn, "key", key_id)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind a bearer token: 401 without a known key, 403 if disabled."""
        token = bearer_token(authorization)
        if token is None:
            raise ApiError(401, "unauthorized", UNAUTHORIZED)
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(
                    api_keys.c.id, api_keys.c.access, api_keys.c.channel_id, api_keys.c.enabled
                ).where(api_keys.c.key_hash == hash_key(token))
            ).first()
        if row is None:
            raise ApiError(401, "unauthorized", "That API key is not known. " + UNAUTHORIZED)
        if not row.enabled:
            raise ApiError(403, "forbidden", "That API key is disabled; use an enabled key.")
        self.usage.note(row.id)
        return Principal(row.id, row.access, row.channel_id)

    def authenticate_admin(self, authorization: str | None) -> Principal:
        return admin_principal(self.authenticate(authorization))

    def has_admin_key(self) -> bool:
        with self.store.read() as conn:
            return (
                conn.execute(
                    sa.select(api_keys.c.id).where(api_keys.c.access == "admin").limit(1)
                ).first()
                is not None
            )


def admin_principal(principal: Principal) -> Principal:
    """``principal`` if it may use the admin API, else 403."""
    if principal.access != "admin":
        raise ApiError(
            403,
            "forbidden",
            f"A {principal.access} key cannot use the admin API; use an admin key (wpa_).",
        )
    return principal
