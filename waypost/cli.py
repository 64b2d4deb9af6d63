"""The ``waypost`` command: serve, migrate, and keys, types and channels for automation."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import msgspec

from waypost.console import cli_settings, hub_session
from waypost.data_commands import export, purge
from waypost.hub import Hub
from waypost.import_commands import import_file
from waypost.settings import Settings
from waypost.setup_commands import channels, keys, types
from waypost.store import migrate
from waypost.user_commands import users

if TYPE_CHECKING:
    from starlette.applications import Starlette


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="waypost")
def main() -> None:
    """Waypost: a self-hosted hub for custom activity tracking.

    The database is WAYPOST_DATABASE_URL (default sqlite:///./waypost.db); see
    docs/configuration.md for every setting.
    """


@main.command()
@click.option("--host", default=None, help="Address to listen on (WAYPOST_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (WAYPOST_PORT, 8000).")
@click.option(
    "--demo",
    is_flag=True,
    help="Also serve the demo site, in the same process (and allow webhooks to addresses on "
    "this machine, as WAYPOST_WEBHOOK_ALLOW_PRIVATE=1 does, for its loan alerts).",
)
@click.option(
    "--demo-port",
    type=int,
    default=8001,
    show_default=True,
    envvar="WAYPOST_DEMO_PORT",
    help="The demo's port (WAYPOST_DEMO_PORT).",
)
def serve(host: str | None, port: int | None, demo: bool, demo_port: int) -> None:
    """Serve the tracking and admin APIs.

    On an empty database this creates and migrates it, makes a website and a headless channel,
    an admin key, a tracking key and a publishable key, and prints the addresses and the keys
    once. On a database without users it creates the admin UI's first admin (admin@localhost)
    and prints its password once. With --demo it also prepares and serves the demo site (see
    `waypost demo`).
    """
    import uvicorn
    from sqlalchemy.engine import make_url

    from waypost.app import create_app
    from waypost.bootstrap import bootstrap, bootstrap_admin
    from waypost.servers import freeze_startup_heap, serve_together, server_options

    # The demo's loan alerts are webhooks to the demo site, on this machine.
    settings = cli_settings(host=host, port=port, webhook_allow_private=True if demo else None)
    # Before anything is created or printed: keys shown once must not scroll away above a
    # traceback about a port that was taken.
    _check_port(settings.host, settings.port, "WAYPOST_PORT or --port")
    if demo:
        _check_port(settings.host, demo_port, "WAYPOST_DEMO_PORT or --demo-port")
    with hub_session(settings) as hub:
        first_run = bootstrap(hub)
        first_admin = bootstrap_admin(hub)
        click.echo(f"Waypost is serving on {settings.base_url}")
        click.echo(f"  Admin UI:   {settings.base_url}/admin")
        click.echo(f"  API docs:   {settings.base_url}/api/docs")
        # These lines go to the server's log: the URL's password is shown as ***.
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        click.echo(f"  Database:   {shown}")
        demo_app = None
        if demo:
            # The demo's backend reaches this process on loopback, whatever the public URL is.
            backend = _local_url(settings.host, settings.port)
            demo_app = _demo_app(hub, settings, settings.host, demo_port, backend)
            click.echo(f"  Demo site:  {_local_url(settings.host, demo_port)}")
            click.echo("  Webhooks:   to private addresses too, for the demo's loan alerts")
        if first_run is not None:
            click.echo("\nA new database: these keys are shown only now, so keep them.")
            for line in first_run.describe(settings.base_url):
                click.echo(f"  {line}")
        else:
            click.echo("\nThis database's keys were shown on its first run only. For a new key:")
            click.echo("  waypost keys create --access tracking --channel <channel id>")
            click.echo("  (channel ids: waypost channels list), or the admin UI's keys page:")
            click.echo(f"  {settings.base_url}/admin/keys/new")
        if first_admin is not None:
            click.echo("\nThe first admin of the UI: the password is shown only now.")
            for line in first_admin.describe(settings.base_url):
                click.echo(f"  {line}")
        click.echo("")
        app = create_app(settings, hub=hub)
        freeze_startup_heap()
        options: dict[str, Any] = {
            **server_options(settings),
            "log_level": settings.log_level,
            "server_header": False,
        }
        configs = [uvicorn.Config(app, host=settings.host, port=settings.port, **options)]
        if demo_app is not None:
            configs.append(uvicorn.Config(demo_app, host=settings.host, port=demo_port, **options))
        # Not uvicorn.run: it ends a SIGTERM by raising the signal again, which would kill the
        # process before the hub (the writer's queue, the background threads) is closed.
        serve_together(
            configs,
            names=[None, "demo"][: len(configs)],
            grace_seconds=settings.shutdown_grace_seconds,
        )


def _check_port(host: str, port: int, how: str) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port in TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"Cannot listen on {host}:{port} ({exc.strerror}); choose another port with {how}."
            ) from None


def _local_url(host: str, port: int) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    return f"http://{host}:{port}"


def _demo_app(
    hub: Hub, settings: Settings, host: str, port: int, backend_url: str | None = None
) -> Starlette:
    """Prepare the demo's data for the site at host:port, and build it."""
    from waypost.demo import create_demo_app, prepare_demo

    setup = prepare_demo(hub, [_local_url(host, port)])
    return create_demo_app(setup, settings.base_url, backend_url=backend_url)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=int,
    default=8001,
    show_default=True,
    envvar="WAYPOST_DEMO_PORT",
    help="Port to listen on (WAYPOST_DEMO_PORT).",
)
@click.option(
    "--api-url",
    default=None,
    help="Where browsers reach the Waypost API (default: WAYPOST_PUBLIC_URL, else "
    "http://WAYPOST_HOST:WAYPOST_PORT, i.e. http://127.0.0.1:8000).",
)
def demo(host: str, port: int, api_url: str | None) -> None:
    """Serve the demo site: a bank with a loan calculator, tracked with /waypost.js.

    The Waypost API must be running (`waypost serve`). This prepares the demo's data in the
    database, through the same services as the API: the TrackingConsent consent, the
    custom_loan_calculator activity type, the demo's origin and tracking consent on the website
    channel, the "Used the loan calculator" contact group its offers page personalizes with, a
    new publishable key for its pages and a new admin key for its backend's group checks.
    """
    import uvicorn

    from waypost.servers import server_options

    settings = cli_settings()
    if api_url is not None:
        settings = msgspec.structs.replace(settings, public_url=api_url)
    _check_port(host, port, "WAYPOST_DEMO_PORT or --port")
    with hub_session(settings) as hub:
        app = _demo_app(hub, settings, host, port)
    click.echo(f"The demo site is serving on {_local_url(host, port)}")
    click.echo(f"  It logs to the Waypost API at {settings.base_url}")
    if not _reachable(f"{settings.base_url}/waypost.js"):
        click.echo(
            f"  Warning: nothing answers at {settings.base_url} yet; start it with "
            "`waypost serve`, or give --api-url.",
            err=True,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level,
        server_header=False,
        **server_options(settings),
    )


def _reachable(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@main.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--downgrade", is_flag=True, help="Go down to --revision (e.g. base) instead.")
def migrate_command(revision: str, downgrade: bool) -> None:
    """Create or upgrade the database schema (or downgrade it)."""
    hub = Hub(cli_settings())
    try:
        if downgrade:
            migrate.downgrade(hub.store.engine, revision)
        else:
            migrate.upgrade(hub.store.engine, revision)
        current = migrate.current_revision(hub.store.engine)
    finally:
        hub.close()
    click.echo(f"The database is at revision {current or 'base'}.")


# -- keys -----------------------------------------------------------------------------------


main.add_command(users)
main.add_command(keys)
main.add_command(types)
main.add_command(channels)
main.add_command(purge)
main.add_command(export)
main.add_command(import_file)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
