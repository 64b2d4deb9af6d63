"""Playbooks: their definitions, the service the API and the admin UI call, and their runs.

A playbook is checked against what exists when it is saved (waypost/services/playbook_rules.py)
and announced on the change feed, so that each process's trigger cache
(waypost/services/playbook_triggers.py) takes the new definition. Runs are written by the
triggers, inside the transaction of what fired them; here they are read, newest first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.clock import Clock, SystemClock
from waypost.domain.display_names import Description
from waypost.domain.playbooks import (
    Actions,
    Cadence,
    Name,
    Trigger,
)
from waypost.domain.webhook_urls import url_origin
from waypost.error_words import quoted
from waypost.errors import conflict, not_found
from waypost.ids import new_id
from waypost.pagination import (
    Cursor,
    ListQuery,
    Page,
    PageLimit,
    cursor_id,
    encode_cursor,
    page_by_id,
    time_cursor,
)
from waypost.records.contacts import require_contact
from waypost.services.playbook_rules import check_playbook
from waypost.store import Store, announce
from waypost.store.schema import playbook_runs, playbooks, webhook_endpoints


class PlaybookCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new playbook (docs/playbooks.md): when ``trigger`` fires for a contact in
    ``audience`` (absent: everyone) and ``cadence`` allows, run ``actions``."""

    name: Name
    trigger: Trigger
    cadence: Cadence
    actions: Actions
    description: Description = ""
    enabled: bool = True
    audience: dict[str, Any] | None = None


class PlaybookUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change of a playbook: what is left out stays; ``audience`` null means everyone."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    trigger: Trigger | msgspec.UnsetType = msgspec.UNSET
    audience: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    cadence: Cadence | msgspec.UnsetType = msgspec.UNSET
    actions: Actions | msgspec.UnsetType = msgspec.UNSET


class Playbook(msgspec.Struct):
    """A saved playbook."""

    id: uuid.UUID
    name: str
    description: str
    enabled: bool
    trigger: Trigger
    audience: dict[str, Any] | None
    cadence: Cadence
    actions: Actions
    created_at: dt.datetime
    updated_at: dt.datetime


class PlaybookRun(msgspec.Struct):
    """One run of a playbook for a contact: what fired it (``event``) and on what
    (``subject``: the activity id, the group id or the consent's code name), and when."""

    id: uuid.UUID
    playbook: uuid.UUID
    contact: uuid.UUID
    event: str
    subject: str | None
    at: dt.datetime


class EndpointChoice(msgspec.Struct):
    """A webhook endpoint a playbook's action may call, as a form offers it: by its URL's
    scheme, host and port and its description, never its path or query, which often hold a
    secret (a Slack-style hook) that the marketers who edit playbooks may not see."""

    id: uuid.UUID
    origin: str
    description: str
    enabled: bool


class RunQuery(msgspec.Struct, forbid_unknown_fields=True):
    """A page of runs, newest first."""

    limit: PageLimit = 100
    cursor: Cursor | None = None


def playbook_of(row: Any) -> Playbook:
    """A playbook from its row (the JSON columns as they were saved)."""
    return Playbook(
        id=row.id,
        name=row.name,
        description=row.description,
        enabled=row.enabled,
        trigger=msgspec.convert(row.trigger, Trigger),
        audience=row.audience,
        cadence=msgspec.convert(row.cadence, Cadence),
        actions=msgspec.convert(row.actions, Actions),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _run(row: Any) -> PlaybookRun:
    return PlaybookRun(row.id, row.playbook_id, row.contact_id, row.event, row.subject, row.at)


class PlaybookService:
    """Playbooks on the store."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock if clock is not None else SystemClock()

    # -- definitions -----------------------------------------------------------------------

    def create(self, body: PlaybookCreate) -> Playbook:
        """Save a playbook once what it names is known to exist."""
        playbook_id = new_id()
        now = self.clock.now()
        try:
            with self.store.write() as conn:
                check_playbook(conn, body.trigger, body.audience, body.actions, now.date())
                conn.execute(
                    playbooks.insert().values(
                        id=playbook_id,
                        name=body.name,
                        description=body.description,
                        enabled=body.enabled,
                        trigger=msgspec.to_builtins(body.trigger),
                        audience=body.audience,
                        cadence=msgspec.to_builtins(body.cadence),
                        actions=msgspec.to_builtins(body.actions),
                        created_at=now,
                        updated_at=now,
                    )
                )
                announce(conn, "playbook", playbook_id)
                return self._get(conn, playbook_id)
        except IntegrityError:
            message = f"A playbook named {quoted(body.name)} exists already."
            raise conflict(message, "name") from None

    def update(self, playbook_id: uuid.UUID, body: PlaybookUpdate) -> Playbook:
        """Change a playbook; what it names is checked again as a whole."""
        try:
            with self.store.write() as conn:
                current = self._get(conn, playbook_id)
                values: dict[str, Any] = {
                    name: getattr(body, name)
                    for name in ("name", "description", "enabled", "audience")
                    if getattr(body, name) is not msgspec.UNSET
                }
                for name in ("trigger", "cadence", "actions"):
                    if getattr(body, name) is not msgspec.UNSET:
                        values[name] = msgspec.to_builtins(getattr(body, name))
                merged = msgspec.structs.replace(
                    current,
                    **{k: getattr(body, k) for k in values},
                )
                if {"trigger", "audience", "actions"} & set(values):
                    check_playbook(
                        conn,
                        merged.trigger,
                        merged.audience,
                        merged.actions,
                        self.clock.now().date(),
                        limits=merged.audience != current.audience,
                    )
                values["updated_at"] = self.clock.now()
                conn.execute(
                    playbooks.update().where(playbooks.c.id == playbook_id).values(**values)
                )
                announce(conn, "playbook", playbook_id)
                return self._get(conn, playbook_id)
        except IntegrityError:
            raise conflict("A playbook with that name exists already.", "name") from None

    def enable(self, playbook_id: uuid.UUID) -> Playbook:
        """Let the playbook run again (runs missed while it was disabled are not made up)."""
        return self.update(playbook_id, PlaybookUpdate(enabled=True))

    def disable(self, playbook_id: uuid.UUID) -> Playbook:
        """Stop the playbook from running; its runs are kept."""
        return self.update(playbook_id, PlaybookUpdate(enabled=False))

    def delete(self, playbook_id: uuid.UUID) -> None:
        """Delete a playbook and its runs; the messages it sent stay in the delivery log."""
        with self.store.write() as conn:
            self._get(conn, playbook_id)
            conn.execute(playbooks.delete().where(playbooks.c.id == playbook_id))
            announce(conn, "playbook", playbook_id)

    def get(self, playbook_id: uuid.UUID) -> Playbook:
        """One playbook, or a 404."""
        with self.store.read() as conn:
            return self._get(conn, playbook_id)

    def list_page(self, query: ListQuery) -> Page[Playbook]:
        """The playbooks in id order, a page at a time."""
        stmt = sa.select(playbooks).order_by(playbooks.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(playbooks.c.id > after)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([playbook_of(r) for r in rows], query.limit, lambda p: p.id)

    def run_counts(self) -> dict[uuid.UUID, int]:
        """How many runs each playbook has made, for lists (playbooks without runs absent)."""
        r = playbook_runs
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(r.c.playbook_id, sa.func.count()).group_by(r.c.playbook_id)
            ).all()
        return {row[0]: int(row[1]) for row in rows}

    def endpoint_choices(self) -> list[EndpointChoice]:
        """Every webhook endpoint, by URL, for the actions of a playbook's form (the URL's
        origin only)."""
        e = webhook_endpoints
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(e.c.id, e.c.url, e.c.description, e.c.enabled).order_by(e.c.url, e.c.id)
            ).all()
        return [
            EndpointChoice(r.id, url_origin(r.url), r.description, bool(r.enabled)) for r in rows
        ]

    # -- runs ------------------------------------------------------------------------------

    def runs(self, playbook_id: uuid.UUID, query: RunQuery) -> Page[PlaybookRun]:
        """A playbook's runs, newest first, a page at a time."""
        with self.store.read() as conn:
            self._get(conn, playbook_id)
            return _runs(conn, playbook_runs.c.playbook_id == playbook_id, query)

    def contact_runs(self, contact_id: uuid.UUID, query: RunQuery) -> Page[PlaybookRun]:
        """The runs of every playbook for a contact, newest first, a page at a time."""
        with self.store.read() as conn:
            contact_id = require_contact(conn, contact_id)
            return _runs(conn, playbook_runs.c.contact_id == contact_id, query)

    def _get(self, conn: Connection, playbook_id: uuid.UUID) -> Playbook:
        row = conn.execute(sa.select(playbooks).where(playbooks.c.id == playbook_id)).first()
        if row is None:
            raise not_found("playbook")
        return playbook_of(row)


def _runs(conn: Connection, where: sa.ColumnElement[bool], query: RunQuery) -> Page[PlaybookRun]:
    r = playbook_runs
    stmt = sa.select(r).where(where).order_by(r.c.at.desc(), r.c.id.desc()).limit(query.limit + 1)
    if query.cursor is not None:
        stamp, ident = time_cursor(query.cursor)
        stmt = stmt.where(sa.or_(r.c.at < stamp, sa.and_(r.c.at == stamp, r.c.id < ident)))
    rows = conn.execute(stmt).all()
    items = [_run(row) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    last = items[-1] if more else None
    return Page(items, encode_cursor(f"{last.at.isoformat()}|{last.id}") if last else None)


__all__ = [
    "EndpointChoice",
    "ListQuery",
    "Playbook",
    "PlaybookCreate",
    "PlaybookRun",
    "PlaybookService",
    "PlaybookUpdate",
    "RunQuery",
]
