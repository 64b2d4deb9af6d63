"""Consents given from browsers (``POST /browser/consent``), where the first agreement of a
visitor creates their contact.

A page can go away before that answer arrives, and the answer is the only place the browser
learns its contact. So waypost.js gives a first agreement a random request id, keeps it until
an answer arrives, and sends it again from the next page; the same id from the same channel
within :data:`WINDOW` gets the contact the first request made instead of a second one. The ids
live in the database, so every process and node answers alike. See docs/browser-tracking.md.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.errors import not_found
from waypost.ids import utcnow
from waypost.records.consents import current_states, insert_agreement
from waypost.records.contacts import insert_contact, require_contact
from waypost.store import Store
from waypost.store.schema import browser_consent_requests, consents

# How long a request id is remembered: a resend comes with the visitor's next page, usually
# within seconds; one a day later makes a new contact.
WINDOW = dt.timedelta(days=1)
# Forgotten ids are deleted at most this often per process, in a transaction of their own.
SWEEP_SECONDS = 600.0

requests = browser_consent_requests


@dataclass(frozen=True)
class Given:
    """The answer to a browser's consent: the visitor's contact (None when there is none) and
    whether they agree to the consent now; ``created``: whether it stored a row that did not
    exist (a new contact, or a first request of its id), which an anonymous caller's limit
    counts."""

    contact: uuid.UUID | None
    agreed: bool
    created: bool = False


class BrowserConsentService:
    """Agreements and revocations from browsers, each first agreement stored once per id."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._swept: float | None = None
        self._lock = threading.Lock()

    def give(
        self,
        channel_id: uuid.UUID,
        contact_id: uuid.UUID | None,
        code_name: str,
        agreed: bool,
        request_id: str | None = None,
    ) -> Given:
        """Record the agreement (or revocation) of ``contact_id``, or, without a contact, the
        first agreement of a new visitor, which creates their contact (in the same
        transaction, so an unknown consent leaves no contact behind). A revocation without a
        contact has nothing to revoke and creates nothing. ``request_id`` matters only without
        a contact: see the module's docstring."""
        if contact_id is not None:
            with self.store.write() as conn:
                agreement = insert_agreement(conn, contact_id, code_name, agreed, channel_id)
            return Given(agreement.contact, agreement.agreed)
        if request_id is None:
            if not agreed:
                return Given(None, False)
            with self.store.write() as conn:
                agreement = insert_agreement(
                    conn, insert_contact(conn), code_name, agreed, channel_id
                )
            return Given(agreement.contact, agreement.agreed, created=True)
        try:
            given = self._once(channel_id, code_name, agreed, request_id)
        except IntegrityError:
            # On PostgreSQL another transaction stored the same id between our look and our
            # insert (on SQLite writers take turns): its row is committed now, so look again.
            given = self._once(channel_id, code_name, agreed, request_id)
        self._sweep()
        return given

    def _once(self, channel_id: uuid.UUID, code_name: str, agreed: bool, request_id: str) -> Given:
        key = (requests.c.channel_id == channel_id) & (requests.c.request_id == request_id)
        with self.store.write() as conn:
            consent_id = conn.execute(
                sa.select(consents.c.id).where(consents.c.code_name == code_name)
            ).scalar_one_or_none()
            if consent_id is None:
                raise not_found("consent")
            now = utcnow()
            row = conn.execute(sa.select(requests.c.contact_id, requests.c.created_at).where(key))
            seen = row.first()
            if seen is not None and seen.created_at <= now - WINDOW:
                conn.execute(requests.delete().where(key))
                seen = None
            if seen is None:
                contact = insert_contact(conn) if agreed else None
                conn.execute(
                    requests.insert().values(
                        channel_id=channel_id,
                        request_id=request_id,
                        contact_id=contact,
                        created_at=now,
                    )
                )
                if contact is None:
                    # A revocation that came before its agreement: the agreement, when it
                    # comes, finds this row and makes no contact.
                    return Given(None, False, created=True)
                agreement = insert_agreement(conn, contact, code_name, True, channel_id)
                return Given(agreement.contact, agreement.agreed, created=True)
            if seen.contact_id is None:
                return Given(None, False)
            contact = require_contact(conn, seen.contact_id)
            if not agreed:
                insert_agreement(conn, contact, code_name, False, channel_id)
                return Given(contact, False)
            # The same agreement again: answer as the first time, without another row (nor
            # undoing a revocation made since).
            return Given(contact, _agrees(conn, contact, consent_id))

    def _sweep(self) -> None:
        with self._lock:
            if self._swept is not None and time.monotonic() - self._swept < SWEEP_SECONDS:
                return
            self._swept = time.monotonic()
        with self.store.write() as conn:
            conn.execute(requests.delete().where(requests.c.created_at <= utcnow() - WINDOW))


def _agrees(conn: Connection, contact: uuid.UUID, consent_id: uuid.UUID) -> bool:
    state = current_states(conn, [contact], consent_id).get(contact)
    return state is not None and state.agreed
