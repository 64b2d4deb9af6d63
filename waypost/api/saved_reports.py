"""/api/reports/saved: reports kept by name, shared by every user, and run by their id."""

from __future__ import annotations

from typing import Any

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.domain.report_definitions import ReportResult
from waypost.pagination import ListQuery, Page
from waypost.services.saved_reports import (
    Creator,
    SavedReport,
    SavedReportCreate,
    SavedReportUpdate,
)


def creator_of(call: Call[Any, Any]) -> Creator:
    """The admin key, or the user of the admin UI, that makes the call."""
    if call.principal is not None:
        return Creator("key", call.principal.key_id)
    return Creator("user", call.user_id)


def create_saved_report(call: Call[SavedReportCreate, None]) -> SavedReport:
    return call.hub.saved_reports.create(call.body, creator_of(call))


def list_saved_reports(call: Call[None, ListQuery]) -> Page[SavedReport]:
    return call.hub.saved_reports.list_page(call.query)


def get_saved_report(call: Call[None, None]) -> SavedReport:
    return call.hub.saved_reports.get(parse_uuid(call.path["report_id"], "saved report"))


def update_saved_report(call: Call[SavedReportUpdate, None]) -> SavedReport:
    report_id = parse_uuid(call.path["report_id"], "saved report")
    return call.hub.saved_reports.update(report_id, call.body)


def delete_saved_report(call: Call[None, None]) -> None:
    call.hub.saved_reports.delete(parse_uuid(call.path["report_id"], "saved report"))


def run_saved_report(call: Call[None, None]) -> ReportResult:
    saved = call.hub.saved_reports.get(parse_uuid(call.path["report_id"], "saved report"))
    return call.hub.reports.run(call.hub.saved_reports.definition_to_run(saved))


ITEM = "/api/reports/saved/{report_id}"
TAG = "Reports"
OPERATIONS = [
    Operation(
        "POST",
        "/api/reports/saved",
        create_saved_report,
        "Save a report definition by name, for every user",
        TAG,
        body=SavedReportCreate,
        response=SavedReport,
        status=201,
        errors=(400, 409),
        description=(
            "The definition is checked as `POST /api/reports/run` checks it: an unknown type, "
            "field, channel or group is a 400 `invalid_field` naming it (`definition.types`). "
            "`rolling: true` moves the range to end on the day the report is run, its length "
            "kept. `on_dashboard: true` shows it on the admin UI's dashboard (at most 12). "
            "A name in use is a 409 `conflict`."
        ),
    ),
    Operation(
        "GET",
        "/api/reports/saved",
        list_saved_reports,
        "List saved reports, in the order they were saved",
        TAG,
        query=ListQuery,
        response=Page[SavedReport],
    ),
    Operation(
        "GET",
        ITEM,
        get_saved_report,
        "Read a saved report",
        TAG,
        response=SavedReport,
        errors=(404,),
    ),
    Operation(
        "PATCH",
        ITEM,
        update_saved_report,
        "Change a saved report (name, definition, rolling, on_dashboard)",
        TAG,
        body=SavedReportUpdate,
        response=SavedReport,
        errors=(400, 404, 409),
    ),
    Operation(
        "DELETE",
        ITEM,
        delete_saved_report,
        "Delete a saved report",
        TAG,
        status=204,
        errors=(404,),
    ),
    Operation(
        "GET",
        ITEM + "/run",
        run_saved_report,
        "Run a saved report: the answer of POST /api/reports/run for its definition",
        TAG,
        response=ReportResult,
        errors=(400, 404),
        description=(
            "A rolling report runs over the same number of days, ending today in its time "
            "zone. A type, field, channel or group deleted since it was saved is a 400 "
            "`invalid_field`."
        ),
    ),
]
