"""The dashboard at ``/admin``: activities per day by type, the top types, new contacts per
day and rejected activities by reason, over the last 7, 30 or 90 days, as SVG charts; below
them, the saved reports pinned to the dashboard (waypost/admin/pages/reports.py).

Registered before ``home`` (which only redirects), so it answers ``/admin`` for every role
that may read the dashboard. The numbers come from the reports service (the daily rollups for
activities), so the page stays cheap however many activities there are.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import Markup
from starlette.responses import Response

from waypost.admin.charts import OTHER_COLOUR, Series, bar_list, stacked_bars
from waypost.admin.pages.rejected import REASON_LABELS, reason_label, replay_split
from waypost.admin.pages.reports import pinned_figures
from waypost.admin.views import NavItem, Page, View
from waypost.errors import invalid
from waypost.services.reports import ActivityReport, NewContactsReport, RejectedReport

NAV = NavItem("Dashboard", "/admin", "dashboard", 10)

PERIODS = (7, 30, 90)
# Types drawn in colours of their own; the others are summed as "Other types".
STACKED_TYPES = 7
TOP_TYPES = 10


def day_label(day: dt.date) -> str:
    return f"{day:%b} {day.day}"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def activity_chart(report: ActivityReport, days: int) -> Markup:
    """Activities per day, stacked by type: the busiest types, then the rest together."""
    shown = report.types[:STACKED_TYPES]
    rest = {t.type for t in report.types[STACKED_TYPES:]}
    series = [Series(t.name, [d.by_type.get(t.type, 0) for d in report.days]) for t in shown]
    if rest:
        other = [sum(n for code, n in d.by_type.items() if code in rest) for d in report.days]
        series.append(Series("Other types", other, OTHER_COLOUR))
    if not series:
        series = [Series("Activities", [0] * len(report.days))]
    summary = f"{_plural(report.total, 'activity', 'activities')} in the last {days} days."
    if report.total:
        busiest = max(report.days, key=lambda d: d.total)
        summary += (
            f" The busiest day was {day_label(busiest.day)} with {busiest.total:,}."
            f" {report.types[0].name} has the most, {report.types[0].total:,}."
        )
    return stacked_bars(
        "activities-chart",
        f"Activities per day by type, last {days} days",
        [day_label(d.day) for d in report.days],
        series,
        summary=summary,
    )


def top_types_chart(report: ActivityReport, days: int) -> Markup:
    top = report.types[:TOP_TYPES]
    summary = ", ".join(f"{t.name}: {t.total:,}" for t in top) if top else "No activities yet."
    return bar_list(
        "top-types-chart",
        f"Top activity types, last {days} days",
        [(t.name, t.total) for t in top],
        summary=summary,
        category_label="Activity type",
        value_label="Activities",
    )


def new_contacts_chart(report: NewContactsReport, days: int) -> Markup:
    summary = f"{_plural(report.total, 'new contact', 'new contacts')} in the last {days} days."
    if report.total:
        busiest = max(report.days, key=lambda d: d.count)
        summary += f" The most on {day_label(busiest.day)}: {busiest.count:,}."
    return stacked_bars(
        "contacts-chart",
        f"New contacts per day, last {days} days",
        [day_label(d.day) for d in report.days],
        [Series("New contacts", [d.count for d in report.days])],
        summary=summary,
    )


def rejected_chart(report: RejectedReport, days: int) -> Markup:
    """Bars labelled in words; the codes are in the description and the table of numbers."""
    summary = ", ".join(
        f"{reason_label(r.reason)}: {r.count:,}"
        + (f" ({r.replayed:,} replayed)" if r.replayed else "")
        for r in report.reasons
    )
    return bar_list(
        "rejected-chart",
        f"Rejected activities by reason, last {days} days",
        [(REASON_LABELS.get(r.reason, r.reason), r.count) for r in report.reasons],
        summary=summary or "Nothing was rejected.",
        category_label="Reason",
        value_label="Rejected activities",
        table_labels=[reason_label(r.reason) for r in report.reasons],
    )


def _days(page: Page) -> int:
    text = page.request.query_params.get("days", "30")
    if not text.isdigit() or int(text) not in PERIODS:
        choices = ", ".join(str(d) for d in PERIODS)
        raise invalid(f"The dashboard covers {choices} days (got {text!r}).", "days")
    return int(text)


def dashboard(page: Page) -> Response:
    days = _days(page)
    activity = page.hub.reports.activities(days)
    contacts = page.hub.reports.new_contacts(days)
    rejected = page.hub.reports.rejected(days)
    charts: dict[str, Any] = {
        "activities": activity_chart(activity, days),
        "top_types": top_types_chart(activity, days),
        "contacts": new_contacts_chart(contacts, days),
        "rejected": rejected_chart(rejected, days),
    }
    return page.render(
        "dashboard.html",
        days=days,
        periods=PERIODS,
        activity=activity,
        contacts=contacts,
        rejected=rejected,
        rejected_split=replay_split(rejected.total, rejected.replayed),
        charts=charts,
        pinned=pinned_figures(page) if page.can("reports") else [],
        purge=page.hub.retention.last_run(),
        settings=page.hub.settings,
    )


VIEWS = [View("/admin", dashboard, "dashboard"), View("/admin/", dashboard, "dashboard")]
