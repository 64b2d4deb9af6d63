"""The Standard Webhooks signature of a webhook message (docs/playbooks.md, "Delivery").

A message is signed per attempt over ``{webhook-id}.{webhook-timestamp}.{body}`` with
HMAC-SHA256, keyed with the base64-decoded part of the endpoint's secret after ``whsec_``.
During a rotation the previous secret signs too, and the receiver accepts either signature,
so ``webhook-signature`` holds one ``v1,<base64>`` per secret, space separated. Any library
that verifies Standard Webhooks (https://www.standardwebhooks.com/) verifies these.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import uuid
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix every secret starts with, no secret
CONTENT_TYPE = "application/json"


class BadSecret(ValueError):
    """The text is not a ``whsec_`` secret holding base64 key bytes."""


def message_id(message: uuid.UUID) -> str:
    """The ``webhook-id`` of a message: the same on every attempt, so receivers can dedupe."""
    return f"msg_{message.hex}"


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret holds; raise BadSecret when it holds none."""
    if not secret.startswith(SECRET_PREFIX):
        raise BadSecret(f"a webhook secret starts with {SECRET_PREFIX}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise BadSecret("a webhook secret holds at least one byte of key")
    return key


@functools.lru_cache(maxsize=1024)
def _cached_key(secret: str) -> bytes:
    # Decoding the secret cost as much as the HMAC itself; an endpoint signs with the same
    # one or two secrets for every message. Bad secrets raise, and are not cached.
    return secret_key(secret)


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """One signature, ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.digest(_cached_key(secret), signed, hashlib.sha256)
    return f"v1,{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], webhook_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: one signature per secret, space separated."""
    if not secrets:
        raise BadSecret("a message is signed with at least one secret")
    return " ".join(sign(secret, webhook_id, timestamp, body) for secret in secrets)


def signed_headers(
    secrets: Sequence[str], webhook_id: str, timestamp: int, body: str
) -> dict[str, str]:
    """The headers of one attempt: content type, id, timestamp and signature."""
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, webhook_id, timestamp, body),
    }
