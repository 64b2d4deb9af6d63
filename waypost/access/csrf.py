"""CSRF protection: a synchronizer token per session, checked on every state-changing request.

Each session has a random CSRF token, stored with it. Every form of the UI carries it in a
hidden field, and scripts send it in the ``X-CSRF-Token`` header; a POST, or a cookie-
authenticated API call that changes something, without the session's token is refused. The
login form has no session yet: it uses a double-submit token, a random value both in a cookie
and in the form, which another site can neither read nor set.
"""

from __future__ import annotations

import hmac
import secrets

FIELD = "csrf_token"
HEADER = "x-csrf-token"
LOGIN_COOKIE = "waypost_login"


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Compare in constant time; an absent token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def new_login_token() -> str:
    return secrets.token_urlsafe(32)
