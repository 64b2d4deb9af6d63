"""The ``waypost`` command: serve, migrate, and keys, types and channels for automation."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import click
import msgspec

from waypost.console import cli_settings, echo_json, hub_session, json_option, print_table
from waypost.domain.fields import FieldSpec, FieldType
from waypost.error_words import a_or_an
from waypost.errors import ApiError, from_validation_error
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activity_types import ActivityType, ActivityTypeCreate, ActivityTypeQuery
from waypost.services.channels import ChannelCreate
from waypost.services.keys import KeyCreate, KeyQuery
from waypost.settings import Settings
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
@click.option("--demo", is_flag=True, help="Also serve the demo site, in the same process.")
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

    from waypost.app import create_app
    from waypost.bootstrap import bootstrap, bootstrap_admin
    from waypost.servers import server_options

    settings = cli_settings(host=host, port=port)
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
        click.echo(f"  Database:   {settings.database_url}")
        demo_app = None
        if demo:
            # The demo's backend reaches this process on loopback, whatever the public URL is.
            backend = _local_url(settings.host, settings.port)
            demo_app = _demo_app(hub, settings, settings.host, demo_port, backend)
            click.echo(f"  Demo site:  {_local_url(settings.host, demo_port)}")
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
        options: dict[str, Any] = {
            **server_options(settings),
            "log_level": settings.log_level,
            "server_header": False,
        }
        if demo_app is None:
            uvicorn.run(app, host=settings.host, port=settings.port, **options)
            return
        from waypost.servers import serve_together

        serve_together(
            [
                uvicorn.Config(app, host=settings.host, port=settings.port, **options),
                uvicorn.Config(
                    demo_app,
                    host=settings.host,
                    port=demo_port,
                    log_level=settings.log_level,
                    server_header=False,
                    **server_options(settings),
                ),
            ]
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


@main.group()
def keys() -> None:
    """Create, list, disable, enable and delete API keys."""


@keys.command("create")
@click.option(
    "--access",
    type=click.Choice(["tracking", "publishable", "admin"]),
    required=True,
    help="tracking (server-side logging), publishable (browsers), admin (admin API).",
)
@click.option("--channel", type=click.UUID, default=None, help="Channel id (not for admin keys).")
@click.option("--name", default="", help="A name to recognise the key by.")
@json_option
def keys_create(access: str, channel: uuid.UUID | None, name: str, as_json: bool) -> None:
    """Create a key and print it. It is shown only this once.

    Without --json only the key is printed, so that a script can capture it:
    KEY=$(waypost keys create --access admin)
    """
    with hub_session() as hub:
        body = msgspec.convert({"access": access, "channel": channel, "name": name}, KeyCreate)
        try:
            created = hub.keys.create(body)
        except ApiError as exc:
            if exc.field != "channel":
                raise
            # The service speaks of the API's property; here it is an option.
            if access == "admin":
                message = "An admin key has no channel: leave out --channel."
            elif exc.code == "missing_field":
                message = (
                    f"{a_or_an(access).capitalize()} key belongs to a channel: give --channel "
                    "with a channel's id (`waypost channels list` lists them)."
                )
            elif exc.message.startswith("No channel"):
                message = "No channel has that id; `waypost channels list` lists them."
            else:
                message = exc.message.replace("'channel'", "--channel")
            raise click.ClickException(message) from None
    if as_json:
        echo_json(created)
    else:
        click.echo(created.key)
        click.echo(f"Created {access} key {created.id}; it is not shown again.", err=True)


@keys.command("list")
@click.option("--channel", type=click.UUID, default=None, help="Only keys of this channel.")
@json_option
def keys_list(channel: uuid.UUID | None, as_json: bool) -> None:
    """List keys: their prefix and last four characters, never the key."""
    with hub_session() as hub:
        items = _all(lambda cursor: hub.keys.list_page(KeyQuery(cursor=cursor, channel=channel)))
    if as_json:
        echo_json(items)
        return
    print_table(
        [
            (
                k.id,
                k.access,
                f"{k.prefix}…{k.last_four}",
                "yes" if k.enabled else "no",
                k.channel,
                k.name,
            )
            for k in items
        ],
        ("ID", "ACCESS", "KEY", "ENABLED", "CHANNEL", "NAME"),
    )


@keys.command("disable")
@click.argument("key_id", type=click.UUID)
def keys_disable(key_id: uuid.UUID) -> None:
    """Disable a key: requests with it get 403 from now on."""
    from waypost.services.keys import KeyUpdate

    with hub_session() as hub:
        key = hub.keys.update(key_id, KeyUpdate(enabled=False))
    click.echo(f"Disabled {key.access} key {key.prefix}…{key.last_four}.")


@keys.command("enable")
@click.argument("key_id", type=click.UUID)
def keys_enable(key_id: uuid.UUID) -> None:
    """Enable a disabled key again."""
    from waypost.services.keys import KeyUpdate

    with hub_session() as hub:
        key = hub.keys.update(key_id, KeyUpdate(enabled=True))
    click.echo(f"Enabled {key.access} key {key.prefix}…{key.last_four}.")


@keys.command("delete")
@click.argument("key_id", type=click.UUID)
def keys_delete(key_id: uuid.UUID) -> None:
    """Delete a key for good: requests with it get 401 from now on."""
    with hub_session() as hub:
        key = hub.keys.get(key_id)
        hub.keys.delete(key_id)
    click.echo(f"Deleted {key.access} key {key.prefix}…{key.last_four}.")


# -- activity types --------------------------------------------------------------------------


@main.group()
def types() -> None:
    """Define, list, enable and disable activity types."""


@types.command("create")
@click.option("--name", required=True, help='Display name, e.g. "Loan calculator usage".')
@click.option("--code-name", default=None, help="Code name (default: derived from the name).")
@click.option("--description", default="", help="What the activity means.")
@click.option("--client-side", is_flag=True, help="May be logged from browsers.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME:TYPE[:required][:primary]",
    help="A typed field, e.g. amount:decimal:primary (repeatable).",
)
@json_option
def types_create(
    name: str,
    code_name: str | None,
    description: str,
    client_side: bool,
    disabled: bool,
    fields: tuple[str, ...],
    as_json: bool,
) -> None:
    """Define an activity type."""
    specs = [_parse_field(text) for text in fields]
    try:
        body = msgspec.convert(
            {
                "name": name,
                "code_name": code_name,
                "description": description,
                "client_side": client_side,
                "enabled": not disabled,
                "fields": specs,
            },
            ActivityTypeCreate,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(from_validation_error(exc, ActivityTypeCreate).message) from None
    with hub_session() as hub:
        created = hub.types.create(body)
    if as_json:
        echo_json(created)
    else:
        click.echo(f"Created activity type {created.code_name!r} ({created.id}).")


def _parse_field(text: str) -> dict[str, object]:
    name, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    if not name or not parts:
        raise click.BadParameter(
            f"{text!r}: use NAME:TYPE[:required][:primary]", param_hint="--field"
        )
    flags = set(parts[1:])
    unknown = flags - {"required", "primary"}
    if unknown:
        raise click.BadParameter(
            f"{text!r}: unknown flag {sorted(unknown)[0]!r}", param_hint="--field"
        )
    if parts[0] not in get_args(FieldType):
        raise click.BadParameter(
            f"{text!r}: {parts[0]!r} is not a field type; use one of "
            f"{', '.join(get_args(FieldType))}.",
            param_hint="--field",
        )
    return {
        "name": name,
        "type": parts[0],
        "required": "required" in flags,
        "primary": "primary" in flags,
    }


@types.command("list")
@json_option
def types_list(as_json: bool) -> None:
    """List activity types."""
    with hub_session() as hub:
        items = _all(lambda cursor: hub.types.list_page(ActivityTypeQuery(cursor=cursor)))
    if as_json:
        echo_json(items)
        return
    print_table(
        [
            (
                t.code_name,
                t.name,
                "yes" if t.enabled else "no",
                "yes" if t.client_side else "no",
                ", ".join(_field_text(f) for f in t.fields),
            )
            for t in items
        ],
        ("CODE NAME", "NAME", "ENABLED", "CLIENT-SIDE", "FIELDS"),
    )


def _field_text(field: FieldSpec) -> str:
    """A field as ``--field`` takes it: ``amount:decimal:required:primary``."""
    flags = [flag for flag, on in (("required", field.required), ("primary", field.primary)) if on]
    return ":".join([field.name, field.type, *flags])


def _find_type(hub: Hub, ref: str) -> ActivityType:
    try:
        return hub.types.get(uuid.UUID(ref))
    except ValueError:
        return hub.types.get_by_code(ref)


@types.command("enable")
@click.argument("type_ref", metavar="CODE_NAME_OR_ID")
def types_enable(type_ref: str) -> None:
    """Enable an activity type."""
    with hub_session() as hub:
        found = hub.types.set_enabled(_find_type(hub, type_ref).id, True)
    click.echo(f"Enabled {found.code_name!r}.")


@types.command("disable")
@click.argument("type_ref", metavar="CODE_NAME_OR_ID")
def types_disable(type_ref: str) -> None:
    """Disable an activity type: new activities of it are rejected."""
    with hub_session() as hub:
        found = hub.types.set_enabled(_find_type(hub, type_ref).id, False)
    click.echo(f"Disabled {found.code_name!r}.")


# -- channels --------------------------------------------------------------------------------


@main.group()
def channels() -> None:
    """Create and list channels."""


@channels.command("create")
@click.option("--name", required=True, help="Channel name.")
@click.option("--kind", type=click.Choice(["website", "headless"]), required=True)
@click.option("--origin", "origins", multiple=True, help="An allowed origin (repeatable).")
@click.option("--language", default="en", show_default=True, help="Default language.")
@json_option
def channels_create(
    name: str, kind: str, origins: tuple[str, ...], language: str, as_json: bool
) -> None:
    """Create a channel."""
    try:
        body = msgspec.convert(
            {
                "name": name,
                "kind": kind,
                "allowed_origins": list(origins),
                "default_language": language,
            },
            ChannelCreate,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(from_validation_error(exc, ChannelCreate).message) from None
    with hub_session() as hub:
        created = hub.channels.create(body)
    if as_json:
        echo_json(created)
    else:
        click.echo(f"Created {kind} channel {name!r}: {created.id}")


@channels.command("list")
@json_option
def channels_list(as_json: bool) -> None:
    """List channels."""
    with hub_session() as hub:
        items = _all(lambda cursor: hub.channels.list_page(ListQuery(cursor=cursor)))
    if as_json:
        echo_json(items)
        return
    print_table(
        [(c.id, c.kind, c.name, ", ".join(c.allowed_origins)) for c in items],
        ("ID", "KIND", "NAME", "ALLOWED ORIGINS"),
    )


main.add_command(users)

T = TypeVar("T")


def _all(fetch: Callable[[str | None], Any]) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        items.extend(page.data)
        cursor = page.next
        if cursor is None:
            return items


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
