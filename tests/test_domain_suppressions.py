"""Suppressed identities as keyed hashes (waypost/domain/suppressions.py): no database."""

from __future__ import annotations

import uuid

from waypost.domain.suppressions import (
    CONTACT,
    EMAIL,
    USER_ID,
    Suppressed,
    contact_erased,
    identity_digest,
)

SECRET = b"s" * 32


def test_a_digest_is_keyed_and_tells_kinds_apart() -> None:
    digest = identity_digest(SECRET, USER_ID, "42")
    assert len(digest) == 64
    assert digest == identity_digest(SECRET, USER_ID, "42")
    assert digest != identity_digest(b"t" * 32, USER_ID, "42")
    assert digest != identity_digest(SECRET, "anonymous_id", "42")
    assert "42" not in digest


def test_emails_are_hashed_as_their_key_and_external_ids_as_they_are() -> None:
    assert identity_digest(SECRET, EMAIL, " Ann@Example.COM ") == identity_digest(
        SECRET, EMAIL, "ann@example.com"
    )
    assert identity_digest(SECRET, USER_ID, "Ann") != identity_digest(SECRET, USER_ID, "ann")


def test_nothing_is_suppressed_without_digests() -> None:
    empty = Suppressed()
    assert not empty
    assert not empty.names(EMAIL, "ann@example.com")
    assert not empty.any_of([(EMAIL, "ann@example.com"), (USER_ID, "1")])


def test_names_takes_strings_ints_and_uuids() -> None:
    contact = uuid.uuid4()
    suppressed = Suppressed(
        SECRET,
        frozenset(
            {
                identity_digest(SECRET, EMAIL, "ann@example.com"),
                identity_digest(SECRET, USER_ID, "42"),
                identity_digest(SECRET, CONTACT, str(contact)),
            }
        ),
    )
    assert suppressed
    assert suppressed.names(EMAIL, "ANN@example.com")
    assert suppressed.names(USER_ID, 42)
    assert suppressed.names(CONTACT, contact)
    assert not suppressed.names(USER_ID, None)
    assert not suppressed.names(USER_ID, "")
    assert not suppressed.names(USER_ID, ["42"])
    assert suppressed.any_of([(USER_ID, "7"), (EMAIL, "ann@example.com")])


def test_the_refusal() -> None:
    error = contact_erased("The person")
    assert (error.status, error.code) == (403, "contact_erased")
    assert error.message.startswith("The person was erased")
