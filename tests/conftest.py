"""Shared fixtures: every storage test runs on SQLite and, when reachable, on PostgreSQL.

With ``WAYPOST_REQUIRE_SERVICES=1`` (as CI sets) a PostgreSQL or Redis that cannot be reached
fails the run instead of skipping. Each run on PostgreSQL uses a database of its own, dropped
at the end, so that runs never collide.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import msgspec
import psycopg
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType, ActivityTypeCreate
from waypost.services.channels import Channel, ChannelCreate
from waypost.services.keys import CreatedKey, KeyCreate
from waypost.services.users import User, UserCreate
from waypost.settings import Settings, load_settings
from waypost.store import Store, make_engine, migrate
from waypost.store.schema import activity_types, metadata

if TYPE_CHECKING:
    from tests.admin_support import FAST_HASHER, PASSWORD, UI, csrf_of, log_in
else:
    from admin_support import FAST_HASHER, PASSWORD, UI, csrf_of, log_in

REQUIRE_SERVICES = os.environ.get("WAYPOST_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get("WAYPOST_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WAYPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _service_missing(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and WAYPOST_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


# -- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this run's own, migrated to head; dropped at the end."""
    name = f"waypost_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _service_missing("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies, so every test starts from a fresh one."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_builtin_types(postgres_url: str) -> list[dict[str, Any]]:
    """The built-in activity types as migrated, put back before each test that changed them."""
    engine = make_engine(
        load_settings({"WAYPOST_DATABASE_URL": postgres_url}), poolclass=sa.NullPool
    )
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(sa.select(activity_types))]
    engine.dispose()
    return rows


# Every table emptied, children first, in one round trip (a statement each took twice as long).
DELETE_EVERYTHING = "; ".join(f"DELETE FROM {t.name}" for t in reversed(metadata.sorted_tables))


def _reset_postgres(url: str, builtin_types: list[dict[str, Any]]) -> None:
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}), poolclass=sa.NullPool)
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        driver.execute(DELETE_EVERYTHING)
        conn.execute(activity_types.insert(), builtin_types)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or this run's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "waypost.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _reset_postgres(url, request.getfixturevalue("postgres_builtin_types"))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without any table: a new SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"waypost_empty_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _service_missing("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings on the test database, with any setting overridden by keyword."""

    def make(**overrides: Any) -> Settings:
        return load_settings({"WAYPOST_DATABASE_URL": database_url}, **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    the_hub = Hub(settings, Store(make_engine(settings)))
    yield the_hub
    the_hub.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A store of its own on the test database (no hub around it)."""
    the_store = Store(make_engine(settings))
    yield the_store
    the_store.dispose()


@pytest.fixture
def client(settings: Settings, hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(settings, hub=hub)) as test_client:
        # On PostgreSQL the server listens for other nodes' changes, and reloads its caches once
        # it is listening (docs/operations.md, "Several nodes"): wait for that, so that a test
        # reads the caches it made.
        if hub.shared_changes is not None:
            assert hub.shared_changes.listening.wait(10), "the change listener did not start"
        yield test_client


# -- factories ---------------------------------------------------------------------------


@pytest.fixture
def make_key(hub: Hub) -> Callable[..., CreatedKey]:
    def make(access: str = "admin", channel: uuid.UUID | None = None, name: str = "") -> CreatedKey:
        return hub.keys.create(
            KeyCreate(access=access, channel=channel, name=name)  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def admin_headers(make_key: Callable[..., CreatedKey]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key('admin').key}"}


@pytest.fixture
def make_channel(hub: Hub) -> Callable[..., Channel]:
    counter = iter(range(1, 1_000_000))

    def make(**fields: Any) -> Channel:
        fields.setdefault("name", f"Channel {next(counter)}")
        fields.setdefault("kind", "headless")
        return hub.channels.create(ChannelCreate(**fields))

    return make


@pytest.fixture
def make_type(hub: Hub) -> Callable[..., ActivityType]:
    """Activity types through the service; ``fields`` as the API takes them (dicts)."""
    counter = iter(range(1, 1_000_000))

    def make(**fields: Any) -> ActivityType:
        fields.setdefault("name", f"Activity type {next(counter)}")
        return hub.types.create(msgspec.convert(fields, ActivityTypeCreate))

    return make


ErrorCheck = Callable[..., dict[str, str]]


def check_error(
    response: httpx2.Response, status: int, code: str, field: str | None = None
) -> dict[str, str]:
    """The answer has this status and code, in the one error shape; returns its ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert {"code", "message"} <= set(error) <= {"code", "message", "field"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    if field is not None:
        assert error.get("field") == field, error
    elif "field" in error:
        assert isinstance(error["field"], str)
        assert error["field"]
    return error


@pytest.fixture
def expect_error() -> ErrorCheck:
    """:func:`check_error`: ``expect_error(response, 400, "missing_field", "name")``."""
    return check_error


@pytest.fixture
def redis_url() -> str:
    """The local Redis; fails the run under WAYPOST_REQUIRE_SERVICES=1 when unreachable."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _service_missing("Redis", exc)
    return REDIS_URL


# -- the admin UI --------------------------------------------------------------------------


@pytest.fixture
def make_user(hub: Hub) -> Callable[..., User]:
    """Users through the service, with a cheap password hash: ``make_user("marketer")``."""
    hub.users.hasher = FAST_HASHER
    counter = iter(range(1, 1_000_000))

    def make(role: str = "admin", email: str | None = None, password: str = PASSWORD) -> User:
        email = email or f"{role}{next(counter)}@example.com"
        return hub.users.create(
            UserCreate(email=email, role=role, password=password)  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def make_ui(client: TestClient, make_user: Callable[..., User]) -> Callable[..., UI]:
    """A logged-in user of the admin UI with cookies of its own: ``make_ui("marketer")``."""

    def make(role: str = "admin") -> UI:
        user = make_user(role)
        own = TestClient(client.app)
        answer = log_in(own, user.email)
        assert answer.status_code == 303, answer.text
        return UI(own, user, csrf_of(own.get("/admin/types").text))

    return make


@pytest.fixture
def admin_ui(make_ui: Callable[..., UI]) -> UI:
    return make_ui("admin")


@pytest.fixture
def marketer_ui(make_ui: Callable[..., UI]) -> UI:
    return make_ui("marketer")


# -- the tracking API ----------------------------------------------------------------------


@dataclass
class Tracker:
    """A channel with a tracking key, and calls of the tracking API made with that key."""

    client: TestClient
    channel: Channel
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_contact(self, prefix: str = "/tracking") -> str:
        answer = self.client.post(f"{prefix}/contacts", headers=self.headers)
        assert answer.status_code == 200, answer.text
        contact = answer.json()["contact"]
        assert isinstance(contact, str)
        return contact

    def post(
        self,
        activities: object,
        contact: str | None = None,
        *,
        prefix: str = "/tracking",
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        """POST {prefix}/activities with this channel, the contact (a new one if not given)."""
        body = {
            "channel": str(self.channel.id),
            "contact": contact or self.new_contact(),
            "activities": activities,
        }
        headers = self.headers if headers is None else headers
        return self.client.post(f"{prefix}/activities", json=body, headers=headers)

    def log(
        self, activities: list[Any], contact: str | None = None, prefix: str = "/tracking"
    ) -> list[dict[str, Any]]:
        """Post and return the results, checking the 207 and one result per activity."""
        answer = self.post(activities, contact, prefix=prefix)
        assert answer.status_code == 207, answer.text
        results = answer.json()["results"]
        assert isinstance(results, list)
        assert len(results) == len(activities), results
        return results


@pytest.fixture
def make_tracker(
    client: TestClient,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Callable[..., Tracker]:
    """A new channel (headless unless told) with a tracking key: ``make_tracker(**channel)``."""

    def make(**channel_fields: Any) -> Tracker:
        channel = make_channel(**channel_fields)
        return Tracker(client, channel, make_key("tracking", channel.id).key)

    return make


@pytest.fixture
def tracker(make_tracker: Callable[..., Tracker]) -> Tracker:
    return make_tracker()
