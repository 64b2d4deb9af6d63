"""Suppressions as records (waypost/records/suppressions.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from waypost.domain.suppressions import CONTACT, EMAIL, identity_digest
from waypost.hub import Hub
from waypost.records.suppressions import (
    erased_contacts,
    load_suppressed,
    make_secret,
    read_secret,
    suppress,
)
from waypost.store.schema import installation_secrets, suppressions


def test_the_secret_is_made_once_at_random_and_kept(hub: Hub) -> None:
    with hub.store.read() as conn:
        assert read_secret(conn) is None
    with hub.store.write() as conn:
        first = make_secret(conn)
        assert make_secret(conn) == first
    assert len(first) == 32
    with hub.store.read() as conn:
        assert read_secret(conn) == first
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(installation_secrets)).scalar_one()
            == 1
        )


def test_suppress_keeps_digests_only_and_each_once(hub: Hub) -> None:
    contact = uuid.uuid4()
    identities = [
        (EMAIL, "Ann@Example.com"),
        (EMAIL, "ann@example.com"),
        (CONTACT, str(contact)),
        ("user_id", ""),
    ]
    with hub.store.write() as conn:
        assert suppress(conn, identities, None) == 2
        assert suppress(conn, [(EMAIL, "ANN@example.com")], None) == 0
        secret = make_secret(conn)
    with hub.store.read() as conn:
        stored = conn.execute(sa.select(suppressions)).all()
        loaded = load_suppressed(conn)
        assert erased_contacts(conn, [contact, uuid.uuid4()]) == {contact}
    assert {r.kind for r in stored} == {EMAIL, CONTACT}
    assert all("ann" not in r.digest for r in stored)
    assert identity_digest(secret, EMAIL, "ann@example.com") in {r.digest for r in stored}
    assert loaded.names(EMAIL, "ann@example.com")


def test_nothing_is_erased_before_any_erasure(hub: Hub) -> None:
    with hub.store.read() as conn:
        assert erased_contacts(conn, [uuid.uuid4()]) == set()
        assert not load_suppressed(conn)
