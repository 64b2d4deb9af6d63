"""``waypost purge`` and ``waypost export``: the data lifecycle from the command line
(docs/data-lifecycle.md)."""

from __future__ import annotations

import click

from waypost.console import hub_session, print_table, progress_bar
from waypost.domain.retention import retention_text
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
        [code, retention_text(days.get(code)), f"{by_type.get(code, 0):,}"] for code in days
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
