"""Changes shared between nodes: over PostgreSQL LISTEN/NOTIFY and over Redis pub/sub, a change
published by one feed reaches the subscribers of another within a second; on SQLite the local
feed is kept (docs/operations.md, "Several nodes")."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from waypost.settings import load_settings
from waypost.store import Change, LocalChangeFeed, make_engine
from waypost.store.shared_changes import (
    PostgresChannel,
    RedisChannel,
    SharedChangeFeed,
    make_change_feed,
)


class Heard:
    """A subscriber that keeps what it is told."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.event = threading.Event()

    def __call__(self, change: Change) -> None:
        self.changes.append(change)
        self.event.set()

    def wait_for(self, change: Change, timeout: float = 1.0) -> float:
        """Seconds until ``change`` was heard; fails after ``timeout``."""
        start = time.monotonic()
        while change not in self.changes:
            if time.monotonic() - start > timeout:
                pytest.fail(f"{change} not heard within {timeout} s: {self.changes}")
            time.sleep(0.002)
        return time.monotonic() - start


@pytest.fixture(params=["postgresql", "redis"])
def feeds(request: pytest.FixtureRequest) -> Iterator[tuple[SharedChangeFeed, SharedChangeFeed]]:
    """Two nodes' feeds on one channel, both listening."""
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": url}))
    made = []
    topic = f"test_{uuid.uuid4().hex}"
    for _ in range(2):
        if request.param == "redis":
            channel: PostgresChannel | RedisChannel = RedisChannel(
                request.getfixturevalue("redis_url"), f"test_{uuid.uuid4().hex}"
            )
        else:
            # A channel of the test's own: other tests' hubs announce on the database's.
            channel = PostgresChannel(engine, topic)
        made.append(SharedChangeFeed(channel, LocalChangeFeed()))
    # Both Redis channels must have the same name to hear each other.
    if request.param == "redis":
        assert isinstance(made[1].channel, RedisChannel)
        assert isinstance(made[0].channel, RedisChannel)
        made[1].channel.topic = made[0].channel.topic
    for feed in made:
        feed.start()
        assert feed.listening.wait(5)
    try:
        yield made[0], made[1]
    finally:
        for feed in made:
            feed.stop()
        engine.dispose()


def test_a_change_on_one_node_reaches_the_other_within_a_second(
    feeds: tuple[SharedChangeFeed, SharedChangeFeed],
) -> None:
    a, b = feeds
    heard_a, heard_b = Heard(), Heard()
    a.subscribe(heard_a)
    b.subscribe(heard_b)
    change = Change("key", uuid.uuid4())
    a.publish(change.kind, change.id)
    # The publishing node's subscribers are told at once, in the publishing thread.
    assert heard_a.changes == [change]
    assert heard_b.wait_for(change) < 1.0
    # And back the other way; a node does not hear its own change a second time.
    other = Change("activity_type", uuid.uuid4())
    b.publish(other.kind, other.id)
    assert heard_a.wait_for(other) < 1.0
    time.sleep(0.2)
    assert heard_a.changes == [change, other]
    assert heard_b.changes == [change, other]


def test_messages_that_are_not_changes_are_ignored(
    feeds: tuple[SharedChangeFeed, SharedChangeFeed],
) -> None:
    a, b = feeds
    heard = Heard()
    b.subscribe(heard)
    for message in [
        "",
        "node",
        f"other contact {uuid.uuid4()}",
        "other key not-a-uuid",
        f"other key {uuid.uuid4()}" + "x" * 200,
    ]:
        a.channel.send(message)
    change = Change("consent", uuid.uuid4())
    a.channel.send(f"other {change.kind} {change.id}")
    heard.wait_for(change)
    assert heard.changes == [change]


def test_a_listener_that_connects_drops_every_cache() -> None:
    heard = Heard()
    feed = SharedChangeFeed(RedisChannel("redis://127.0.0.1:1/0", "x"), LocalChangeFeed())
    feed.subscribe(heard)
    feed.everything_changed()
    kinds = {change.kind for change in heard.changes}
    assert {"channel", "key", "activity_type", "consent", "group", "suppression"} <= kinds


def test_a_change_that_cannot_be_sent_still_reaches_this_process() -> None:
    # Nothing listens on port 1: the send fails, the commit it follows stands.
    heard = Heard()
    feed = SharedChangeFeed(RedisChannel("redis://127.0.0.1:1/0", "x"), LocalChangeFeed())
    feed.subscribe(heard)
    change = Change("channel", uuid.uuid4())
    feed.publish(change.kind, change.id)
    assert heard.changes == [change]
    feed.stop()


def test_sqlite_keeps_the_local_feed(database_url: str) -> None:
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        shared = make_change_feed(engine, None, LocalChangeFeed())
        with_redis = make_change_feed(engine, "redis://127.0.0.1:6379/0", LocalChangeFeed())
    finally:
        engine.dispose()
    if database_url.startswith("sqlite"):
        assert shared is None
        assert with_redis is None
    else:
        assert shared is not None
        assert isinstance(shared.channel, PostgresChannel)
        assert with_redis is not None
        assert isinstance(with_redis.channel, RedisChannel)


def test_a_stop_wakes_the_postgresql_listener_at_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() does not wait for the listener's next look up from the channel: with a poll of a
    minute it still returns within seconds, and the listener's connection is gone."""
    monkeypatch.setattr("waypost.store.shared_changes.POLL_SECONDS", 60.0)
    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": postgres_url}))
    feed = SharedChangeFeed(PostgresChannel(engine, f"test_{uuid.uuid4().hex}"), LocalChangeFeed())
    try:
        for _ in range(2):  # and once more after a stop, on a new listener
            feed.start()
            assert feed.listening.wait(5)
            started = time.monotonic()
            feed.stop()
            assert time.monotonic() - started < 5
            assert feed._thread is None
    finally:
        feed.stop()
        engine.dispose()
