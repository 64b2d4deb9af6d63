"""API key material: generation, the readable prefix, and the hash that is all we store."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal

Access = Literal["tracking", "publishable", "admin"]

PREFIXES: dict[str, str] = {"tracking": "wpt_", "publishable": "wpp_", "admin": "wpa_"}
ACCESS_BY_PREFIX = {prefix: access for access, prefix in PREFIXES.items()}

# The readable part of a key shown in lists: its access prefix and four more characters.
SHOWN_PREFIX_LENGTH = 8


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: ``secret`` is shown once, then only ``key_hash`` is kept."""

    secret: str
    prefix: str
    last_four: str
    key_hash: str


def hash_key(secret: str) -> str:
    """SHA-256 of the whole key, hex. Keys are random, so no salt or slow hash is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key(access: Access) -> NewKey:
    secret = PREFIXES[access] + secrets.token_urlsafe(32)
    return NewKey(
        secret=secret,
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        last_four=secret[-4:],
        key_hash=hash_key(secret),
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# A whole key in stored text: a prefix, then the rest of a generated key (43 characters of
# URL-safe base64; at least 20 here), not inside a longer token.
_KEY_IN_TEXT = re.compile(rb"(?<![A-Za-z0-9_-])(wp[tpa]_)[A-Za-z0-9_-]{16,}([A-Za-z0-9_-]{4})")


def hide_keys(payload: bytes) -> bytes:
    """``payload`` with every whole key in it cut to its prefix and last four characters, as
    the admin UI shows keys (``wpt_…x3Kq``): for what is kept of a request to be read later
    by anyone who may read rejected activities (collectors' clients send their key in the
    body: PostHog's ``api_key``, Segment's ``writeKey``, Snowplow's ``aid``)."""
    if b"wp" not in payload:
        return payload
    return _KEY_IN_TEXT.sub(lambda key: key[1] + "…".encode() + key[2], payload)
