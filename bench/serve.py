"""Start the baseline or Waypost under uvicorn with the very same server settings.

``python -m bench.serve baseline --port P --results N`` or ``python -m bench.serve waypost
--port P`` (the database is ``WAYPOST_DATABASE_URL``). Both run as ``waypost serve`` runs
Waypost (one uvicorn worker, proxy headers on, no server header, Waypost's HTTP protocol with
its deadlines and connection limit), with the event loop named explicitly and the access log
off, so that only the application differs.

``BENCH_SERVER=granian`` (one granian worker process forked from this one, I/O on one Rust
thread) or ``BENCH_SERVER=granian-embedded`` (granian's embedded server, in this process) serves
either app under granian instead, to measure a compiled-core server against uvicorn; it needs
``pip install granian``, which Waypost does not depend on (docs/performance.md has the figures).

Waypost's start migrates and bootstraps an empty database, like ``waypost serve``, and prints
one ``BENCH-BOOTSTRAP {json}`` line with the channel and the keys before serving.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import msgspec
import uvicorn

if TYPE_CHECKING:
    from waypost.hub import Hub

READY_MARK = "BENCH-BOOTSTRAP"
SERVERS = ("uvicorn", "granian", "granian-embedded")


def server_options() -> dict[str, Any]:
    """The uvicorn settings both servers run with (``http`` names the protocol; ``run_options``
    gives the class)."""
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    loop = "uvloop" if have_uvloop else "asyncio"
    if server_name() != "uvicorn":
        return {"workers": 1, "loop": loop, "http": f"{server_name()} (HTTP/1.1, 1 thread)"}
    return {
        "workers": 1,
        "loop": loop,
        "http": "waypost (httptools with deadlines)",
        "access_log": False,
        "log_level": "warning",
        "proxy_headers": True,
        "server_header": False,
        "lifespan": "auto",
    }


def server_name() -> str:
    """``BENCH_SERVER``: uvicorn (the default, as ``waypost serve``), granian (one worker
    process, forked from this one) or granian-embedded (in this process), for measuring a
    compiled-core server against uvicorn."""
    name = os.environ.get("BENCH_SERVER", "uvicorn")
    if name not in SERVERS:
        sys.exit(f"bench.serve: BENCH_SERVER must be one of {', '.join(SERVERS)}, not {name!r}")
    return name


def serve(app: Any, port: int) -> None:
    """Serve ``app`` on ``port`` under the server ``BENCH_SERVER`` names until SIGINT."""
    if server_name() == "uvicorn":
        uvicorn.run(app, host="127.0.0.1", port=port, **run_options())
        return
    if server_name() == "granian":
        _granian_process(app, port)
        return
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_granian(app, port))


def _loop_factory() -> Any:
    if importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    return uvloop.new_event_loop


def _granian_options(port: int) -> dict[str, Any]:
    """What both granian modes run with: ASGI with its lifespan, HTTP/1.1, one I/O thread."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels

    return {
        "address": "127.0.0.1",
        "port": port,
        "interface": Interfaces.ASGI,
        "http": HTTPModes.http1,
        "runtime_threads": 1,
        "log_level": LogLevels.warning,
    }


def _granian_process(app: Any, port: int) -> None:
    # One worker process, forked from this one with ``app`` made: it runs the lifespan and the
    # ASGI calls on its event loop, its I/O on one Rust runtime thread.
    from granian import Granian
    from granian.constants import Loops

    loop = Loops.uvloop if importlib.util.find_spec("uvloop") is not None else Loops.asyncio
    server = Granian("bench.serve", workers=1, loop=loop, **_granian_options(port))
    server.serve(target_loader=lambda: app, wrap_loader=False)


async def _granian(app: Any, port: int) -> None:
    # One worker in this process, its I/O on one Rust runtime thread; the ASGI calls and the
    # lifespan run on this process's event loop, as under uvicorn.
    from granian.server.embed import Server

    server = Server(app, **_granian_options(port))
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, server.stop)
    await server.serve()


def run_options() -> dict[str, Any]:
    """``server_options`` as uvicorn takes them: Waypost's own HTTP protocol, as ``waypost
    serve`` runs it (waypost/connections.py)."""
    from waypost.connections import timed_protocol
    from waypost.settings import load_settings

    return {**server_options(), "http": timed_protocol(load_settings())}


def _waypost_app(existing: bool = False) -> tuple[Any, Hub | None]:
    from waypost.app import create_app
    from waypost.bootstrap import bootstrap
    from waypost.hub import Hub
    from waypost.servers import freeze_startup_heap
    from waypost.settings import load_settings
    from waypost.store import migrate

    settings = load_settings()
    hub = Hub(settings)
    migrate.upgrade(hub.store.engine)
    first_run = bootstrap(hub)
    if first_run is not None:
        admin, tracking, channel = (
            first_run.admin_key.key,
            first_run.tracking_key.key,
            first_run.headless.id,
        )
    elif existing:
        admin, tracking, channel = _keys_on_existing(hub)
    else:
        sys.exit("bench.serve: the database is not empty; the benchmark needs a fresh one")
    info = {
        "admin_key": admin,
        "tracking_key": tracking,
        "channel": str(channel),
        "settings": msgspec.to_builtins(settings),
        "server": server_options(),
    }
    print(f"{READY_MARK} {json.dumps(info)}", flush=True)
    if server_name() == "granian":
        # The app serves in a forked worker, which never returns here: it owns a hub of its own,
        # which its lifespan closes (with the writer's process) when the worker stops.
        hub.close()
        app = create_app(settings)
        freeze_startup_heap()
        return app, None
    app = create_app(settings, hub=hub)
    # As ``waypost serve`` does.
    freeze_startup_heap()
    return app, hub


def _keys_on_existing(hub: Hub) -> tuple[str, str, Any]:
    """A channel and keys of the benchmark's own on a database made before (bench.lifecycle
    serves the database bench.scale built)."""
    from waypost.ids import new_id
    from waypost.services.channels import ChannelCreate
    from waypost.services.keys import KeyCreate

    channel = hub.channels.create(ChannelCreate(name=f"Bench {new_id()}", kind="headless"))
    admin = hub.keys.create(KeyCreate(access="admin", name="bench"))
    tracking = hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="bench"))
    return admin.key, tracking.key, channel.id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("app", choices=["baseline", "waypost"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--results", type=int, default=1, help="baseline: results per answer")
    parser.add_argument(
        "--existing", action="store_true", help="waypost: serve a database made before"
    )
    args = parser.parse_args(argv)
    if args.app == "baseline":
        from bench.baseline import BaselineApp

        app: Any = BaselineApp(args.results)
        info = {"results": args.results, "server": server_options()}
        print(f"{READY_MARK} {json.dumps(info)}", flush=True)
        serve(app, args.port)
        return
    app, hub = _waypost_app(args.existing)
    try:
        serve(app, args.port)
    finally:
        if hub is not None:
            hub.close()


if __name__ == "__main__":
    main()
