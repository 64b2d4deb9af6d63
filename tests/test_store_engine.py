"""The engine for SQLite or PostgreSQL, and the Store seam's answer to outages."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from waypost.settings import Settings, load_settings
from waypost.store import StorageUnavailable, Store, make_engine
from waypost.store.engine import Touched, normalise_url, touch
from waypost.store.schema import channels


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@db/waypost", "postgresql+psycopg://u@db/waypost"),
        ("postgresql://u@db/waypost", "postgresql+psycopg://u@db/waypost"),
        ("postgresql+psycopg://u@db/waypost", "postgresql+psycopg://u@db/waypost"),
        ("sqlite:///./waypost.db", "sqlite:///./waypost.db"),
    ],
)
def test_postgresql_urls_go_through_psycopg_3(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_postgres_scheme_gives_a_psycopg_engine() -> None:
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": "postgres://u@db/waypost"}))
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@db/waypost", "oracle://db"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))


def test_a_database_that_cannot_be_opened_is_storage_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "waypost.db"
    # Settings as such: start-up refuses a directory that does not exist (this one went away).
    store = Store(make_engine(Settings(database_url=f"sqlite:///{missing}")))
    try:
        with pytest.raises(StorageUnavailable), store.read() as conn:
            conn.execute(sa.text("select 1"))
        with pytest.raises(StorageUnavailable), store.write() as conn:
            conn.execute(sa.text("select 1"))
    finally:
        store.dispose()


def test_postgresql_down_is_storage_unavailable() -> None:
    settings = load_settings({"WAYPOST_DATABASE_URL": "postgresql://127.0.0.1:1/waypost"})
    store = Store(make_engine(settings, poolclass=sa.NullPool))
    with pytest.raises(StorageUnavailable), store.read() as conn:
        conn.execute(sa.text("select 1"))


def test_write_commits_and_rolls_back(settings: Settings) -> None:
    store = Store(make_engine(settings))
    try:
        kept, dropped = uuid.uuid4(), uuid.uuid4()
        row = {
            "kind": "headless",
            "allowed_origins": [],
            "default_language": "en",
            "enforce_consent": False,
            "identity_secret": "s",
        }
        now = sa.func.now()
        with store.write() as conn:
            conn.execute(
                channels.insert().values(
                    id=kept, name="kept", created_at=now, updated_at=now, **row
                )
            )

        def insert_then_fail() -> None:
            with store.write() as conn:
                conn.execute(
                    channels.insert().values(
                        id=dropped, name="dropped", created_at=now, updated_at=now, **row
                    )
                )
                raise RuntimeError("before the commit")

        with pytest.raises(RuntimeError):
            insert_then_fail()
        with store.read() as conn:
            names = set(conn.execute(sa.select(channels.c.name)).scalars())
        assert names == {"kept"}
    finally:
        store.dispose()


def test_a_constraint_violation_is_not_an_outage(settings: Settings) -> None:
    store = Store(make_engine(settings))
    try:
        with pytest.raises(sa.exc.IntegrityError), store.write() as conn:
            conn.execute(sa.text("insert into channels (id) values (null)"))
    finally:
        store.dispose()


def test_a_connection_lost_in_a_write_is_an_outage_and_its_notes_are_dropped(
    settings: Settings,
) -> None:
    store = Store(make_engine(settings))
    committed: list[Touched] = []
    store.on_commit = committed.append

    def lose_the_connection() -> None:
        with store.write() as conn:
            touch(conn, [uuid.uuid4()], "lost")
            dbapi_connection = conn.connection.dbapi_connection
            assert dbapi_connection is not None
            dbapi_connection.close()
            conn.execute(sa.text("select 1"))

    try:
        with pytest.raises(StorageUnavailable):
            lose_the_connection()
        contact = uuid.uuid4()
        with store.write() as conn:
            touch(conn, [contact], "kept")
        assert committed == [[(frozenset({contact}), "kept")]]
    finally:
        store.dispose()


def test_a_new_sqlite_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    # The database holds channels' identity secrets: no other user of the machine may read it,
    # whatever the umask.
    path = tmp_path / "private.db"
    store = Store(make_engine(load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})))
    try:
        with store.write() as conn:
            conn.execute(sa.text("create table t (x integer)"))
            conn.execute(sa.text("insert into t values (1)"))
        modes = {
            name: (tmp_path / name).stat().st_mode & 0o777
            for name in ("private.db", "private.db-wal", "private.db-shm")
        }
    finally:
        store.dispose()
    assert modes == dict.fromkeys(modes, 0o600)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_write_that_tries_often_gets_the_lock_once_another_lets_it_go(
    settings: Settings,
) -> None:
    store = Store(make_engine(settings))
    other = Store(make_engine(settings))
    holding, released = threading.Event(), threading.Event()

    def hold() -> None:
        with other.write() as conn:
            conn.execute(sa.select(1))
            holding.set()
            time.sleep(0.3)
            released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        holding.wait(5)
        started = time.monotonic()
        with store.write(often=True) as conn:
            assert released.is_set()
            got = time.monotonic() - started
            conn.execute(sa.select(1))
        # Tried every millisecond: the lock was taken soon after it was let go, and the
        # connection waits for it as usual again afterwards.
        assert got < 2.0
        with store.read() as conn:
            timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert timeout == 30000
    finally:
        holder.join()
        store.dispose()
        other.dispose()


def test_a_write_that_tries_often_writes_as_any_other(settings: Settings) -> None:
    store = Store(make_engine(settings))
    try:
        with store.write(often=True) as conn:
            conn.execute(
                sa.insert(channels).values(
                    id=uuid.uuid4(),
                    name="often",
                    kind="headless",
                    allowed_origins=[],
                    default_language="en",
                    enforce_consent=False,
                    identity_secret="x",
                    created_at=sa.func.now(),
                    updated_at=sa.func.now(),
                )
            )
        with store.read() as conn:
            assert conn.execute(sa.select(channels.c.name)).scalars().all() == ["often"]
    finally:
        store.dispose()


def _raise_on_postgresql(conn: sa.Connection, sqlstate: str) -> None:
    conn.exec_driver_sql(
        f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$"
    )


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_transaction_postgresql_rolled_back_for_a_conflict_runs_again(
    settings: Settings, sqlstate: str
) -> None:
    """A deadlock or a serialization failure rolls the attempt back and runs the work again;
    it fails only when every attempt did."""
    if settings.is_sqlite:
        pytest.skip("SQLite has one writer at a time: no deadlock between writers")
    store = Store(make_engine(settings))
    attempts: list[int] = []

    def work(conn: sa.Connection) -> str:
        attempts.append(1)
        conn.execute(channels.delete())
        if len(attempts) < 3:
            _raise_on_postgresql(conn, sqlstate)
        return "done"

    try:
        assert store.write_retrying(work) == "done"
        assert len(attempts) == 3
        attempts.clear()
        with pytest.raises(StorageUnavailable):
            store.write_retrying(work, attempts=2)
        assert len(attempts) == 2
    finally:
        store.dispose()


CHANNEL_DEFAULTS = {
    "allowed_origins": [],
    "default_language": "en",
    "enforce_consent": False,
    "identity_secret": "s",
    "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
}


def test_a_unique_conflict_runs_again_only_when_asked(settings: Settings) -> None:
    """With ``unique``, an insert that a concurrent transaction made first (an IntegrityError)
    rolls the attempt back and runs the work again, which then finds that row; without, it is
    raised at once."""
    store = Store(make_engine(settings))
    attempts: list[int] = []
    channel: dict[str, object] = {"id": uuid.uuid4(), "name": "Twice", "kind": "headless"}

    def work(conn: sa.Connection) -> str:
        attempts.append(1)
        found = conn.execute(sa.select(channels.c.id).where(channels.c.id == channel["id"]))
        if found.first() is None:
            conn.execute(channels.insert().values(**channel, **CHANNEL_DEFAULTS))
            if len(attempts) == 1:
                # Another transaction made the row first: this one's insert conflicts.
                conn.execute(channels.insert().values(**channel, **CHANNEL_DEFAULTS))
        return "done"

    try:
        assert store.write_retrying(work, unique=True) == "done"
        assert len(attempts) == 2
        attempts.clear()
        channel.update(id=uuid.uuid4(), name="Once")
        with pytest.raises(sa.exc.IntegrityError):
            store.write_retrying(work)
        assert len(attempts) == 1
    finally:
        store.dispose()


def test_other_failures_are_not_run_again(settings: Settings) -> None:
    store = Store(make_engine(settings))
    attempts: list[int] = []

    def work(conn: sa.Connection) -> None:
        attempts.append(1)
        if settings.is_sqlite:
            conn.exec_driver_sql("SELECT * FROM no_such_table")
        else:
            _raise_on_postgresql(conn, "57P01")  # the server is shutting down

    try:
        with pytest.raises(StorageUnavailable):
            store.write_retrying(work)
        assert len(attempts) == 1
    finally:
        store.dispose()
