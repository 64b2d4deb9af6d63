"""Channels: the sources of activities, website or headless."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.domain.channels import (
    LANGUAGE,
    MAX_LANGUAGE_LENGTH,
    MAX_ORIGINS,
    ChannelKind,
    enforces_by_default,
    is_valid_language,
    normalise_origin,
)
from waypost.domain.display_names import DisplayName
from waypost.error_words import quoted
from waypost.errors import ApiError, conflict, invalid, not_found
from waypost.ids import new_id, utcnow
from waypost.pagination import ListQuery, Page, cursor_id, page_by_id
from waypost.store import Store, announce
from waypost.store.schema import channels, consents

Name = DisplayName
# Segment events with no matching activity type: "reject" them (kept as rejected activities),
# or store them under a "draft" type created for the event, for a marketer to approve.
UnknownEvents = Literal["reject", "draft"]
# The pattern only tells the document's readers what is accepted; the answer to what is not
# comes from is_valid_language, which says what to send instead. An origin is described in
# words: what normalise_origin takes (any letter case, an IPv6 literal, a host in any script,
# stored in its ASCII form) is more than a pattern could say without refusing some of it.
Language = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=MAX_LANGUAGE_LENGTH,
        # In the document's regex dialect (ECMA-262) "$" is the end of the text; "\Z" is not.
        extra_json_schema={"pattern": LANGUAGE.pattern.removesuffix(r"\Z") + "$"},
    ),
]
Origin = Annotated[
    str,
    msgspec.Meta(
        description=(
            "An origin as browsers send it in Origin: http or https, a host and an optional "
            "port (https://www.example.com, http://localhost:3000); stored lower-case, without "
            "a default port, a host in another script in its ASCII (xn--) form."
        )
    ),
]
Origins = Annotated[list[Origin], msgspec.Meta(max_length=MAX_ORIGINS)]
# A consent's code name (waypost/services/consents.py, which imports this module).
ConsentCode = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ChannelCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new channel. ``tracking_consent`` is a consent code name. ``enforce_consent`` left
    out (or null) is on for a website channel with a tracking consent, off otherwise."""

    name: Name
    kind: ChannelKind
    allowed_origins: Origins = msgspec.field(default_factory=list)
    default_language: Language = "en"
    tracking_consent: ConsentCode | None = None
    enforce_consent: bool | None = None
    unknown_events: UnknownEvents = "reject"


class ChannelUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; the kind of a channel is fixed."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    allowed_origins: Origins | msgspec.UnsetType = msgspec.UNSET
    default_language: Language | msgspec.UnsetType = msgspec.UNSET
    tracking_consent: ConsentCode | msgspec.UnsetType | None = msgspec.UNSET
    enforce_consent: bool | msgspec.UnsetType = msgspec.UNSET
    unknown_events: UnknownEvents | msgspec.UnsetType = msgspec.UNSET


class Channel(msgspec.Struct):
    """A channel. ``identity_secret`` signs browser identity hashes (HMAC-SHA256 of the email)."""

    id: uuid.UUID
    name: str
    kind: ChannelKind
    allowed_origins: list[str]
    default_language: str
    tracking_consent: str | None
    enforce_consent: bool
    unknown_events: UnknownEvents
    identity_secret: str
    created_at: dt.datetime
    updated_at: dt.datetime


def _row_to_channel(row: sa.Row[tuple[object, ...]]) -> Channel:
    m = row._mapping
    return Channel(
        id=m["id"],
        name=m["name"],
        kind=m["kind"],
        allowed_origins=list(m["allowed_origins"]),
        default_language=m["default_language"],
        tracking_consent=m["tracking_consent"],
        enforce_consent=m["enforce_consent"],
        unknown_events=m["unknown_events"],
        identity_secret=m["identity_secret"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _origins(values: list[str]) -> list[str]:
    """The origins normalised, each once, in the order given."""
    if len(values) > MAX_ORIGINS:  # the body's type says so too; a Python caller may not
        raise invalid(
            f"A channel allows at most {MAX_ORIGINS} origins (got {len(values)}).",
            "allowed_origins",
        )
    result: dict[str, None] = {}
    for i, value in enumerate(values):
        try:
            origin = normalise_origin(value)
        except ValueError as exc:
            raise invalid(f"{exc}.", f"allowed_origins[{i}]") from None
        result[origin] = None
    return list(result)


def _language(value: str) -> str:
    if not is_valid_language(value):
        raise invalid(
            f"{quoted(value)} is not a language code like 'en' or 'en-US'.", "default_language"
        )
    return value


@contextmanager
def _name_race(name: str | msgspec.UnsetType) -> Iterator[None]:
    # Another request may take the name between our check and our write; the unique index
    # then refuses the row, and that is the same conflict.
    try:
        yield
    except IntegrityError:
        raise conflict(f"A channel named {quoted(str(name))} exists already.", "name") from None


class ChannelService:
    """Channels on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, body: ChannelCreate) -> Channel:
        with _name_race(body.name), self.store.write() as conn:
            return self.create_in(conn, body)

    def create_in(self, conn: Connection, body: ChannelCreate) -> Channel:
        enforce = body.enforce_consent
        if enforce is None:
            enforce = enforces_by_default(body.kind, body.tracking_consent)
        self._check_consent(conn, body.tracking_consent, enforce)
        now = utcnow()
        channel_id = new_id()
        values = {
            "id": channel_id,
            "name": body.name,
            "kind": body.kind,
            "allowed_origins": _origins(body.allowed_origins),
            "default_language": _language(body.default_language),
            "tracking_consent": body.tracking_consent,
            "enforce_consent": enforce,
            "unknown_events": body.unknown_events,
            "identity_secret": secrets.token_urlsafe(32),
            "created_at": now,
            "updated_at": now,
        }
        self._guard_name(conn, body.name)
        conn.execute(channels.insert().values(**values))
        announce(conn, "channel", channel_id)
        return msgspec.convert(values, Channel, from_attributes=False)

    def list_page(self, query: ListQuery) -> Page[Channel]:
        stmt = sa.select(channels).order_by(channels.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(channels.c.id > after)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([_row_to_channel(r) for r in rows], query.limit, lambda c: c.id)

    def get(self, channel_id: uuid.UUID) -> Channel:
        with self.store.read() as conn:
            return self.get_in(conn, channel_id)

    def get_in(self, conn: Connection, channel_id: uuid.UUID) -> Channel:
        row = conn.execute(sa.select(channels).where(channels.c.id == channel_id)).first()
        if row is None:
            raise not_found("channel")
        return _row_to_channel(row)

    def update(self, channel_id: uuid.UUID, body: ChannelUpdate) -> Channel:
        with _name_race(body.name), self.store.write() as conn:
            current = self.get_in(conn, channel_id)
            values: dict[str, object] = {}
            if body.name is not msgspec.UNSET and body.name != current.name:
                self._guard_name(conn, body.name)
                values["name"] = body.name
            if body.allowed_origins is not msgspec.UNSET:
                values["allowed_origins"] = _origins(body.allowed_origins)
            if body.default_language is not msgspec.UNSET:
                values["default_language"] = _language(body.default_language)
            consent = current.tracking_consent
            if body.tracking_consent is not msgspec.UNSET:
                consent = values["tracking_consent"] = body.tracking_consent
            enforce = current.enforce_consent
            if body.enforce_consent is not msgspec.UNSET:
                enforce = values["enforce_consent"] = body.enforce_consent
            elif current.tracking_consent is None and consent is not None:
                # A website channel that names a tracking consent for the first time enforces
                # it, as one created with it does, unless the same change says otherwise.
                enforce = values["enforce_consent"] = enforces_by_default(current.kind, consent)
            if body.unknown_events is not msgspec.UNSET:
                values["unknown_events"] = body.unknown_events
            self._check_consent(conn, consent, enforce)
            if values:
                values["updated_at"] = utcnow()
                conn.execute(channels.update().where(channels.c.id == channel_id).values(**values))
                announce(conn, "channel", channel_id)
            return self.get_in(conn, channel_id)

    def delete(self, channel_id: uuid.UUID) -> None:
        try:
            with self.store.write() as conn:
                self.get_in(conn, channel_id)
                conn.execute(channels.delete().where(channels.c.id == channel_id))
                announce(conn, "channel", channel_id)
        except IntegrityError:
            raise conflict(
                "The channel still has keys or activities; delete its keys first. "
                "A channel with activities cannot be deleted."
            ) from None

    def _guard_name(self, conn: Connection, name: str) -> None:
        taken = conn.execute(sa.select(channels.c.id).where(channels.c.name == name)).first()
        if taken is not None:
            raise conflict(f"A channel named {quoted(name)} exists already.", "name")

    def _check_consent(self, conn: Connection, consent: str | None, enforce: bool) -> None:
        if consent is None:
            if enforce:
                raise invalid(
                    "enforce_consent needs a tracking_consent to enforce.", "enforce_consent"
                )
            return
        found = conn.execute(
            sa.select(consents.c.id).where(consents.c.code_name == consent)
        ).first()
        if found is None:
            raise ApiError(
                400,
                "invalid_field",
                f"No consent has the code name {quoted(consent)}; create it under /api/consents "
                "first.",
                "tracking_consent",
            )
