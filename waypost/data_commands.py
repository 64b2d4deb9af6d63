"""``waypost purge`` and ``waypost export``: the data lifecycle from the command line
(docs/data-lifecycle.md)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import click
import msgspec

from waypost.console import hub_session, print_table, progress_bar
from waypost.domain.retention import retention_text
from waypost.errors import from_validation_error
from waypost.services.exports import (
    ActivityExportQuery,
    ContactExportQuery,
    Export,
    MemberExportQuery,
)
from waypost.services.retention import PurgeEstimate


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what has expired; delete nothing.")
def purge(dry_run: bool) -> None:
    """Delete what has expired: activities older than their type's retention, rejected
    activities older than WAYPOST_REJECTED_RETENTION_DAYS, daily rollups and counts older than
    WAYPOST_ROLLUP_RETENTION_DAYS.

    It prints what has expired, per type, then deletes it in small batches with a progress
    bar, and what it deleted. The server does the same every hour; one purge runs at a time.
    """
    with hub_session() as hub:
        plan = hub.retention.plan()
        estimate = hub.retention.estimate(plan)
        days = {t.code_name: t.days for t in plan.types}
        click.echo("Expired now:")
        _print_counts(estimate.activities, days, estimate)
        if dry_run:
            click.echo("Dry run: nothing was deleted.")
            return
        with progress_bar(estimate.total, "Purging") as advance:
            run = hub.retention.purge("command", lambda _what, _code, n: advance(n))
        if run is None:
            holder = hub.retention.lease.holder() or "another node"
            raise click.ClickException(
                f"A purge is running already ({holder}); try again once it is done."
            )
        deleted = PurgeEstimate(
            activities=run.activities,
            rejected=run.rejected_deleted,
            rollups=run.rollups_deleted,
            daily_counts=run.daily_counts_deleted,
            rejected_before=estimate.rejected_before,
            rollups_before=estimate.rollups_before,
        )
        click.echo(f"Deleted ({run.status}, {(run.duration_ms or 0) / 1000:.1f} s):")
        _print_counts(run.activities, days, deleted)
        if run.status != "finished":
            raise click.ClickException(f"The purge did not finish: {run.error or run.status}.")


def _print_counts(by_type: dict[str, int], days: dict[str, int], other: PurgeEstimate) -> None:
    rows: list[list[object]] = [
        [f"  {code}", retention_text(days.get(code)), f"{by_type.get(code, 0):,}"] for code in days
    ]
    if rows:
        print_table(rows, ["  type", "retention", "activities"])
    else:
        click.echo("  no activity type has a retention: every activity is kept")
    click.echo(
        f"  rejected activities received before {other.rejected_before:%Y-%m-%d %H:%M} UTC: "
        f"{other.rejected:,}"
    )
    click.echo(
        f"  daily rollups and counts of days before {other.rollups_before}: "
        f"{other.rollups:,} and {other.daily_counts:,}"
    )


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv", "parquet"]),
    default="ndjson",
    show_default=True,
    help="ndjson (one item a line, as the API shows it), csv or parquet (needs pyarrow).",
)
OUTPUT = click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="The file to write (- for standard output). It appears only once complete.",
)


@click.group()
def export() -> None:
    """Export activities, contacts or a group's members to a file (docs/data-lifecycle.md)."""


@export.command("activities")
@FORMAT
@OUTPUT
@click.option("--type", "type_code", default=None, help="Only this activity type (code name).")
@click.option("--contact", default=None, help="Only this contact's activities (its id).")
@click.option("--channel", default=None, help="Only activities from this channel (its id).")
@click.option("--since", default=None, help="Occurred at or after (ISO 8601 with an offset).")
@click.option("--until", default=None, help="Occurred before (ISO 8601 with an offset).")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME[.OP]=VALUE",
    help="A field filter, as the API's field.<name>[.gt|gte|lt|lte|contains]; needs --type.",
)
def export_activities(
    fmt: str,
    output: str,
    type_code: str | None,
    contact: str | None,
    channel: str | None,
    since: str | None,
    until: str | None,
    fields: tuple[str, ...],
) -> None:
    """Export the activities the filters select, newest first, with a progress bar. With
    --type, CSV and Parquet have a column per field of the type."""
    params = {"format": fmt, "type": type_code, "contact": contact, "channel": channel}
    params |= {"since": since, "until": until}
    field_params: dict[str, str] = {}
    for given in fields:
        name, sep, value = given.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{given!r} is not NAME=VALUE.", param_hint="--field")
        field_params[name] = value
    with hub_session() as hub:
        query = _query(ActivityExportQuery, params)
        _write(hub.exports.activities_export(query, field_params), output)


@export.command("contacts")
@FORMAT
@OUTPUT
@click.option("--search", "q", default="", help="As the contact list's search (q).")
def export_contacts(fmt: str, output: str, q: str) -> None:
    """Export the contacts the search finds (every contact without one), with every field,
    attribute and external id."""
    with hub_session() as hub:
        query = _query(ContactExportQuery, {"format": fmt, "q": q})
        _write(hub.exports.contacts_export(query), output)


@export.command("group-members")
@click.argument("group_id", type=click.UUID)
@FORMAT
@OUTPUT
def export_group_members(group_id: uuid.UUID, fmt: str, output: str) -> None:
    """Export a group's members with their emails and names."""
    with hub_session() as hub:
        query = _query(MemberExportQuery, {"format": fmt})
        _write(hub.exports.members_export(group_id, query), output)


Q = TypeVar("Q")


def _query(query_type: type[Q], params: Mapping[str, object]) -> Q:
    given = {k: v for k, v in params.items() if v is not None}
    try:
        return msgspec.convert(given, query_type, strict=False)
    except msgspec.ValidationError as exc:
        # The API's wording, with the option's name.
        error = from_validation_error(exc, query_type)
        where = f" (--{error.field})" if error.field else ""
        raise click.UsageError(f"{error.message}{where}") from None


def _write(export: Export, output: str) -> None:
    """Write the export to ``output`` through a temporary file beside it, renamed into place
    once complete, so that a failed export leaves no partial file."""
    if output == "-":
        stream = sys.stdout.buffer
        for chunk in export.chunks():
            stream.write(chunk)
        stream.flush()
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    total = export.count()
    try:
        with partial.open("wb") as file, progress_bar(total, f"Exporting {total:,}") as advance:
            done = 0
            for chunk in export.chunks():
                file.write(chunk)
                advance(export.rows - done)
                done = export.rows
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"Wrote {export.rows:,} to {target} ({target.stat().st_size:,} bytes).", err=True)
