"""Start the baseline or Waypost under uvicorn with the very same server settings.

``python -m bench.serve baseline --port P --results N`` or ``python -m bench.serve waypost
--port P`` (the database is ``WAYPOST_DATABASE_URL``). Both run as ``waypost serve`` runs
Waypost (one uvicorn worker, proxy headers on, no server header, Waypost's HTTP protocol with
its deadlines and connection limit), with the event loop named explicitly and the access log
off, so that only the application differs.

Waypost's start migrates and bootstraps an empty database, like ``waypost serve``, and prints
one ``BENCH-BOOTSTRAP {json}`` line with the channel and the keys before serving.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from typing import TYPE_CHECKING, Any

import msgspec
import uvicorn

if TYPE_CHECKING:
    from waypost.hub import Hub

READY_MARK = "BENCH-BOOTSTRAP"


def server_options() -> dict[str, Any]:
    """The uvicorn settings both servers run with (``http`` names the protocol; ``run_options``
    gives the class)."""
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    return {
        "workers": 1,
        "loop": "uvloop" if have_uvloop else "asyncio",
        "http": "waypost (httptools with deadlines)",
        "access_log": False,
        "log_level": "warning",
        "proxy_headers": True,
        "server_header": False,
        "lifespan": "auto",
    }


def run_options() -> dict[str, Any]:
    """``server_options`` as uvicorn takes them: Waypost's own HTTP protocol, as ``waypost
    serve`` runs it (waypost/connections.py)."""
    from waypost.connections import timed_protocol
    from waypost.settings import load_settings

    return {**server_options(), "http": timed_protocol(load_settings())}


def _waypost_app(existing: bool = False) -> tuple[Any, Hub]:
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
        uvicorn.run(app, host="127.0.0.1", port=args.port, **run_options())
        return
    app, hub = _waypost_app(args.existing)
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, **run_options())
    finally:
        hub.close()


if __name__ == "__main__":
    main()
