"""How Waypost runs uvicorn: its options, several servers in one process and one event loop
(``waypost serve --demo``), and the shutdown on SIGTERM or SIGINT.

A shutdown stops accepting connections, answers the requests in flight (each connection is
closed after its answer), then ends the servers' lifespans; the caller closes the hub after
:func:`serve_together` returns, so the writer's queue is committed and the background threads
stop. It all has ``WAYPOST_SHUTDOWN_GRACE_SECONDS``: the connections get a share of it
(:data:`DRAIN_SHARE`), the rest is for what follows, and a process still running when it is
over exits at once with status 1 (docs/operations.md, "Shutting down").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn

from waypost.clientip import uvicorn_proxy_options
from waypost.connections import timed_protocol
from waypost.logs import log_config
from waypost.settings import Settings

SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The part of the grace period the connections have to be answered and closed; lifespans,
# the writer's last commit and the background threads' stops have the rest.
DRAIN_SHARE = 0.6

# uvicorn logs under these two names whichever server a line is about.
UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access")

log = logging.getLogger("waypost.servers")

# The name of the server whose task is running, for its log lines.
_server_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "waypost_server", default=None
)


def server_options(settings: Settings) -> dict[str, Any]:
    """The options of every uvicorn server ``waypost`` runs (for ``uvicorn.Config``)."""
    return {
        "log_config": log_config(settings.log_level, settings.log_format),
        "http": timed_protocol(settings),
        "timeout_graceful_shutdown": drain_seconds(settings.shutdown_grace_seconds),
        **uvicorn_proxy_options(settings.trusted_proxies),
    }


def drain_seconds(grace: float) -> int:
    """How long a shutdown waits for connections (uvicorn takes whole seconds)."""
    return max(1, int(grace * DRAIN_SHARE))


class _Server(uvicorn.Server):
    # Each uvicorn server would install its own signal handlers, each replacing the last, and
    # would raise the signal again once it has stopped, killing the process before the hub is
    # closed; serve_together handles signals for all of them and returns instead.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServerNames(logging.Filter):
    """Renames uvicorn's records about a named server: ``uvicorn.access.demo`` instead of
    ``uvicorn.access``, so that servers sharing a process are told apart in the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = _server_name.get()
        if name is not None and record.name in UVICORN_LOGGERS:
            record.name = f"{record.name}.{name}"
        return True


def serve_together(
    configs: Sequence[uvicorn.Config],
    *,
    names: Sequence[str | None] | None = None,
    grace_seconds: float | None = None,
) -> None:
    """Serve every config until SIGINT or SIGTERM, or until any one server stops.

    ``names`` name each server's log lines (None: uvicorn's names). With ``grace_seconds``, the
    process exits with status 1 if it is still running that long after the first signal.
    """
    names = list(names) if names is not None else [None] * len(configs)
    # uvicorn picks its event loop (uvloop when installed); all the servers share that one.
    loop_factory = getattr(configs[0], "get_loop_factory", lambda: None)()
    servers = [_Server(config) for config in configs]
    # The configs were made: each applied its logging config, which would drop the filters.
    with (
        _restored_signals(),
        _named_logs(any(names)),
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        runner.run(_serve(servers, names, grace_seconds))


@contextlib.contextmanager
def _named_logs(wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    names = ServerNames()
    loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    for logger in loggers:
        logger.addFilter(names)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(names)


@contextlib.contextmanager
def _restored_signals() -> Iterator[None]:
    # uvloop leaves its own handlers installed after its loop is closed.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


async def _serve(
    servers: list[_Server], names: Sequence[str | None], grace_seconds: float | None
) -> None:
    def stop() -> None:
        if grace_seconds is not None and not any(s.should_exit for s in servers):
            _deadline(grace_seconds)
        for server in servers:
            # A second Ctrl+C stops at once instead of waiting for open connections.
            server.force_exit = server.should_exit
            server.should_exit = True

    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, stop)
    tasks = [
        asyncio.create_task(server.serve(), context=_named(name))
        for server, name in zip(servers, names, strict=True)
    ]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks)


def _named(name: str | None) -> contextvars.Context:
    # A server's connections and requests run in copies of its task's context.
    context = contextvars.copy_context()
    context.run(_server_name.set, name)
    return context


def _deadline(grace_seconds: float) -> None:
    def run() -> None:
        time.sleep(grace_seconds)
        log.error(
            "the shutdown took longer than WAYPOST_SHUTDOWN_GRACE_SECONDS (%g s): exiting now",
            grace_seconds,
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(1)

    threading.Thread(target=run, name="waypost-shutdown-deadline", daemon=True).start()


def freeze_startup_heap() -> int:
    """Collect the start-up garbage, then freeze what is left; returns the objects frozen.

    Everything made while starting (modules, classes, functions, the hub and its caches) lives
    as long as the process, yet Python's cyclic garbage collector walks all of it at every full
    collection, holding the GIL: with a server's heap a pause of 40 to 200 ms now and then, in
    which no request is answered (docs/performance.md, "The soak"). Frozen, those objects are
    left out of every collection; what requests make is collected as before.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
