"""Changes announced to every node on the same PostgreSQL database, not only in the process
that made them: over Redis pub/sub when Redis is configured, else PostgreSQL ``LISTEN/NOTIFY``.

:class:`SharedChangeFeed` is a :class:`~waypost.store.changes.ChangeFeed`: a change is given to
this process's subscribers at once, as the local feed does, and sent on the channel; a thread
listens to the channel and gives each change another process sent to this process's
subscribers. A message is ``"<node> <kind> <id>"``; a node skips its own.

Nothing is kept for a node that was not listening, so whenever the listener (re)connects it
tells the subscribers that everything may have changed, and the caches' own refresh
(``WAYPOST_CATALOG_TTL_SECONDS``) stays as the safety net for a message that was lost. A change
that cannot be sent is logged and not retried: the commit that made it stands.

On SQLite there is one node, and the local feed is kept (:func:`make_change_feed`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol, get_args

import sqlalchemy as sa
from sqlalchemy import Engine

from waypost.store.changes import ChangeFeed, ChangeKind, LocalChangeFeed, Subscriber

if TYPE_CHECKING:
    import redis

log = logging.getLogger("waypost.changes")

# The PostgreSQL channel (one per database) and the Redis one's prefix (the database's name
# follows, so that installations sharing a Redis keep to their own).
CHANNEL = "waypost_changes"
REDIS_CHANNEL = "waypost:changes:"

KINDS: frozenset[str] = frozenset(get_args(ChangeKind))
# Longer messages are not ours; they are dropped unread.
MAX_MESSAGE = 128
# How often a listener looks up from the channel to see whether it should stop (PostgreSQL's
# is also woken at once by a stop).
POLL_SECONDS = 0.25
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


class ChangeChannel(Protocol):
    """Where a node sends its changes and hears the others'."""

    name: str

    def send(self, message: str) -> None: ...

    def listen(self, stop: threading.Event, ready: Callable[[], None]) -> Iterator[str]:
        """The messages sent from now on, until ``stop`` is set; calls ``ready`` once
        listening. Raises when the connection is lost."""
        ...

    def wake(self) -> None:
        """Have a listener waiting for messages look at ``stop`` now (it may wait out its
        poll otherwise)."""
        ...

    def close(self) -> None: ...


class SharedChangeFeed:
    """A change feed shared by every process that listens to ``channel``."""

    def __init__(self, channel: ChangeChannel, local: ChangeFeed | None = None) -> None:
        self.channel = channel
        self.local: ChangeFeed = local if local is not None else LocalChangeFeed()
        self.node = uuid.uuid4().hex
        # Set while the listener is connected (tests and readiness may wait for it).
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def publish(self, kind: ChangeKind, id: uuid.UUID) -> None:
        self.local.publish(kind, id)
        try:
            self.channel.send(f"{self.node} {kind} {id}")
        except Exception:
            log.warning(
                "could not tell the other nodes of a change (%s %s) over %s; they see it "
                "within WAYPOST_CATALOG_TTL_SECONDS",
                kind,
                id,
                self.channel.name,
                exc_info=True,
            )

    def subscribe(self, callback: Subscriber) -> None:
        self.local.subscribe(callback)

    def start(self) -> None:
        """Listen to the other nodes' changes, in a thread, until :meth:`stop`."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="waypost-changes", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop listening and release the channel's connections."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        self.channel.wake()
        if thread is not None:
            thread.join()
        self.channel.close()

    def received(self, message: str) -> None:
        """Give a change another node sent to this process's subscribers."""
        if len(message) > MAX_MESSAGE:
            return
        node, _, rest = message.partition(" ")
        kind, _, id_text = rest.partition(" ")
        if node == self.node or kind not in KINDS:
            return
        try:
            change_id = uuid.UUID(id_text)
        except ValueError:
            return
        self.local.publish(kind, change_id)  # type: ignore[arg-type]

    def everything_changed(self) -> None:
        """Tell the subscribers that anything may have changed (messages may have been
        missed)."""
        for kind in sorted(KINDS):
            self.local.publish(kind, uuid.UUID(int=0))  # type: ignore[arg-type]

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                for message in self.channel.listen(self._stop, self._connected):
                    failures = 0
                    self.received(message)
            except Exception as exc:
                log.warning(
                    "lost %s, where other nodes announce their changes (%s); reconnecting",
                    self.channel.name,
                    exc,
                )
            self.listening.clear()
            wait = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
            failures += 1
            self._stop.wait(wait)

    def _connected(self) -> None:
        # The caches reload before ``listening`` is set: whoever waits for it then reads
        # caches no earlier change can still empty.
        self.everything_changed()
        self.listening.set()


class PostgresChannel:
    """``NOTIFY`` on the database's own connections, ``LISTEN`` on a connection of its own."""

    name = "PostgreSQL LISTEN/NOTIFY"

    def __init__(self, engine: Engine, channel: str = CHANNEL) -> None:
        self.engine = engine
        self.channel = channel
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._wake: int | None = None

    def send(self, message: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.select(sa.func.pg_notify(self.channel, message)))
            conn.commit()

    def listen(self, stop: threading.Event, ready: Callable[[], None]) -> Iterator[str]:
        import psycopg

        # wake() writes to this pipe: the wait below ends at once, not at its next poll.
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        with self._lock:
            self._wake = wake_write
        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {self.channel}")
                ready()
                # poll, not select: a server's descriptors may number over select's 1,024.
                waiting = select.poll()
                waiting.register(conn.fileno(), select.POLLIN)
                waiting.register(wake_read, select.POLLIN)
                while not stop.is_set():
                    # What has arrived, without waiting for more; and what psycopg read along
                    # with an earlier reply (the LISTEN's), which no readable socket announces.
                    for notify in conn.notifies(timeout=0):
                        yield notify.payload
                    if wake_read in {fd for fd, _ in waiting.poll(POLL_SECONDS * 1000)}:
                        os.read(wake_read, 64)
        finally:
            with self._lock:
                self._wake = None
            os.close(wake_read)
            os.close(wake_write)

    def wake(self) -> None:
        with self._lock:
            if self._wake is not None:
                # A full pipe (it never blocks) has woken the listener already.
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake, b".")

    def close(self) -> None:
        return None


class RedisChannel:
    """Redis pub/sub on ``waypost:changes:<database name>``."""

    name = "Redis pub/sub"

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.topic = REDIS_CHANNEL + database
        self._sender: redis.Redis | None = None
        self._lock = threading.Lock()

    def _client(self) -> redis.Redis:
        import redis

        return redis.Redis.from_url(
            self.url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10
        )

    def send(self, message: str) -> None:
        with self._lock:
            if self._sender is None:
                self._sender = self._client()
            sender = self._sender
        sender.publish(self.topic, message)

    def listen(self, stop: threading.Event, ready: Callable[[], None]) -> Iterator[str]:
        client = self._client()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.topic)
            # Listening once Redis has confirmed the subscription, not when it was asked for.
            while not stop.is_set():
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message.get("type") == "subscribe":
                    break
            else:
                return
            ready()
            while not stop.is_set():
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    yield data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        finally:
            pubsub.close()
            client.close()

    def wake(self) -> None:
        # The listener looks at ``stop`` after at most POLL_SECONDS: waking it would take a
        # message to Redis, which may be what is unreachable.
        return None

    def close(self) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()


def make_change_feed(
    engine: Engine, redis_url: str | None, local: ChangeFeed
) -> SharedChangeFeed | None:
    """The feed shared between nodes for a store on ``engine``: over Redis when ``redis_url``
    is set, else PostgreSQL's; None on SQLite, where ``local`` is all there is."""
    if engine.dialect.name != "postgresql":
        return None
    if redis_url:
        return SharedChangeFeed(RedisChannel(redis_url, engine.url.database or ""), local)
    return SharedChangeFeed(PostgresChannel(engine), local)
