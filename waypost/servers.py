"""How Waypost runs uvicorn: its options, and several servers in one process and one event loop
(``waypost serve --demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn

from waypost.clientip import uvicorn_proxy_options
from waypost.connections import timed_protocol
from waypost.logs import log_config
from waypost.settings import Settings

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def server_options(settings: Settings) -> dict[str, Any]:
    """The options of every uvicorn server ``waypost`` runs (for ``uvicorn.Config``)."""
    return {
        "log_config": log_config(settings.log_level),
        "http": timed_protocol(settings),
        **uvicorn_proxy_options(settings.trusted_proxies),
    }


class _Server(uvicorn.Server):
    # Each uvicorn server would install its own SIGINT handler, each replacing the last, so
    # that Ctrl+C reached one server only; serve_together handles signals for all of them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_together(configs: Sequence[uvicorn.Config]) -> None:
    """Serve every config until SIGINT or SIGTERM, or until any one server stops."""
    # uvicorn picks its event loop (uvloop when installed); all the servers share that one.
    loop_factory = getattr(configs[0], "get_loop_factory", lambda: None)()
    with _restored_signals(), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve([_Server(config) for config in configs]))


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


async def _serve(servers: list[_Server]) -> None:
    def stop() -> None:
        for server in servers:
            # A second Ctrl+C stops at once instead of waiting for open connections.
            server.force_exit = server.should_exit
            server.should_exit = True

    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks)


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
