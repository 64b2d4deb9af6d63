"""What every ``waypost`` command shares: settings, a hub on a migrated database, tables and
JSON on the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import msgspec

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.settings import Settings, SettingsError, load_settings
from waypost.store import StorageUnavailable, migrate

F = TypeVar("F", bound=Callable[..., Any])


def cli_settings(**overrides: object) -> Settings:
    try:
        return load_settings(None, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        # A setting, not the command line: no usage text (exit status 1, as other errors).
        raise click.ClickException(str(exc)) from None


@contextmanager
def hub_session(settings: Settings | None = None) -> Iterator[Hub]:
    """A hub on a migrated database; service errors become clean CLI errors."""
    hub = Hub(settings or cli_settings())
    try:
        migrate.upgrade(hub.store.engine)
        yield hub
    except ApiError as exc:
        where = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"{exc.message}{where}") from None
    except StorageUnavailable as exc:
        raise click.ClickException(f"the database is unavailable: {exc}") from None
    finally:
        hub.close()


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error, ``total`` steps long: the block gets the function
    that moves it on by some steps. On a terminal it redraws itself; elsewhere (a log) it
    prints the label, and a line when it is done."""
    with click.progressbar(
        length=max(total, 1), label=label, file=sys.stderr, show_pos=True, width=30
    ) as bar:
        yield bar.update


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def echo_json(value: object) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())
