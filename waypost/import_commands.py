"""``waypost import``: activities from a file, through the pipeline and the writer, as live
traffic (docs/data-lifecycle.md#import)."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from waypost.console import echo_json, hub_session, progress_bar
from waypost.services.import_lines import ImportFormat
from waypost.services.imports import FileRefused, ImportStopped, ImportSummary


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "segment"]),
    default="ndjson",
    show_default=True,
    help="ndjson: activities of POST /tracking/activities with their contact (or lines of an "
    "activity export); segment: Segment messages.",
)
@click.option(
    "--channel",
    type=click.UUID,
    default=None,
    help="The channel of every activity (else each line's own); needed for segment.",
)
@click.option(
    "--create-contacts",
    is_flag=True,
    help="Make contacts that do not exist, under the ids the file gives (as when moving data "
    "to a new installation); without it their activities are rejected, contact_not_found.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_file(
    file: Path, fmt: ImportFormat, channel: uuid.UUID | None, create_contacts: bool, as_json: bool
) -> None:
    """Import activities from FILE, one JSON object a line.

    Each activity is validated and stored as if it had been sent to the API: what fails is
    kept as a rejected activity (source import), occurredAt is kept (at most 24 hours
    ahead), and an activity with an id (a client id, or an exported activity's own id) is
    stored once however often the file is imported. The file is read twice: first to check
    that every line can be read at all (else nothing is imported and the lines are named),
    then to import it, with a progress bar, and a summary at the end.
    """
    with hub_session() as hub:
        try:
            checked = hub.imports.check(file, fmt, channel)
        except FileRefused as refused:
            raise click.ClickException(str(refused)) from None
        try:
            with progress_bar(checked.lines, "Importing") as advance:
                summary = hub.imports.run(file, fmt, channel, create_contacts, advance, checked)
        except ImportStopped as stopped:
            _print(stopped.summary, as_json)
            raise click.ClickException(
                f"The import stopped at line {stopped.line}: {stopped.reason}. What is counted "
                "above was imported; run the same import again to finish it (lines with an id "
                "are not stored twice)."
            ) from None
        _print(summary, as_json)


def _print(summary: ImportSummary, as_json: bool) -> None:
    if as_json:
        echo_json(summary)
        return
    rows: list[list[str]] = [
        ["  stored", f"{summary.stored:,}"],
        ["  already stored (duplicates)", f"{summary.duplicates:,}"],
        ["  rejected (kept, source import)", f"{sum(summary.rejected.values()):,}"],
        *[[f"    {reason}", f"{n:,}"] for reason, n in summary.rejected.items()],
        ["  naming an erased contact (stored nowhere)", f"{summary.erased:,}"],
    ]
    if summary.applied:
        rows.append(["  Segment messages applied to contacts", f"{summary.applied:,}"])
    if summary.contacts_created:
        rows.append(["  contacts created", f"{summary.contacts_created:,}"])
    click.echo(f"Imported {summary.lines:,} lines:")
    width = max(len(label) for label, _ in rows)
    number = max(len(n) for _, n in rows)
    for label, n in rows:
        click.echo(f"{label.ljust(width)}  {n.rjust(number)}")
    if summary.without_id:
        click.echo(
            f"{summary.without_id:,} lines have no id: importing this file again would store "
            "their activities again."
        )
