"""/healthz and /readyz (waypost/ops.py, waypost/services/readiness.py) on SQLite and
PostgreSQL, each readiness failure made to happen for real: a database that goes away and comes
back, a server that refuses or never answers, a schema behind, a stopped writer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from alembic.script import ScriptDirectory
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.settings import Settings, load_settings
from waypost.store import make_engine, migrate

if TYPE_CHECKING:
    from tests.conftest import POSTGRES_ADMIN_URL, ErrorCheck
    from tests.server_support import free_port
else:
    from conftest import POSTGRES_ADMIN_URL, ErrorCheck
    from server_support import free_port


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[Hub, TestClient]]:
    hub = Hub(settings)
    try:
        with TestClient(create_app(settings, hub=hub)) as client:
            yield hub, client
    finally:
        hub.close()


def ready(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready"}
    assert answer.headers["cache-control"] == "no-store"


def not_ready(client: TestClient, expect_error: ErrorCheck, check: str) -> str:
    """/readyz answers 503 not_ready naming ``check``; its message."""
    answer = client.get("/readyz")
    error = expect_error(answer, 503, "not_ready", check)
    assert answer.headers["retry-after"] == "1"
    # Liveness does not depend on the database: the process still answers.
    live = client.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    return error["message"]


def test_a_serving_node_is_live_and_ready_without_a_key(client: TestClient) -> None:
    live = client.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert live.headers["cache-control"] == "no-store"
    ready(client)
    assert client.post("/readyz").status_code == 405


def test_not_ready_while_the_database_is_gone_and_ready_once_it_is_back(
    database_url: str, settings: Settings, expect_error: ErrorCheck
) -> None:
    with serving(settings) as (_, client):
        ready(client)
        with _database_gone(database_url):
            message = not_ready(client, expect_error, "database")
            assert message == "The database cannot be reached."
        ready(client)


@contextmanager
def _database_gone(database_url: str) -> Iterator[None]:
    if database_url.startswith("sqlite"):
        # The volume went away: the file and its -wal and -shm are no longer where they were
        # (connections the pool already holds still reach them).
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        for file in files:
            file.rename(file.with_name("away-" + file.name))
        try:
            yield
        finally:
            for file in files:
                file.with_name("away-" + file.name).rename(file)
        return
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_not_ready_when_no_postgresql_server_answers(server: str, expect_error: ErrorCheck) -> None:
    # Nothing listens on the port, or something accepts connections and never answers (a
    # hung server, a black-holed network): either way not ready, and answered in time.
    listener = socket.socket()
    port = free_port()
    if server == "silent":
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
    settings = load_settings(
        {"WAYPOST_DATABASE_URL": f"postgresql+psycopg://waypost@127.0.0.1:{port}/waypost"}
    )
    hub = Hub(settings)
    try:
        with TestClient(create_app(settings, hub=hub)) as client:
            started = time.monotonic()
            not_ready(client, expect_error, "database")
            assert time.monotonic() - started < 6
            # The background threads that wait on the silent server get their answer (a
            # reset), so that they can stop.
            listener.close()
    finally:
        listener.close()
        hub.close()


def test_not_ready_while_the_schema_is_behind_and_ready_once_migrated(
    empty_database_url: str, expect_error: ErrorCheck
) -> None:
    settings = load_settings({"WAYPOST_DATABASE_URL": empty_database_url})
    engine = make_engine(settings)
    head = migrate.head_revision()
    assert head is not None
    scripts = ScriptDirectory.from_config(migrate.alembic_config(engine))
    previous = scripts.get_revision(head).down_revision
    assert isinstance(previous, str)
    migrate.upgrade(engine, previous)
    try:
        with serving(settings) as (_, client):
            message = not_ready(client, expect_error, "migrations")
            assert previous in message
            assert head in message
            assert "waypost migrate" in message
            migrate.upgrade(engine)
            ready(client)
    finally:
        engine.dispose()


def test_not_ready_while_the_writer_is_stopped(
    hub: Hub, client: TestClient, expect_error: ErrorCheck
) -> None:
    ready(client)
    hub.writer.stop()
    assert not_ready(client, expect_error, "writer") == "The writer is not running."
    hub.writer.start()
    ready(client)
