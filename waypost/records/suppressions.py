"""Suppressions as records: the installation's secret they are keyed with, adding them in an
erasure's transaction, and reading them for the catalog and the writer.

See :mod:`waypost.domain.suppressions` for what a suppression is.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.suppressions import CONTACT, Suppressed, identity_digest
from waypost.ids import new_id, utcnow
from waypost.records.contacts import upsert_insert
from waypost.store import announce
from waypost.store.schema import installation_secrets, suppressions

# The name of the secret in installation_secrets, not a secret.
SECRET_NAME = "suppressions"  # noqa: S105


def _decoded(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


def read_secret(conn: Connection) -> bytes | None:
    """The suppressions' secret, or None while no erasure has made it yet."""
    text = conn.execute(
        sa.select(installation_secrets.c.secret).where(installation_secrets.c.name == SECRET_NAME)
    ).scalar_one_or_none()
    return None if text is None else _decoded(text)


def make_secret(conn: Connection) -> bytes:
    """The suppressions' secret, made now if there is none: 32 random bytes. Two nodes making
    it at once keep the first one's (the insert of the second does nothing)."""
    found = read_secret(conn)
    if found is not None:
        return found
    insert = upsert_insert(conn)(installation_secrets).values(
        name=SECRET_NAME,
        secret=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        created_at=utcnow(),
    )
    conn.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
    made = read_secret(conn)
    assert made is not None
    return made


def suppress(
    conn: Connection, identities: Iterable[tuple[str, str]], erasure_id: uuid.UUID | None
) -> int:
    """Add a suppression for each ``(kind, value)``, in the caller's transaction; the catalog
    of every process learns of them once it commits. Returns how many were new."""
    secret = make_secret(conn)
    now = utcnow()
    rows = {
        identity_digest(secret, kind, value): kind
        for kind, value in identities
        if value  # an empty external id names nobody
    }
    if not rows:
        return 0
    known = set(
        conn.execute(
            sa.select(suppressions.c.digest).where(suppressions.c.digest.in_(list(rows)))
        ).scalars()
    )
    new = [(new_id(), digest, kind) for digest, kind in rows.items() if digest not in known]
    if new:
        insert = upsert_insert(conn)(suppressions)
        conn.execute(
            insert.on_conflict_do_nothing(index_elements=["digest"]),
            [
                {"id": i, "digest": d, "kind": k, "erasure_id": erasure_id, "created_at": now}
                for i, d, k in new
            ],
        )
        announce(conn, "suppression", new[0][0])
    return len(new)


# What changes whenever a suppression is added (a newer time) or lifted (one fewer).
SuppressionsVersion = tuple[int, object]


def suppressions_version(conn: Connection) -> SuppressionsVersion:
    """How many suppressions there are and when the newest was added: the catalog reads the
    digests again only when this changed, not on each refresh."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(suppressions.c.created_at)).select_from(suppressions)
    ).one()
    return int(row[0]), row[1]


def load_suppressed(conn: Connection) -> Suppressed:
    """Every suppression's digest, and the secret, for the catalog."""
    digests = frozenset(conn.execute(sa.select(suppressions.c.digest)).scalars())
    if not digests:
        return Suppressed()
    return Suppressed(read_secret(conn), digests)


def erased_contacts(conn: Connection, contact_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``contact_ids`` that are ids of erased contacts, read in the caller's
    transaction (the writer asks for contacts it did not find)."""
    wanted = list(contact_ids)
    if not wanted:
        return set()
    if conn.execute(sa.select(suppressions.c.id).limit(1)).first() is None:
        return set()
    secret = read_secret(conn)
    if secret is None:
        return set()
    digests = {identity_digest(secret, CONTACT, str(c)): c for c in wanted}
    found = conn.execute(
        sa.select(suppressions.c.digest).where(suppressions.c.digest.in_(list(digests)))
    ).scalars()
    return {digests[d] for d in found}
