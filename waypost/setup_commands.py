"""``waypost keys``, ``waypost types`` and ``waypost channels``: what a script sets up before
it logs activities (docs/admin-api.md)."""

from __future__ import annotations

import uuid
from typing import get_args

import click
import msgspec

from waypost.console import echo_json, hub_session, json_option, print_table
from waypost.domain.fields import FieldSpec, FieldType
from waypost.error_words import a_or_an
from waypost.errors import ApiError, from_validation_error
from waypost.hub import Hub
from waypost.pagination import ListQuery, every
from waypost.services.activity_types import ActivityType, ActivityTypeCreate, ActivityTypeQuery
from waypost.services.channels import ChannelCreate
from waypost.services.keys import KeyCreate, KeyQuery


@click.group()
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
        items = every(lambda cursor: hub.keys.list_page(KeyQuery(cursor=cursor, channel=channel)))
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


@click.group()
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
        items = every(lambda cursor: hub.types.list_page(ActivityTypeQuery(cursor=cursor)))
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


@click.group()
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
        items = every(lambda cursor: hub.channels.list_page(ListQuery(cursor=cursor)))
    if as_json:
        echo_json(items)
        return
    print_table(
        [(c.id, c.kind, c.name, ", ".join(c.allowed_origins)) for c in items],
        ("ID", "KIND", "NAME", "ALLOWED ORIGINS"),
    )
