"""First run: an empty database gets two channels and the keys to start with."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.channels import Channel, ChannelCreate
from waypost.services.keys import CreatedKey, KeyCreate
from waypost.services.users import UserCreate
from waypost.store.schema import api_keys, channels


@dataclass(frozen=True)
class FirstRun:
    """What a first run created. The keys' secrets exist only here."""

    website: Channel
    headless: Channel
    admin_key: CreatedKey
    tracking_key: CreatedKey
    publishable_key: CreatedKey

    def describe(self, base_url: str) -> list[str]:
        return [
            f"Admin key (admin API, /api):         {self.admin_key.key}",
            f"Tracking key (headless channel):     {self.tracking_key.key}",
            f"Publishable key (website channel):   {self.publishable_key.key}",
            f"Headless channel: {self.headless.id}",
            f"Website channel:  {self.website.id}",
        ]


def bootstrap(hub: Hub) -> FirstRun | None:
    """On a database with no channels and no keys, create the starting set; else do nothing."""
    with hub.store.write() as conn:
        _serialise(conn)
        for table in (channels, api_keys):
            if conn.execute(sa.select(table.c.id).limit(1)).first() is not None:
                return None
        website = hub.channels.create_in(
            conn,
            ChannelCreate(
                name="Website",
                kind="website",
                allowed_origins=[_origin(hub.settings.base_url)],
            ),
        )
        headless = hub.channels.create_in(conn, ChannelCreate(name="Headless app", kind="headless"))
        admin = hub.keys.create_in(conn, KeyCreate(access="admin", name="First admin key"))
        tracking = hub.keys.create_in(
            conn, KeyCreate(access="tracking", channel=headless.id, name="First tracking key")
        )
        publishable = hub.keys.create_in(
            conn, KeyCreate(access="publishable", channel=website.id, name="Website key")
        )
    return FirstRun(website, headless, admin, tracking, publishable)


FIRST_ADMIN = "admin@localhost"


@dataclass(frozen=True)
class FirstAdmin:
    """The first user of the admin UI; the password exists only here."""

    email: str
    password: str

    def describe(self, base_url: str) -> list[str]:
        return [
            f"Admin UI:  {base_url}/admin",
            f"Login:     {self.email}",
            f"Password:  {self.password}",
        ]


def bootstrap_admin(hub: Hub) -> FirstAdmin | None:
    """On a database without users, create an admin with a random password; else nothing."""
    if hub.users.has_users():
        return None
    password = secrets.token_urlsafe(12)
    try:
        hub.users.create(UserCreate(email=FIRST_ADMIN, role="admin", password=password))
    except ApiError as exc:
        if exc.status != 409:
            raise
        return None  # another node starting at the same time made it first
    return FirstAdmin(FIRST_ADMIN, password)


# Any constant: the PostgreSQL advisory lock that first runs of several nodes take in turn.
BOOTSTRAP_LOCK = 0x57415950


def _serialise(conn: sa.Connection) -> None:
    """On PostgreSQL, nodes starting at once check for an empty database one at a time (on
    SQLite the write transaction's lock does it)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(BOOTSTRAP_LOCK)))


def _origin(url: str) -> str:
    # WAYPOST_PUBLIC_URL may carry a path (https://example.com/waypost); an origin has none.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
