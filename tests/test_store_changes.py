"""The change feed: what services announce in a write transaction is published after its commit,
once, and never for a transaction that rolled back."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa

from waypost.settings import Settings
from waypost.store import Change, LocalChangeFeed, StorageUnavailable, Store, announce, make_engine
from waypost.store.schema import channels


def record(store: Store) -> list[Change]:
    seen: list[Change] = []
    store.changes.subscribe(seen.append)
    return seen


def insert_channel(conn: sa.Connection, channel_id: uuid.UUID) -> None:
    now = sa.func.now()
    conn.execute(
        channels.insert().values(
            id=channel_id,
            name=f"Channel {channel_id}",
            kind="headless",
            allowed_origins=[],
            default_language="en",
            enforce_consent=False,
            identity_secret="s",
            created_at=now,
            updated_at=now,
        )
    )


def test_the_local_feed_calls_every_subscriber_in_order() -> None:
    feed = LocalChangeFeed()
    calls: list[tuple[str, Change]] = []
    feed.subscribe(lambda change: calls.append(("first", change)))
    feed.subscribe(lambda change: calls.append(("second", change)))
    key = uuid.uuid4()
    feed.publish("key", key)
    assert calls == [("first", Change("key", key)), ("second", Change("key", key))]


def test_a_failing_subscriber_neither_raises_nor_stops_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = LocalChangeFeed()
    seen: list[Change] = []

    def broken(change: Change) -> None:
        raise ValueError("broken")

    feed.subscribe(broken)
    feed.subscribe(seen.append)
    group = uuid.uuid4()
    with caplog.at_level(logging.ERROR, logger="waypost.changes"):
        feed.publish("group", group)
    assert seen == [Change("group", group)]
    assert "a subscriber failed on group" in caplog.text


def test_a_committed_change_is_published_after_the_commit(store: Store) -> None:
    channel_id = uuid.uuid4()
    found: list[object] = []

    def read_back(change: Change) -> None:
        # Published after the commit: another connection sees the change.
        with store.read() as conn:
            found.append(
                conn.execute(sa.select(channels.c.id).where(channels.c.id == change.id)).scalar()
            )

    store.changes.subscribe(read_back)
    seen = record(store)
    with store.write() as conn:
        insert_channel(conn, channel_id)
        announce(conn, "channel", channel_id)
        assert seen == []  # not before the commit
    assert seen == [Change("channel", channel_id)]
    assert found == [channel_id]


def test_a_change_noted_twice_is_published_once_in_the_order_first_noted(store: Store) -> None:
    seen = record(store)
    first, second = uuid.uuid4(), uuid.uuid4()
    with store.write() as conn:
        announce(conn, "group", first)
        announce(conn, "consent", second)
        announce(conn, "group", first)
    assert seen == [Change("group", first), Change("consent", second)]


def test_a_rolled_back_change_publishes_nothing(store: Store) -> None:
    seen = record(store)

    def change_then_fail() -> None:
        with store.write() as conn:
            insert_channel(conn, uuid.uuid4())
            announce(conn, "channel", uuid.uuid4())
            raise RuntimeError("before the commit")

    with pytest.raises(RuntimeError):
        change_then_fail()
    # Nor does the next transaction on the same pooled connection inherit the note.
    with store.write() as conn:
        conn.execute(sa.text("select 1"))
    assert seen == []


def test_a_change_whose_statement_fails_publishes_nothing(store: Store) -> None:
    seen = record(store)

    def change_then_break_a_constraint() -> None:
        with store.write() as conn:
            announce(conn, "channel", uuid.uuid4())
            conn.execute(sa.text("insert into channels (id) values (null)"))

    with pytest.raises(sa.exc.IntegrityError):
        change_then_break_a_constraint()
    assert seen == []


def test_a_change_in_a_write_that_lost_its_connection_publishes_nothing(store: Store) -> None:
    seen = record(store)

    def lose_the_connection() -> None:
        with store.write() as conn:
            announce(conn, "key", uuid.uuid4())
            dbapi_connection = conn.connection.dbapi_connection
            assert dbapi_connection is not None
            dbapi_connection.close()
            conn.execute(sa.text("select 1"))

    with pytest.raises(StorageUnavailable):
        lose_the_connection()
    assert seen == []


def test_announce_outside_a_write_of_the_store_is_a_mistake(store: Store) -> None:
    with store.read() as conn, pytest.raises(RuntimeError, match="write transaction"):
        announce(conn, "key", uuid.uuid4())


def test_the_store_publishes_on_the_feed_it_is_given(settings: Settings) -> None:
    feed = LocalChangeFeed()
    seen: list[Change] = []
    feed.subscribe(seen.append)
    store = Store(make_engine(settings), changes=feed)
    try:
        key = uuid.uuid4()
        with store.write() as conn:
            announce(conn, "key", key)
        assert seen == [Change("key", key)]
    finally:
        store.dispose()
