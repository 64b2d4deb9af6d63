"""/api/reports: what the dashboard shows, for scripts and other tools.

Each report covers the last ``days`` UTC days, today included, and lists every day, with zeros
where nothing happened. Activity counts come from the daily rollups.
"""

from __future__ import annotations

from waypost.api.routing import Call, Operation
from waypost.services.reports import ActivityReport, NewContactsReport, RejectedReport, ReportQuery


def activities_report(call: Call[None, ReportQuery]) -> ActivityReport:
    return call.hub.reports.activities(call.query.days)


def new_contacts_report(call: Call[None, ReportQuery]) -> NewContactsReport:
    return call.hub.reports.new_contacts(call.query.days)


def rejected_report(call: Call[None, ReportQuery]) -> RejectedReport:
    return call.hub.reports.rejected(call.query.days)


TAG = "Reports"
OPERATIONS = [
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
