"""The database engine for SQLite or PostgreSQL, and the Store every service talks through."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from waypost.errors import StorageUnavailable
from waypost.settings import Settings
from waypost.store import driver
from waypost.store.changes import PENDING, Change, ChangeFeed, LocalChangeFeed, publish_all


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as PostgreSQL through psycopg 3."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def read_json(text: str | bytes) -> Any:
    """A JSON column's value, as ``json.loads`` reads it; a number of more digits than Python
    turns into an int (``sys.get_int_max_str_digits``) is read as its text, so that a payload
    kept as it was sent can always be read back."""
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(text, parse_int=_int_or_digits)


def _int_or_digits(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:
        return digits


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    """Create the engine: SQLite in WAL mode with foreign keys on, or PostgreSQL via psycopg."""
    url = make_url(normalise_url(settings.database_url))
    kwargs.setdefault("json_deserializer", read_json)
    if url.get_backend_name() == "sqlite":
        _create_private_file(url.database, url.query)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )
        _configure_sqlite(engine, settings.sqlite_synchronous)
        return engine
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
        )
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _create_private_file(database: str | None, query: Mapping[str, object]) -> None:
    # The database holds secrets (channels' identity secrets, hashed keys and passwords), so a
    # new file is readable by its owner only, whatever the umask. SQLite gives the -wal and
    # -shm files the mode of the database file, so they follow. An existing file is left as
    # its owner set it.
    if not database or database == ":memory:" or query.get("uri") or query.get("mode"):
        return
    # OSError: the file exists, or SQLite will say why it cannot be opened.
    with suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Leave transaction control to SQLAlchemy's "begin" event below, so that writers can
        # take the write lock up front (BEGIN IMMEDIATE) instead of failing to upgrade later.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        mode = options.get("waypost_begin", "DEFERRED")
        if options.get("waypost_begin_often") and _begin_often(connection, mode):
            return
        # On the driver: exec_driver_sql's machinery around it was a tenth of the CPU of a
        # writer's transaction of one request (docs/performance.md).
        driver.execute(connection, f"BEGIN {mode}")


# How long a transaction waits for SQLite's write lock before it fails.
BUSY_TIMEOUT_MS = 30000
# How long a writer that tries often tries so, and how long it waits between two tries.
OFTEN_SECONDS = 30.0
OFTEN_PAUSE = 0.001
SQLITE_BUSY = 5


def _begin_often(connection: Connection, mode: str) -> bool:
    # SQLite's own wait for the write lock sleeps longer and longer between tries (up to
    # 100 ms): beside a writer that commits hundreds of times a second it can miss every gap
    # between two of its transactions for seconds. Trying every millisecond finds one. False
    # when none came in time: the caller then waits as usual (and fails as usual).
    raw = connection.connection.driver_connection
    if not isinstance(raw, sqlite3.Connection):
        return False
    raw.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + OFTEN_SECONDS
        while time.monotonic() < deadline:
            try:
                raw.execute(f"BEGIN {mode}")
                return True
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != SQLITE_BUSY:
                    return False
            time.sleep(OFTEN_PAUSE)
        return False
    finally:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


T = TypeVar("T")

TOUCHED = "waypost.touched"
EVENTS = "waypost.events"
AFTER_COMMIT = "waypost.after_commit"

# What a write transaction changed about contacts: (contact ids, what changed) pairs.
Touched = list[tuple[frozenset[Any], Any]]


def touch(conn: Connection, contact_ids: Iterable[Any], what: Any) -> None:
    """Note, inside a write transaction, that these contacts changed (``what`` says how); the
    Store hands the notes to its ``on_commit`` listener once the transaction has committed,
    and drops them if it rolls back."""
    touched: Touched | None = conn.info.get(TOUCHED)
    ids = frozenset(contact_ids)
    if touched is not None and ids:
        touched.append((ids, what))


def emit(conn: Connection, event: Any) -> None:
    """Note, inside a write transaction, that something happened that may trigger work of its
    own (an activity stored, a contact entering a group, a consent agreed: the classes of
    :mod:`waypost.domain.triggers`). Before the transaction commits, the Store hands every
    event of it to its ``in_transaction`` handlers, on the same connection, so that what they
    write (a playbook's outbox messages) commits or rolls back with what triggered it."""
    events: list[Any] | None = conn.info.get(EVENTS)
    if events is not None:
        events.append(event)


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` once this write transaction has committed (never on a rollback)."""
    callbacks: list[Callable[[], None]] | None = conn.info.get(AFTER_COMMIT)
    if callbacks is not None and callback not in callbacks:
        callbacks.append(callback)


class Store:
    """The storage seam: transactions on one engine, with outages turned into StorageUnavailable."""

    def __init__(self, engine: Engine, changes: ChangeFeed | None = None) -> None:
        self.engine = engine
        self._writer = engine.execution_options(waypost_begin="IMMEDIATE")
        self._eager = engine.execution_options(waypost_begin="IMMEDIATE", waypost_begin_often=True)
        # Called after each committed write transaction that touched contacts (see touch()).
        self.on_commit: Callable[[Touched], None] | None = None
        # Where committed changes to cached definitions are published (see changes.announce).
        self.changes: ChangeFeed = changes if changes is not None else LocalChangeFeed()
        # Called inside each write transaction that emitted events, just before it commits.
        self.in_transaction: list[Callable[[Connection, list[Any]], None]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def writing_connection(self) -> Connection:
        """A connection of the engine that :meth:`write` uses, for a caller that runs many
        write transactions one after another on it (``write(on=...)``); the caller closes it."""
        with outage_guard():
            return self._writer.connect()

    @contextmanager
    def write(self, *, often: bool = False, on: Connection | None = None) -> Iterator[Connection]:
        """A read-write transaction, committed when the block ends without an exception.

        ``often``: on SQLite, try for the write lock every millisecond rather than by
        SQLite's lengthening waits, for short transactions that must not starve beside a
        busy writer (the webhook dispatcher's). ``on``: a connection of
        :meth:`writing_connection` to run the transaction on, rather than one taken from the
        pool and given back (the writer's, which commits hundreds of times a second)."""
        touched: Touched = []
        events: list[Any] = []
        callbacks: list[Callable[[], None]] = []
        changes: list[Change] | None = None
        engine = self._eager if often else self._writer
        with outage_guard(), _begun(engine, on) as conn:
            # Kept, not asked for again: once the connection is lost, conn.info raises
            # instead of answering, which would hide the outage behind another error.
            info = conn.info
            info[TOUCHED] = touched
            info[EVENTS] = events
            info[AFTER_COMMIT] = callbacks
            # No list until a change is announced: most write transactions (the writer's)
            # announce none.
            info[PENDING] = None
            try:
                yield conn
                # Handlers may emit events of their own (a playbook's run): take them too,
                # until none is left.
                while events:
                    taken = events[:]
                    del events[:]
                    for handler in self.in_transaction:
                        handler(conn, taken)
            finally:
                # The info dict outlives this checkout of the connection.
                info.pop(TOUCHED, None)
                info.pop(EVENTS, None)
                info.pop(AFTER_COMMIT, None)
                changes = info.pop(PENDING, None)
        # Caches first: what on_commit starts may read them.
        if changes:
            publish_all(self.changes, changes)
        if touched and self.on_commit is not None:
            self.on_commit(touched)
        for callback in callbacks:
            callback()

    def write_retrying(
        self, work: Callable[[Connection], T], *, attempts: int = 3, unique: bool = False
    ) -> T:
        """``work(conn)`` in a write transaction, run again (up to ``attempts`` times in all)
        when PostgreSQL aborted the transaction to break a deadlock or a serialization
        conflict with another one: for short transactions that lock rows in another order than
        a concurrent writer (an admin's retry of a webhook message and the dispatcher recording
        its attempt). With ``unique``, also when a row it inserted is one a concurrent
        transaction inserted first (an IntegrityError): for work that looks rows up and makes
        those it did not find (contacts by external id), which sees them when run again. Any
        other failure is raised at once."""
        for _ in range(attempts - 1):
            try:
                with self.write() as conn:
                    return work(conn)
            except StorageUnavailable as exc:
                if not _conflict(exc.__cause__):
                    raise
            except IntegrityError:
                if not unique:
                    raise
        with self.write() as conn:
            return work(conn)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only use of one connection."""
        with outage_guard(), self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _begun(engine: Engine, on: Connection | None) -> Iterator[Connection]:
    """A transaction on ``on``, or on a connection of ``engine``'s pool."""
    if on is None:
        with engine.begin() as conn:
            yield conn
        return
    with on.begin():
        yield on


# SQLSTATEs of a transaction PostgreSQL rolled back because of another one: a serialization
# failure and a deadlock. Running it again succeeds.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})


def _conflict(error: BaseException | None) -> bool:
    return getattr(getattr(error, "orig", None), "sqlstate", None) in CONFLICT_SQLSTATES


# SQLSTATEs that mean the database cannot take writes now, although the driver does not call
# them operational errors: a read-only transaction (a standby after a failover, or
# default_transaction_read_only on).
OUTAGE_SQLSTATES = frozenset({"25006"})


@contextmanager
def outage_guard() -> Iterator[None]:
    """Turn the errors of a database that cannot be reached into StorageUnavailable."""
    try:
        yield
    except OperationalError as exc:
        raise StorageUnavailable(str(exc.orig)) from exc
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if exc.connection_invalidated or sqlstate in OUTAGE_SQLSTATES:
            raise StorageUnavailable(str(exc.orig)) from exc
        raise
