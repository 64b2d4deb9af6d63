"""Suppressed identities: the keyed hashes that stand for an erased contact's emails, external
ids and contact ids (docs/data-lifecycle.md#a-contacts-data), and the refusal they cause.

A suppression keeps no value, only ``HMAC-SHA256(secret, kind + NUL + value)`` in hex, with the
installation's own secret: a copy of the table without the secret tells nobody whether an
email was erased, and the secret differs between installations. Emails are hashed as their
key (lower-cased, trimmed), so that ``Ann@Example.com`` is refused after ``ann@example.com``
was erased; external ids and contact ids are hashed as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from waypost.domain.contact_fields import normalise_email
from waypost.errors import ApiError

EMAIL = "email"
CONTACT = "contact"
# The external id kinds of Segment's userId and anonymousId (contact_external_ids.kind).
USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
# Every kind a suppression may have: emails, contact ids, and the external id kinds the
# collectors store (waypost/services/collectors.py, IdKinds; Snowplow's network id too).
SuppressionKind = Literal[
    "email",
    "contact",
    "user_id",
    "anonymous_id",
    "posthog_user",
    "posthog_anon",
    "snowplow_uid",
    "snowplow_duid",
    "snowplow_nuid",
    "marketo_lead",
]


def identity_digest(secret: bytes, kind: str, value: str) -> str:
    """The keyed hash that stands for one identity: ``kind`` is ``email``, ``contact`` or an
    external id's kind."""
    text = normalise_email(value) if kind == EMAIL else value
    message = kind.encode() + b"\x00" + text.encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Suppressed:
    """The suppressed digests and the secret they were made with, as the catalog holds them.

    With no suppression at all (most installations) every check answers at once, without
    computing a hash.
    """

    secret: bytes | None = None
    digests: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.digests)

    def names(self, kind: str, value: object) -> bool:
        """Whether ``value`` (of ``kind``) is the identity of an erased contact."""
        if not self.digests or self.secret is None or value is None:
            return False
        text = str(value) if isinstance(value, int | uuid.UUID) else value
        if not isinstance(text, str) or not text:
            return False
        return identity_digest(self.secret, kind, text) in self.digests

    def any_of(self, identities: Iterable[tuple[str, object]]) -> bool:
        """Whether any of ``(kind, value)`` is suppressed."""
        return bool(self.digests) and any(self.names(kind, value) for kind, value in identities)


def contact_erased(what: str = "This contact") -> ApiError:
    """403 ``contact_erased``: the answer to anything naming an erased identity."""
    return ApiError(
        403,
        "contact_erased",
        f"{what} was erased at the person's request; nothing about them is stored. An admin "
        "can lift the suppression under /api/suppressions if they come back.",
    )
