"""``waypost users``: the people who log in to the admin UI."""

from __future__ import annotations

import click
import msgspec

from waypost.console import hub_session, print_table
from waypost.services.users import MIN_PASSWORD, ROLES, UserCreate

EMAIL_HELP = "The email the user logs in with."


def _password(given: str | None) -> str:
    if given is not None:
        return given
    value = click.prompt(
        f"Password (at least {MIN_PASSWORD} characters)",
        hide_input=True,
        confirmation_prompt=True,
    )
    assert isinstance(value, str)
    return value


@click.group()
def users() -> None:
    """Create, list, disable and enable users of the admin UI, and set their passwords."""


@users.command("create")
@click.option("--email", required=True, help=EMAIL_HELP)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="admin (everything) or marketer (no channels, keys or users).",
)
@click.option(
    "--password",
    default=None,
    help="The password; asked for (twice, hidden) when not given. Passing it here leaves it "
    "in your shell's history.",
)
def users_create(email: str, role: str, password: str | None) -> None:
    """Create a user of the admin UI."""
    secret = _password(password)
    with hub_session() as hub:
        body = msgspec.convert({"email": email, "role": role, "password": secret}, UserCreate)
        created = hub.users.create(body)
    click.echo(f"Created {created.role} {created.email} ({created.id}).")


@users.command("list")
def users_list() -> None:
    """List users: email, role, whether disabled, when they last logged in."""
    with hub_session() as hub:
        found = hub.users.list()
    print_table(
        [
            (
                u.email,
                u.role,
                "yes" if u.disabled else "no",
                u.created_at.strftime("%Y-%m-%d %H:%M"),
                u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never",
                u.id,
            )
            for u in found
        ],
        ("EMAIL", "ROLE", "DISABLED", "CREATED (UTC)", "LAST LOGIN (UTC)", "ID"),
    )


@users.command("password")
@click.option("--email", required=True, help=EMAIL_HELP)
@click.option("--password", default=None, help="The new password; asked for when not given.")
def users_password(email: str, password: str | None) -> None:
    """Set a user's password. The user's sessions end: every browser logs in again."""
    secret = _password(password)
    with hub_session() as hub:
        user = hub.users.set_password(hub.users.get_by_email(email).id, secret)
    click.echo(f"Set a new password for {user.email}.")


# The name people look for first; ``password`` stays for the scripts that use it.
users.add_command(users_password, "set-password")


@users.command("disable")
@click.option("--email", required=True, help=EMAIL_HELP)
def users_disable(email: str) -> None:
    """Disable a user: logged out at once, and cannot log in."""
    with hub_session() as hub:
        user = hub.users.set_disabled(hub.users.get_by_email(email).id, True)
    click.echo(f"Disabled {user.email}.")


@users.command("enable")
@click.option("--email", required=True, help=EMAIL_HELP)
def users_enable(email: str) -> None:
    """Enable a disabled user again."""
    with hub_session() as hub:
        user = hub.users.set_disabled(hub.users.get_by_email(email).id, False)
    click.echo(f"Enabled {user.email}.")
