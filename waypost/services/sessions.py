"""Server-side sessions of the admin UI: a random token in a cookie, its SHA-256 in the store."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid

import msgspec
import sqlalchemy as sa

from waypost.ids import utcnow
from waypost.services.users import USER_COLUMNS, User, row_to_user
from waypost.store import Store
from waypost.store.schema import user_sessions, users

# A session's last-seen time (and so its expiry) moves at most this often, so that browsing
# does not write to the database on every request.
TOUCH_EVERY = dt.timedelta(minutes=1)


class Session(msgspec.Struct):
    """A live session: whose it is, its CSRF token, and until when it lasts without use."""

    token_hash: str
    user: User
    csrf_token: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A secret kept for the next page is sealed with the cookie's token, which the store never
# holds (only its hash): a copy of the database reveals nothing. HMAC-SHA256 in counter mode
# is the keystream, a second HMAC the tag.
_NONCE, _TAG = 16, 16


def _keystream(token: str, nonce: bytes, size: int) -> bytes:
    blocks = (
        hmac.digest(token.encode(), b"reveal" + nonce + n.to_bytes(4, "big"), "sha256")
        for n in range((size + 31) // 32)
    )
    return b"".join(blocks)[:size]


def seal(token: str, secret: str) -> str:
    nonce = secrets.token_bytes(_NONCE)
    plain = secret.encode()
    sealed = bytes(a ^ b for a, b in zip(plain, _keystream(token, nonce, len(plain)), strict=True))
    tag = hmac.digest(token.encode(), b"tag" + nonce + sealed, "sha256")[:_TAG]
    return base64.urlsafe_b64encode(nonce + sealed + tag).decode()


def unseal(token: str, text: str) -> str | None:
    raw = base64.urlsafe_b64decode(text.encode())
    nonce, sealed, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
    expected = hmac.digest(token.encode(), b"tag" + nonce + sealed, "sha256")[:_TAG]
    if not hmac.compare_digest(tag, expected):
        return None
    stream = _keystream(token, nonce, len(sealed))
    return bytes(a ^ b for a, b in zip(sealed, stream, strict=True)).decode()


class SessionService:
    """Sessions on the store; a session ends ``lifetime`` after its last use."""

    def __init__(self, store: Store, lifetime: dt.timedelta) -> None:
        self.store = store
        self.lifetime = lifetime

    def start(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: the token for the cookie (only here), and the session."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        session = Session(
            token_hash=hash_token(token),
            user=user,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.lifetime,
        )
        with self.store.write() as conn:
            # Logging in is rare enough to sweep away everyone's expired sessions.
            conn.execute(user_sessions.delete().where(user_sessions.c.expires_at < now))
            conn.execute(
                user_sessions.insert().values(
                    token_hash=session.token_hash,
                    user_id=user.id,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=session.expires_at,
                )
            )
        return token, session

    def lookup(self, token: str | None) -> Session | None:
        """The live session of a cookie's token: None if unknown, expired, or its user disabled."""
        if not token or len(token) > 200:
            return None
        token_hash = hash_token(token)
        now = utcnow()
        stmt = (
            sa.select(
                user_sessions.c.csrf_token,
                user_sessions.c.created_at.label("session_created_at"),
                user_sessions.c.last_seen_at,
                user_sessions.c.expires_at,
                *USER_COLUMNS,
            )
            .join(users, users.c.id == user_sessions.c.user_id)
            .where(user_sessions.c.token_hash == token_hash)
        )
        with self.store.read() as conn:
            row = conn.execute(stmt).first()
        if row is None or row.expires_at <= now or row.disabled:
            return None
        session = Session(
            token_hash=token_hash,
            user=row_to_user(row),
            csrf_token=row.csrf_token,
            created_at=row.session_created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
        )
        if now - session.last_seen_at >= TOUCH_EVERY:
            session.last_seen_at, session.expires_at = now, now + self.lifetime
            with self.store.write() as conn:
                conn.execute(
                    user_sessions.update()
                    .where(user_sessions.c.token_hash == token_hash)
                    .values(last_seen_at=now, expires_at=session.expires_at)
                )
        return session

    def end(self, token_hash: str) -> None:
        """Log out: the session is gone."""
        with self.store.write() as conn:
            conn.execute(user_sessions.delete().where(user_sessions.c.token_hash == token_hash))

    def end_all(self, user_id: uuid.UUID) -> int:
        """End every session of a user; how many there were."""
        with self.store.write() as conn:
            done = conn.execute(user_sessions.delete().where(user_sessions.c.user_id == user_id))
        return int(done.rowcount)

    def keep_secret(self, token: str, secret: str) -> None:
        """Keep ``secret`` for the session of ``token`` until :meth:`take_secret` reads it (a
        key just created, shown on the page its form redirects to, never in a URL)."""
        with self.store.write() as conn:
            conn.execute(
                user_sessions.update()
                .where(user_sessions.c.token_hash == hash_token(token))
                .values(reveal=seal(token, secret))
            )

    def take_secret(self, token: str | None) -> str | None:
        """The kept secret, once: the read clears it, so a reload shows it no more."""
        if not token:
            return None
        token_hash = hash_token(token)
        with self.store.write() as conn:
            sealed = conn.execute(
                sa.select(user_sessions.c.reveal).where(user_sessions.c.token_hash == token_hash)
            ).scalar_one_or_none()
            if sealed is None:
                return None
            # Cleared only if still there: two tabs reloading at once get it once between them.
            done = conn.execute(
                user_sessions.update()
                .where(user_sessions.c.token_hash == token_hash)
                .where(user_sessions.c.reveal == sealed)
                .values(reveal=None)
            )
        return unseal(token, sealed) if done.rowcount == 1 else None
