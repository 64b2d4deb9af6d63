"""Consent agreements as records: append an agreement, read the current states, require one.

These run inside the caller's write transaction; the writer and the services both use them.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.conditions import CONSENTS_CHANGED
from waypost.domain.triggers import ConsentChanged
from waypost.errors import ApiError, not_found
from waypost.ids import new_id, utcnow
from waypost.records.contacts import require_contact
from waypost.store import emit, touch
from waypost.store.schema import consent_agreements, consents


class Agreement(msgspec.Struct):
    """One row of a contact's consent history: agreed or revoked, when, where, which version."""

    id: uuid.UUID
    contact: uuid.UUID
    consent: str
    agreed: bool
    version: int
    channel: uuid.UUID | None
    created_at: dt.datetime


class ConsentState(msgspec.Struct, frozen=True):
    """A contact's current state for one consent: the newest agreement row, if any."""

    agreed: bool
    version: int | None


def insert_agreement(
    conn: Connection,
    contact_id: uuid.UUID,
    code_name: str,
    agreed: bool,
    channel_id: uuid.UUID | None,
) -> Agreement:
    """Append, in the caller's write transaction, an agreement (or a revocation) of the contact
    (following merges) for the consent's current text version; 404 for either unknown. Emits
    a ConsentChanged, which playbooks fire on, when the row changes the contact's state."""
    contact_id = require_contact(conn, contact_id)
    row = conn.execute(
        sa.select(consents.c.id, consents.c.version).where(consents.c.code_name == code_name)
    ).first()
    if row is None:
        raise not_found("consent")
    before = current_states(conn, [contact_id], row.id).get(contact_id)
    agreement = Agreement(
        id=new_id(),
        contact=contact_id,
        consent=code_name,
        agreed=agreed,
        version=row.version,
        channel=channel_id,
        created_at=utcnow(),
    )
    conn.execute(
        consent_agreements.insert().values(
            id=agreement.id,
            contact_id=contact_id,
            consent_id=row.id,
            channel_id=channel_id,
            agreed=agreed,
            version=row.version,
            created_at=agreement.created_at,
        )
    )
    touch(conn, [contact_id], CONSENTS_CHANGED)
    if _changes_state(before, agreed, row.version):
        emit(
            conn,
            ConsentChanged(
                row.id, code_name, row.version, contact_id, agreed, agreement.created_at
            ),
        )
    return agreement


def _changes_state(before: ConsentState | None, agreed: bool, version: int) -> bool:
    """Whether a new row changes the contact's state: an agreement unless the contact agrees
    to this version already, a revocation only of an agreement (repeating what is recorded
    fires no playbook)."""
    held = before is not None and before.agreed
    if agreed:
        return not (held and before is not None and before.version == version)
    return held


def current_states(
    conn: Connection, contact_ids: list[uuid.UUID], consent_id: uuid.UUID
) -> dict[uuid.UUID, ConsentState]:
    """The newest agreement row per contact for one consent (contacts without one are absent)."""
    if not contact_ids:
        return {}
    a = consent_agreements
    rows = conn.execute(
        sa.select(a.c.contact_id, a.c.agreed, a.c.version)
        .where(a.c.consent_id == consent_id, a.c.contact_id.in_(contact_ids))
        .order_by(a.c.contact_id, a.c.created_at, a.c.id)
    ).all()
    states: dict[uuid.UUID, ConsentState] = {}
    for row in rows:  # ordered oldest first, so the newest wins
        states[row.contact_id] = ConsentState(row.agreed, row.version)
    return states


def consent_required(code_name: str | None) -> ApiError:
    """The 403 for tracking a contact without a current agreement to the channel's tracking
    consent: the same answer for activities and for a browser's identify."""
    return ApiError(
        403,
        "consent_required",
        f"The contact has not agreed to {code_name!r}, which this channel requires before "
        "tracking.",
    )


def require_agreement(conn: Connection, contact_id: uuid.UUID | None, code_name: str) -> int:
    """The text version of the contact's current agreement to the consent; 403
    ``consent_required`` without one (no contact, never agreed, or revoked since)."""
    consent_id = conn.execute(
        sa.select(consents.c.id).where(consents.c.code_name == code_name)
    ).scalar_one_or_none()
    if consent_id is None or contact_id is None:
        raise consent_required(code_name)
    state = current_states(conn, [contact_id], consent_id).get(contact_id)
    if state is None or not state.agreed or state.version is None:
        raise consent_required(code_name)
    return state.version


def carry_agreement(
    conn: Connection,
    contact_id: uuid.UUID,
    code_name: str,
    version: int,
    channel_id: uuid.UUID | None,
) -> None:
    """Record, for ``contact_id``, an agreement to the consent's text ``version`` that the same
    visitor gave as another contact (a new row: the history stays append-only)."""
    conn.execute(
        consent_agreements.insert().values(
            id=new_id(),
            contact_id=contact_id,
            consent_id=sa.select(consents.c.id)
            .where(consents.c.code_name == code_name)
            .scalar_subquery(),
            channel_id=channel_id,
            agreed=True,
            version=version,
            created_at=utcnow(),
        )
    )
    touch(conn, [contact_id], CONSENTS_CHANGED)
