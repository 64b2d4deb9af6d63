"""Logged-in users: the session cookie, its flags, and sessions on the admin API.

The cookie holds a random token; the store keeps only its SHA-256 (see
:mod:`waypost.services.sessions`). It is ``HttpOnly`` (no script reads it), ``SameSite=Lax``
(other sites' forms and scripts do not send it) and ``Secure`` over HTTPS.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from waypost.access import csrf
from waypost.access.roles import TAG_AREAS, can
from waypost.domain.keys import bearer_token, hash_key
from waypost.errors import ApiError
from waypost.ratelimit import Decision, Limit, retry_after
from waypost.services.keys import Principal, admin_principal
from waypost.services.sessions import Session
from waypost.settings import Settings

if TYPE_CHECKING:
    from waypost.hub import Hub
    from waypost.pipeline.catalog import Snapshot

SESSION_COOKIE = "waypost_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Failed logins allowed in any 15 minutes: per email from one client address, and per address
# whatever the email. Only failures count and both are keyed by address, so nobody on another
# address can lock a user out by guessing their password.
LOGIN_WINDOW = 15 * 60
FAILURES_PER_EMAIL_AND_ADDRESS = 10
FAILURES_PER_ADDRESS = 50


def secure_cookies(settings: Settings, request: Request) -> bool:
    """Whether cookies get the ``Secure`` flag (see ``WAYPOST_COOKIE_SECURE``)."""
    if settings.cookie_secure != "auto":
        return settings.cookie_secure == "always"
    public = settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def set_session_cookie(
    response: Response, settings: Settings, request: Request, token: str
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings, request),
    )


def clear_session_cookie(response: Response, settings: Settings, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings, request),
    )


def current_session(hub: Hub, request: Request) -> Session | None:
    """The live session of the request's cookie, if any (runs a query: call in a thread)."""
    return hub.sessions.lookup(request.cookies.get(SESSION_COOKIE))


@dataclass(frozen=True)
class LoginAttempt:
    """A login attempt counted as a failure until :func:`login_succeeded` takes it back.
    ``wait``: 0 if it may go on, else the seconds to wait before the next attempt."""

    wait: int
    decisions: list[Decision]


async def login_allowed(hub: Hub, request: Request, email: str) -> LoginAttempt:
    """Count a login attempt as a failure, before the password is checked: concurrent guesses
    are counted as surely as sequential ones."""
    address = hub.client_key(request.scope)
    # A hash: the email stays out of the limiter's keys (Redis keys are visible to its admins).
    who = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    decisions = await hub.rate_limiter.hit(
        [
            Limit(f"login:failed:{address}:{who}", FAILURES_PER_EMAIL_AND_ADDRESS, LOGIN_WINDOW),
            Limit(f"login:failed:{address}", FAILURES_PER_ADDRESS, LOGIN_WINDOW),
        ]
    )
    return LoginAttempt(retry_after(decisions), decisions)


async def login_succeeded(hub: Hub, attempt: LoginAttempt) -> None:
    """A successful login is no failure: take its attempt back."""
    await hub.rate_limiter.forget(attempt.decisions)


def bearer_key(snapshot: Snapshot, authorization: str | None) -> Principal | None:
    """The principal of an enabled key the cached key table knows; None: ask the database
    (which also gives the exact answer for an unknown or disabled key)."""
    token = bearer_token(authorization)
    if token is None:
        return None
    info = snapshot.keys.get(hash_key(token))
    if info is None or not info.enabled:
        return None
    return Principal(info.id, info.access, info.channel_id)


def _admin_key(hub: Hub, authorization: str | None) -> Principal:
    """On a worker thread, with the cached key table stale: reload it (so that the requests of
    the next seconds need no thread), and answer from it, or from the database for a key it
    does not know."""
    known = bearer_key(hub.catalog.get(), authorization)
    if known is None:
        return hub.keys.authenticate_admin(authorization)
    principal = admin_principal(known)
    hub.keys.usage.note(principal.key_id)
    return principal


async def api_principal(hub: Hub, request: Request, tag: str) -> Principal | Session:
    """Authenticate an admin API request: a bearer admin key, or else a UI session cookie.

    A bearer key wins when both are sent. Under a session the user's role decides (403
    otherwise), and a request that changes something must carry the session's CSRF token in
    the ``X-CSRF-Token`` header, since a browser sends the cookie whoever made the request.
    Returns the key's principal, or the session.
    """
    authorization = request.headers.get("authorization")
    token = request.cookies.get(SESSION_COOKIE)
    if authorization is not None or not token:
        # The cached key table answers without a thread or a query while it is fresh (as for
        # the tracking API); a key it does not know yet is looked up in the database.
        snapshot = hub.catalog.fresh()
        if snapshot is None:
            return await run_in_threadpool(_admin_key, hub, authorization)
        known = bearer_key(snapshot, authorization)
        if known is not None:
            principal = admin_principal(known)
            hub.keys.usage.note(principal.key_id)
            return principal
        return await run_in_threadpool(hub.keys.authenticate_admin, authorization)
    session = await run_in_threadpool(hub.sessions.lookup, token)
    if session is None:
        raise ApiError(
            401,
            "unauthorized",
            "Your session has ended: log in again at /admin, or send "
            "'Authorization: Bearer <key>' with an admin key.",
        )
    write = request.method not in SAFE_METHODS
    role = session.user.role
    if not can(role, TAG_AREAS.get(tag), write):
        what = "change" if write else "read"
        raise ApiError(403, "forbidden", f"Users with the role {role} cannot {what} {tag.lower()}.")
    if write and not csrf.tokens_match(session.csrf_token, request.headers.get(csrf.HEADER)):
        raise ApiError(
            403,
            "forbidden",
            "A request made with a session cookie that changes something must send the "
            "session's CSRF token in an 'X-CSRF-Token' header (the admin pages hold it in "
            '<meta name="csrf-token">).',
        )
    return session
