"""Users of the admin UI: an email to log in with, a role, an Argon2 password hash."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Literal

import msgspec
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from waypost.error_words import quoted
from waypost.errors import ApiError, conflict, invalid, not_found
from waypost.ids import new_id, utcnow
from waypost.store import Store
from waypost.store.schema import user_sessions, users

Role = Literal["admin", "marketer"]
ROLES: tuple[Role, ...] = ("admin", "marketer")
MIN_PASSWORD = 10
MAX_PASSWORD = 1000
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Password = Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD)]

# Deliberately loose: one "@" with something on both sides and no spaces. ``admin@localhost``
# is a fine login on a private install.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\Z")


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new user."""

    email: Email
    role: Role
    password: Password


class User(msgspec.Struct):
    """A user as shown: never the password hash."""

    id: uuid.UUID
    email: str
    role: Role
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    last_login_at: dt.datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def row_to_user(row: sa.Row[tuple[object, ...]]) -> User:
    """A :class:`User` from a row holding the users table's columns."""
    m = row._mapping
    return User(
        id=m["id"],
        email=m["email"],
        role=m["role"],
        disabled=m["disabled"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        last_login_at=m["last_login_at"],
    )


USER_COLUMNS = [c for c in users.c if c.name != "password_hash"]


def normalise_email(email: str) -> str:
    """The login form of an email: trimmed and lower-cased, so case never makes two users."""
    return email.strip().lower()


def check_password(password: str) -> None:
    """Passwords are at least ten characters; nothing else is imposed (NIST SP 800-63B)."""
    if len(password) < MIN_PASSWORD:
        raise invalid(f"A password has at least {MIN_PASSWORD} characters.", "password")
    if len(password) > MAX_PASSWORD:
        raise invalid(f"A password has at most {MAX_PASSWORD} characters.", "password")


class UserService:
    """Users on the store. ``hasher`` is argon2-cffi's, with its recommended parameters."""

    def __init__(self, store: Store, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        # Verified when the email is unknown, so that answering takes as long either way.
        self._dummy_hash: str | None = None

    def create(self, body: UserCreate) -> User:
        email = normalise_email(body.email)
        if not EMAIL.match(email):
            raise invalid(
                f"{quoted(body.email)} is not an email address; give one such as jane@example.com.",
                "email",
            )
        check_password(body.password)
        password_hash = self.hasher.hash(body.password)
        now = utcnow()
        user_id = new_id()
        try:
            with self.store.write() as conn:
                taken = conn.execute(sa.select(users.c.id).where(users.c.email == email)).first()
                if taken is not None:
                    raise conflict(f"A user with the email {email!r} exists already.", "email")
                conn.execute(
                    users.insert().values(
                        id=user_id,
                        email=email,
                        role=body.role,
                        password_hash=password_hash,
                        disabled=False,
                        created_at=now,
                        updated_at=now,
                        last_login_at=None,
                    )
                )
        except IntegrityError:
            raise conflict(f"A user with the email {email!r} exists already.", "email") from None
        return User(user_id, email, body.role, False, now, now, None)

    def list(self) -> list[User]:
        with self.store.read() as conn:
            rows = conn.execute(sa.select(*USER_COLUMNS).order_by(users.c.email)).all()
        return [row_to_user(r) for r in rows]

    def get(self, user_id: uuid.UUID) -> User:
        with self.store.read() as conn:
            row = conn.execute(sa.select(*USER_COLUMNS).where(users.c.id == user_id)).first()
        if row is None:
            raise not_found("user")
        return row_to_user(row)

    def get_by_email(self, email: str) -> User:
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(*USER_COLUMNS).where(users.c.email == normalise_email(email))
            ).first()
        if row is None:
            raise ApiError(
                404, "not_found", "No user has that email; check it against `waypost users list`."
            )
        return row_to_user(row)

    def has_users(self) -> bool:
        with self.store.read() as conn:
            return conn.execute(sa.select(users.c.id).limit(1)).first() is not None

    def authenticate(self, email: str, password: str) -> User | None:
        """The enabled user with this email and password, else None (whichever is wrong)."""
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(users).where(users.c.email == normalise_email(email))
            ).first()
        if row is None:
            self._verify(self._dummy(), password)
            return None
        stored: str = row.password_hash
        if not self._verify(stored, password) or row.disabled:
            return None
        values: dict[str, object] = {"last_login_at": utcnow()}
        if self.hasher.check_needs_rehash(stored):
            values["password_hash"] = self.hasher.hash(password)
        with self.store.write() as conn:
            conn.execute(users.update().where(users.c.id == row.id).values(**values))
        return msgspec.structs.replace(row_to_user(row), last_login_at=values["last_login_at"])

    def set_password(self, user_id: uuid.UUID, password: str) -> User:
        """A new password; the user's sessions end, so every device logs in again."""
        check_password(password)
        return self._change(user_id, password_hash=self.hasher.hash(password))

    def change_password(
        self, user_id: uuid.UUID, current: str, new: str, keep_session: str
    ) -> User:
        """A user's own change: the current password first. The user's other sessions end;
        the one making the change (its token hash ``keep_session``) goes on."""
        with self.store.read() as conn:
            stored = conn.execute(
                sa.select(users.c.password_hash).where(users.c.id == user_id)
            ).scalar_one_or_none()
        if stored is None:
            raise not_found("user")
        if not self._verify(stored, current):
            raise invalid("That is not your current password; type it again.", "current_password")
        check_password(new)
        with self.store.write() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(password_hash=self.hasher.hash(new), updated_at=utcnow())
            )
            conn.execute(
                user_sessions.delete()
                .where(user_sessions.c.user_id == user_id)
                .where(user_sessions.c.token_hash != keep_session)
            )
            row = conn.execute(sa.select(*USER_COLUMNS).where(users.c.id == user_id)).one()
        return row_to_user(row)

    def set_disabled(self, user_id: uuid.UUID, disabled: bool) -> User:
        """Disable (ending the user's sessions) or enable a user."""
        return self._change(user_id, disabled=disabled)

    def set_role(self, user_id: uuid.UUID, role: Role) -> User:
        return self._change(user_id, role=role)

    def _change(self, user_id: uuid.UUID, **values: object) -> User:
        with self.store.write() as conn:
            done = conn.execute(
                users.update().where(users.c.id == user_id).values(updated_at=utcnow(), **values)
            )
            if done.rowcount == 0:
                raise not_found("user")
            if values.get("disabled") or "password_hash" in values:
                conn.execute(user_sessions.delete().where(user_sessions.c.user_id == user_id))
            row = conn.execute(sa.select(*USER_COLUMNS).where(users.c.id == user_id)).one()
        return row_to_user(row)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not a password anyone has")
        return self._dummy_hash
