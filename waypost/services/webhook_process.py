"""The webhook dispatcher in a process of its own, with ``WAYPOST_WEBHOOK_PROCESS=1``
(docs/playbooks.md, "Delivery").

In the server's process the dispatcher shares one GIL with ingest: at a thousand deliveries
a second each waits for the other, and the time from an activity's ``202`` to its webhook
grows. In a process of its own it has a core of its own. The hub starts it with the
server's background work and stops it with them; the process runs the same
:class:`WebhookDispatcher` on its own connections to the same database, so the leases that
let several nodes share the outbox (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
on SQLite) keep it and anyone else from sending a message twice.

The hub wakes it through a pipe, one byte per commit that wrote messages. The pipe's write
end never blocks the committing thread: when it is full, the process has wakes enough
waiting. The process stops when told to, or when the pipe reaches its end because the hub's
process is gone (killed, even): what it leased is then sent again once the leases run out,
as after any crash.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import msgspec
from sqlalchemy.engine import make_url

from waypost.clock import SystemClock
from waypost.logs import log_config
from waypost.services.webhook_dispatcher import STOP_GRACE, WebhookDispatcher
from waypost.settings import Settings
from waypost.store import Store, make_engine

log = logging.getLogger("waypost.webhooks")

WAKE = b"w"
STOP = b"s"
# Beyond the dispatcher's own grace for calls in flight: time to start, record, and exit.
EXIT_SECONDS = 30.0


def can_run_apart(database_url: str) -> bool:
    """Whether another process can open the database: not an in-memory SQLite one."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return True
    database = url.database or ""
    return database not in ("", ":memory:") and "mode=memory" not in str(url)


class DispatcherProcess:
    """Starts, wakes and stops the dispatcher's process; the same calls as the
    :class:`WebhookDispatcher` it runs there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._pipe: int | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The process's id while it runs."""
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> None:
        """Start the process, unless it runs."""
        with self._lock:
            if self._process is not None:
                return
            self._stopped = False
            context = multiprocessing.get_context("spawn")
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=serve, args=(self.settings, reader), name="waypost-webhooks", daemon=True
            )
            process.start()
            reader.close()
            # The raw descriptor, not blocking: a wake never holds up a commit.
            self._pipe = os.dup(writer.fileno())
            writer.close()
            os.set_blocking(self._pipe, False)
            self._process = process

    def wake(self) -> None:
        """Look for due messages now (any thread). Starts a process that never ran; one
        that was stopped stays so."""
        if self._stopped:
            return
        pipe = self._pipe
        if pipe is None:
            self.start()  # it looks for due messages first thing
            return
        try:
            os.write(pipe, WAKE)
        except BlockingIOError:
            pass  # the pipe is full of wakes not yet read
        except OSError:
            pass  # the process is gone; stop() reports it

    def stop(self) -> None:
        """Stop the process: it stops its dispatcher (calls in flight finish, what was
        claimed and not sent is given back) and exits; killed if it takes too long."""
        with self._lock:
            self._stopped = True
            process, pipe = self._process, self._pipe
            self._process = self._pipe = None
        if process is None or pipe is None:
            return
        try:
            os.set_blocking(pipe, True)
            os.write(pipe, STOP)
        except OSError:
            pass
        finally:
            os.close(pipe)
        process.join(STOP_GRACE + EXIT_SECONDS)
        if process.is_alive():
            log.warning("the webhook process did not stop in time; killing it")
            process.kill()
            process.join()


def serve(settings: Settings, pipe: Connection) -> None:
    """The process: a dispatcher on a store of its own, woken and stopped through ``pipe``."""
    # Ctrl+C and SIGTERM reach the whole process group: the hub's process decides when this
    # one stops, after what it is finishing itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    # Nothing the dispatcher writes needs to survive a power cut (a lease lost is a message
    # due again, an answer lost a message sent again: at least once, as documented), so its
    # SQLite commits do not wait for the disk, as on PostgreSQL (synchronous_commit off).
    # In WAL mode the next synced commit (the server's) makes them durable too.
    store = Store(make_engine(msgspec.structs.replace(settings, sqlite_synchronous="NORMAL")))
    dispatcher = WebhookDispatcher(store, settings, SystemClock())
    dispatcher.start()
    fd = pipe.fileno()
    try:
        while True:
            try:
                got = os.read(fd, 4096)
            except InterruptedError:  # pragma: no cover - retried by Python itself
                continue
            if not got or STOP in got:
                break  # told to, or the hub's process is gone
            dispatcher.wake()
    finally:
        dispatcher.stop()
        store.dispose()
        pipe.close()
