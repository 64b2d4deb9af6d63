"""/api/reports: what the dashboard shows, for scripts and other tools, and the reports a
marketer builds (``POST /api/reports/run``, see docs/reports.md).

Each dashboard report covers the last ``days`` UTC days, today included, and lists every day,
with zeros where nothing happened. Activity counts come from the daily rollups.
"""

from __future__ import annotations

from waypost.api.routing import Call, Operation
from waypost.domain.report_definitions import ReportDefinition, ReportResult
from waypost.services.reports import ActivityReport, NewContactsReport, RejectedReport, ReportQuery


def activities_report(call: Call[None, ReportQuery]) -> ActivityReport:
    return call.hub.reports.activities(call.query.days)


def new_contacts_report(call: Call[None, ReportQuery]) -> NewContactsReport:
    return call.hub.reports.new_contacts(call.query.days)


def rejected_report(call: Call[None, ReportQuery]) -> RejectedReport:
    return call.hub.reports.rejected(call.query.days)


def run_report(call: Call[ReportDefinition, None]) -> ReportResult:
    return call.hub.reports.run(call.body)


RUN_DESCRIPTION = (
    "A report over a range of days (at most 366), in days, weeks or months of a time zone: "
    "activity counts and unique contacts (`counts`), a field's values or buckets "
    "(`breakdown`), the sum, average, minimum and maximum of a numeric field (`numeric`), a "
    "funnel of 2 to 5 steps (`funnel`), or a group's members, entries and exits (`group`). "
    "The answer holds the table (`columns`, `rows`), a chart and what was read (`source`). "
    "See docs/reports.md."
)

TAG = "Reports"
OPERATIONS = [
    Operation(
        "POST",
        "/api/reports/run",
        run_report,
        "Run a report: counts, a breakdown, a numeric summary, a funnel or a group's members",
        TAG,
        body=ReportDefinition,
        response=ReportResult,
        errors=(400,),
        description=RUN_DESCRIPTION,
    ),
    Operation(
        "GET",
        "/api/reports/activities",
        activities_report,
        "Activities per day and type, and the types from the most used",
        TAG,
        query=ReportQuery,
        response=ActivityReport,
    ),
    Operation(
        "GET",
        "/api/reports/new-contacts",
        new_contacts_report,
        "New contacts per day (those merged into another contact left out)",
        TAG,
        query=ReportQuery,
        response=NewContactsReport,
    ),
    Operation(
        "GET",
        "/api/reports/rejected",
        rejected_report,
        "Rejected activities per reason, the most frequent first",
        TAG,
        query=ReportQuery,
        response=RejectedReport,
    ),
]
