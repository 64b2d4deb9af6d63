"""Reports: the builder (a GET form whose answer is the report's chart, its numbers and a CSV
download), saved reports (listed, opened, changed, deleted) and the reports pinned to the
dashboard. See docs/admin-ui.md#reports; what each kind of report answers is docs/reports.md.

Building a report changes nothing, so the builder is a GET form and a report is a URL; saving
one, pinning it to the dashboard and deleting it are POSTs with the CSRF token, as on every
page. The report service runs every report; these handlers turn forms into definitions and
results into a figure (waypost/admin/charts.py) and CSV (waypost/domain/report_csv.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from markupsafe import Markup
from starlette.responses import Response

from waypost.admin import report_form
from waypost.admin.charts import report_figure
from waypost.admin.forms import Form
from waypost.admin.rendering import SECURITY_HEADERS
from waypost.admin.views import NavItem, Page, View, every
from waypost.domain.report_csv import csv_filename, report_csv
from waypost.domain.report_definitions import MAX_STEPS, ReportDefinition, ReportResult
from waypost.errors import (
    ApiError,
    check_no_nul,
    from_validation_error,
    holds_nul,
    nul_refused,
)
from waypost.pagination import ListQuery
from waypost.services.groups import MemberQuery
from waypost.services.saved_reports import (
    Creator,
    SavedReport,
    SavedReportCreate,
    SavedReportUpdate,
)

NAV = NavItem("Reports", "/admin/reports", "reports", 62)
BLANK_FILTERS = 2


def type_names(page: Page) -> report_form.Names:
    """The names reports are titled with (see :func:`report_form.report_title`)."""
    groups = every(lambda c: page.hub.groups.list_page(MemberQuery(limit=1000, cursor=c)))
    by_group = {str(g.id): g.name for g in groups} | {g.name: g.name for g in groups}
    return report_form.Names({t.code_name: t.name for t in page.hub.types.all()}, by_group)


def figure(
    page: Page,
    result: ReportResult,
    chart_id: str,
    title: str | None = None,
    numbers_shown: bool = True,
) -> Markup:
    """A report's chart with its numbers."""
    definition = result.definition
    return report_figure(
        chart_id,
        title or report_form.report_title(definition, type_names(page)),
        result.chart.style,
        result.chart.categories,
        [(s.name, s.values) for s in result.chart.series],
        summary=report_form.summary_of(result),
        columns=result.columns,
        rows=result.rows,
        numbers_shown=numbers_shown,
    )


def group_choices(page: Page) -> list[tuple[str, str]]:
    groups = every(lambda c: page.hub.groups.list_page(MemberQuery(limit=1000, cursor=c)))
    return sorted(((str(g.id), g.name) for g in groups), key=lambda pair: pair[1].lower())


def channel_choices(page: Page) -> list[tuple[str, str]]:
    channels = every(lambda c: page.hub.channels.list_page(ListQuery(limit=1000, cursor=c)))
    return sorted(((str(c.id), c.name) for c in channels), key=lambda pair: pair[1].lower())


def _saved(page: Page) -> list[SavedReport]:
    found: list[SavedReport] = every(
        lambda cursor: page.hub.saved_reports.list_page(ListQuery(limit=1000, cursor=cursor))
    )
    return sorted(found, key=lambda r: r.name.lower())


def _creator(page: Page) -> Creator:
    return Creator("user", page.session.user.id)


def _csv_response(result: ReportResult, name: str) -> Response:
    return Response(
        report_csv(result.columns, result.rows),
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{csv_filename(name)}"',
        },
    )


# -- the builder ---------------------------------------------------------------------------


def _builder(
    page: Page,
    values: dict[str, Any],
    *,
    result: ReportResult | None = None,
    error: ApiError | None = None,
    saved: SavedReport | None = None,
    save_error: ApiError | None = None,
) -> Response:
    hub = page.hub
    filters = list(values["filters"]) + [{"field": "", "op": "eq", "value": ""}] * BLANK_FILTERS
    types = sorted(hub.types.all(), key=lambda t: t.name.lower())
    fields = sorted({f.name for t in types for f in t.fields})
    context: dict[str, Any] = {
        "values": values,
        "filters": filters,
        "error": error,
        "save_error": save_error,
        "saved": saved,
        "kinds": list(report_form.KIND_LABELS.items()),
        "granularities": list(report_form.GRANULARITY_LABELS.items()),
        "operators": report_form.OPERATORS,
        "types": types,
        "fields": fields,
        "groups": group_choices(page),
        "channels": channel_choices(page),
        "max_steps": MAX_STEPS,
        "result": result,
        "figure": None,
        "title": "",
        "query": "",
        "definition_json": "",
    }
    if result is not None:
        title = report_form.report_title(result.definition, type_names(page))
        context.update(
            figure=figure(page, result, "report-chart", title),
            title=title,
            range=report_form.range_text(result.definition),
            query=report_form.query_of(result.definition),
            definition_json=msgspec.json.encode(result.definition).decode(),
        )
    status = error.status if error else save_error.status if save_error else 200
    return page.render("reports/builder.html", status, **context)


def _query_form(page: Page) -> Form:
    pairs = page.request.query_params.multi_items()
    # PostgreSQL text holds no NUL: refused here, as the API refuses it, not in the database.
    check_no_nul(pairs)
    return Form(pairs)


def _run(page: Page, definition: ReportDefinition) -> ReportResult:
    try:
        return page.hub.reports.run(definition)
    except ApiError as exc:
        raise report_form.on_form(exc) from None


def build_report(page: Page) -> Response:
    """The builder; with a kind chosen, the report it describes below it."""
    form = _query_form(page)
    today = page.hub.clock.now().date()
    saved = None
    if form.get("saved"):
        try:
            saved = page.hub.saved_reports.get(uuid.UUID(form.get("saved")))
        except ValueError:
            saved = None
    if "kind" not in form:
        if saved is not None:
            return _builder(page, report_form.values_of(saved.definition), saved=saved)
        return _builder(page, report_form.values_from(form, today))
    try:
        definition = report_form.definition_from(form)
        result = _run(page, definition)
    except ApiError as exc:
        return _builder(page, report_form.values_from(form, today), error=exc, saved=saved)
    return _builder(page, report_form.values_of(definition), result=result, saved=saved)


def build_csv(page: Page) -> Response:
    """The CSV of the report the builder's query describes."""
    form = _query_form(page)
    definition = report_form.definition_from(form)
    result = _run(page, definition)
    return _csv_response(result, report_form.report_title(definition, type_names(page)))


def _posted_definition(page: Page) -> ReportDefinition:
    raw = page.form.raw("definition").encode()
    if holds_nul(raw):
        raise nul_refused("A report's definition")
    try:
        return msgspec.json.decode(raw, type=ReportDefinition)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise from_validation_error(exc, ReportDefinition) from None


def save_report(page: Page) -> Response:
    """Save the report the builder showed, by name (a new one, or changes to ``saved``)."""
    form = page.form
    definition = _posted_definition(page)
    target = form.get("saved")
    try:
        if target:
            report_id = uuid.UUID(target) if _is_uuid(target) else uuid.UUID(int=0)
            changed = page.hub.saved_reports.update(
                report_id,
                _convert(
                    {"name": form.get("name"), "definition": msgspec.to_builtins(definition),
                     "rolling": form.checked("rolling")},
                    SavedReportUpdate,
                ),
            )  # fmt: skip
            return page.redirect(f"/admin/reports/{changed.id}", f"Saved {changed.name}.")
        created = page.hub.saved_reports.create(
            _convert(
                {"name": form.get("name"), "definition": msgspec.to_builtins(definition),
                 "rolling": form.checked("rolling"), "on_dashboard": form.checked("on_dashboard")},
                SavedReportCreate,
            ),
            _creator(page),
        )  # fmt: skip
    except ApiError as exc:
        result = _run(page, definition)
        saved = (
            page.hub.saved_reports.get(uuid.UUID(target)) if target and _is_uuid(target) else None
        )
        values = report_form.values_of(definition)
        return _builder(page, values, result=result, saved=saved, save_error=exc)
    return page.redirect(f"/admin/reports/{created.id}", f"Saved {created.name}.")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _convert(raw: dict[str, Any], target: type[Any]) -> Any:
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc, target) from None


# -- saved reports -------------------------------------------------------------------------


def list_reports(page: Page) -> Response:
    names = type_names(page)
    creators = {u.id: u.email for u in page.hub.users.list()} if page.can("users") else {}
    rows = [
        (
            r,
            report_form.report_title(r.definition, names),
            creators.get(r.created_by.id) if r.created_by.id else None,
        )
        for r in _saved(page)
    ]
    return page.render("reports/list.html", rows=rows)


def show_report(page: Page) -> Response:
    hub = page.hub
    saved = hub.saved_reports.get(page.uuid_param("report_id", "saved report"))
    definition = hub.saved_reports.definition_to_run(saved)
    result, error, chart = None, None, None
    try:
        result = hub.reports.run(definition)
        chart = figure(page, result, "report-chart", saved.name)
    except ApiError as exc:
        error = exc
    return page.render(
        "reports/show.html",
        report=saved,
        definition=definition,
        title=report_form.report_title(definition, type_names(page)),
        range=report_form.range_text(definition),
        result=result,
        figure=chart,
        error=error,
        edit_query=report_form.query_of(definition),
    )


def saved_csv(page: Page) -> Response:
    hub = page.hub
    saved = hub.saved_reports.get(page.uuid_param("report_id", "saved report"))
    result = hub.reports.run(hub.saved_reports.definition_to_run(saved))
    return _csv_response(result, saved.name)


def _pin(page: Page, on: bool) -> Response:
    report_id = page.uuid_param("report_id", "saved report")
    changed = page.hub.saved_reports.update(report_id, SavedReportUpdate(on_dashboard=on))
    message = "Added {} to the dashboard." if on else "Removed {} from the dashboard."
    return page.redirect(f"/admin/reports/{changed.id}", message.format(changed.name))


def pin_report(page: Page) -> Response:
    return _pin(page, True)


def unpin_report(page: Page) -> Response:
    return _pin(page, False)


def delete_report(page: Page) -> Response:
    saved = page.hub.saved_reports.get(page.uuid_param("report_id", "saved report"))
    page.hub.saved_reports.delete(saved.id)
    return page.redirect("/admin/reports", f"Deleted the report {saved.name}.")


def pinned_figures(page: Page) -> list[tuple[SavedReport, Markup | None, str]]:
    """The dashboard's pinned reports: each with its figure, or why it cannot run now."""
    shown: list[tuple[SavedReport, Markup | None, str]] = []
    for i, saved in enumerate(page.hub.saved_reports.pinned()):
        try:
            result = page.hub.reports.run(page.hub.saved_reports.definition_to_run(saved))
        except ApiError as exc:
            shown.append((saved, None, exc.message))
            continue
        shown.append((saved, figure(page, result, f"pinned-{i + 1}", saved.name, False), ""))
    return shown


ITEM = "/admin/reports/{report_id}"
VIEWS = [
    View("/admin/reports", list_reports, "reports"),
    View("/admin/reports/new", build_report, "reports"),
    View("/admin/reports/new.csv", build_csv, "reports"),
    View("/admin/reports/save", save_report, "reports", ("POST",)),
    View(ITEM, show_report, "reports"),
    View(ITEM + "/report.csv", saved_csv, "reports"),
    View(ITEM + "/pin", pin_report, "reports", ("POST",)),
    View(ITEM + "/unpin", unpin_report, "reports", ("POST",)),
    View(ITEM + "/delete", delete_report, "reports", ("POST",)),
]
