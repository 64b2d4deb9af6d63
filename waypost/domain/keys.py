"""API key material: generation, the readable prefix, and the hash that is all we store."""

from __future__ import annotations

import hashlib
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
