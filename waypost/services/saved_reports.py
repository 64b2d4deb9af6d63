"""Saved reports: a report definition kept by name, shared by every user, and the reports
pinned to the dashboard (docs/admin-ui.md#reports, docs/admin-api.md#saved-reports).

A definition is checked when it is saved as the report service checks one it runs
(:func:`waypost.services.report_queries.resolve`: the range, the options of its kind, the
types, fields, channels and group it names), errors naming ``definition.<property>``. A
report saved as ``rolling`` keeps the length of its range and ends it on the day it is run, in
its time zone, so that "the last 30 days" stays the last 30 days.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from waypost.clock import Clock, SystemClock
from waypost.domain.display_names import DisplayName
from waypost.domain.report_definitions import ReportDefinition, time_zone
from waypost.error_words import quoted
from waypost.errors import ApiError, conflict, not_found
from waypost.ids import new_id
from waypost.pagination import ListQuery, Page, cursor_id, page_by_id
from waypost.services.report_queries import resolve
from waypost.store import Store
from waypost.store.schema import saved_reports

Name = DisplayName
CreatorKind = Literal["key", "user"]
# How many reports the dashboard shows at most, below its own charts.
MAX_PINNED = 12


class Creator(msgspec.Struct, frozen=True):
    """Who saved a report first: an admin key or a user of the admin UI, by id."""

    kind: CreatorKind
    id: uuid.UUID | None


class SavedReportCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A report to keep: its name, its definition (as ``POST /api/reports/run`` takes it),
    whether its range rolls forward to end on the day it is run, and whether the dashboard
    shows it."""

    name: Name
    definition: ReportDefinition
    rolling: bool = False
    on_dashboard: bool = False


class SavedReportUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change of a saved report: what is left out stays."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    definition: ReportDefinition | msgspec.UnsetType = msgspec.UNSET
    rolling: bool | msgspec.UnsetType = msgspec.UNSET
    on_dashboard: bool | msgspec.UnsetType = msgspec.UNSET


class SavedReport(msgspec.Struct):
    """A saved report."""

    id: uuid.UUID
    name: str
    definition: ReportDefinition
    rolling: bool
    on_dashboard: bool
    created_by: Creator
    created_at: dt.datetime
    updated_at: dt.datetime


def saved_report_of(row: Any) -> SavedReport:
    """A saved report from its row."""
    return SavedReport(
        id=row.id,
        name=row.name,
        definition=msgspec.convert(row.definition, ReportDefinition),
        rolling=bool(row.rolling),
        on_dashboard=row.dashboard_position is not None,
        created_by=Creator(row.created_by_kind, row.created_by_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def rolled(definition: ReportDefinition, today: dt.date) -> ReportDefinition:
    """The definition with its range moved to end on ``today``, its length kept."""
    length = definition.until - definition.since
    return msgspec.structs.replace(definition, since=today - length, until=today)


class SavedReportService:
    """Saved reports on the store."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock if clock is not None else SystemClock()

    def _checked(self, definition: ReportDefinition) -> ReportDefinition:
        try:
            with self.store.read() as conn:
                resolve(conn, definition)
        except ApiError as exc:
            field = f"definition.{exc.field}" if exc.field else "definition"
            raise ApiError(exc.status, exc.code, exc.message, field) from None
        return definition

    def create(self, body: SavedReportCreate, creator: Creator) -> SavedReport:
        """Save a report once its definition is one the report API runs."""
        definition = self._checked(body.definition)
        report_id = new_id()
        now = self.clock.now()
        try:
            with self.store.write() as conn:
                position = _next_position(conn) if body.on_dashboard else None
                conn.execute(
                    saved_reports.insert().values(
                        id=report_id,
                        name=body.name,
                        definition=msgspec.to_builtins(definition),
                        rolling=body.rolling,
                        created_by_kind=creator.kind,
                        created_by_id=creator.id,
                        dashboard_position=position,
                        created_at=now,
                        updated_at=now,
                    )
                )
                return self._get(conn, report_id)
        except IntegrityError:
            raise conflict(f"A report named {quoted(body.name)} exists already.", "name") from None

    def update(self, report_id: uuid.UUID, body: SavedReportUpdate) -> SavedReport:
        """Change a saved report; a new definition is checked as a new one is."""
        if not isinstance(body.definition, msgspec.UnsetType):
            self._checked(body.definition)
        try:
            with self.store.write() as conn:
                current = self._get(conn, report_id)
                values: dict[str, Any] = {"updated_at": self.clock.now()}
                if not isinstance(body.name, msgspec.UnsetType):
                    values["name"] = body.name
                if not isinstance(body.definition, msgspec.UnsetType):
                    values["definition"] = msgspec.to_builtins(body.definition)
                if not isinstance(body.rolling, msgspec.UnsetType):
                    values["rolling"] = body.rolling
                if not isinstance(body.on_dashboard, msgspec.UnsetType):
                    if body.on_dashboard and not current.on_dashboard:
                        values["dashboard_position"] = _next_position(conn)
                    elif not body.on_dashboard:
                        values["dashboard_position"] = None
                conn.execute(
                    saved_reports.update().where(saved_reports.c.id == report_id).values(**values)
                )
                return self._get(conn, report_id)
        except IntegrityError:
            raise conflict("A report with that name exists already.", "name") from None

    def delete(self, report_id: uuid.UUID) -> None:
        """Delete a saved report (the dashboard no longer shows it)."""
        with self.store.write() as conn:
            self._get(conn, report_id)
            conn.execute(saved_reports.delete().where(saved_reports.c.id == report_id))

    def get(self, report_id: uuid.UUID) -> SavedReport:
        """One saved report, or a 404."""
        with self.store.read() as conn:
            return self._get(conn, report_id)

    def list_page(self, query: ListQuery) -> Page[SavedReport]:
        """The saved reports in id order (the order they were saved), a page at a time."""
        stmt = sa.select(saved_reports).order_by(saved_reports.c.id).limit(query.limit + 1)
        if (after := cursor_id(query.cursor)) is not None:
            stmt = stmt.where(saved_reports.c.id > after)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        return page_by_id([saved_report_of(r) for r in rows], query.limit, lambda s: s.id)

    def pinned(self) -> list[SavedReport]:
        """The reports the dashboard shows, in the order they were added to it."""
        s = saved_reports
        stmt = (
            sa.select(s)
            .where(s.c.dashboard_position.is_not(None))
            .order_by(s.c.dashboard_position, s.c.id)
            .limit(MAX_PINNED)
        )
        with self.store.read() as conn:
            return [saved_report_of(r) for r in conn.execute(stmt).all()]

    def definition_to_run(self, report: SavedReport) -> ReportDefinition:
        """What running the report asks: its definition, moved to end today (in the report's
        time zone) if it rolls."""
        if not report.rolling:
            return report.definition
        zone = time_zone(report.definition.time_zone)
        return rolled(report.definition, self.clock.now().astimezone(zone).date())

    def _get(self, conn: Connection, report_id: uuid.UUID) -> SavedReport:
        row = conn.execute(sa.select(saved_reports).where(saved_reports.c.id == report_id)).first()
        if row is None:
            raise not_found("saved report")
        return saved_report_of(row)


def _next_position(conn: Connection) -> int:
    s = saved_reports
    count, highest = conn.execute(
        sa.select(sa.func.count(s.c.dashboard_position), sa.func.max(s.c.dashboard_position))
    ).one()
    if count >= MAX_PINNED:
        raise conflict(
            f"The dashboard shows at most {MAX_PINNED} reports; remove one from it first.",
            "on_dashboard",
        )
    return 1 if highest is None else int(highest) + 1


__all__ = [
    "Creator",
    "SavedReport",
    "SavedReportCreate",
    "SavedReportService",
    "SavedReportUpdate",
    "rolled",
]
