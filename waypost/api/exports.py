"""/api/activities/export, /api/contacts/export and /api/groups/{id}/members/export: files
streamed as they are read (docs/data-lifecycle.md#exports)."""

from __future__ import annotations

from collections.abc import Iterator

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.services.export_formats import MEDIA_TYPES
from waypost.services.exports import (
    ActivityExportQuery,
    ContactExportQuery,
    Export,
    MemberExportQuery,
)

PRODUCES = tuple(MEDIA_TYPES.values())


class ExportResponse(StreamingResponse):
    """A streamed export whose chunks are closed once the response ends, sent or not: a
    download cut short ends the export's reads (and a worker process it started) at once,
    not when the garbage collector comes across it."""

    def __init__(self, chunks: Iterator[bytes], media_type: str, filename: str) -> None:
        super().__init__(
            chunks,
            media_type=media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # No thread is in the generator by now: a cancelled wait for a chunk waits for
            # its thread. Closing it may wait for a page being read, so in a thread too.
            close = getattr(self._chunks, "close", None)
            if close is not None:
                await run_in_threadpool(close)


def streamed(export: Export) -> StreamingResponse:
    """The export as a download; its pages are read and encoded while it is sent."""
    return ExportResponse(export.chunks(), export.media_type, export.filename)


def export_activities(call: Call[None, ActivityExportQuery]) -> StreamingResponse:
    return streamed(call.hub.exports.activities_export(call.query, call.extra))


def export_contacts(call: Call[None, ContactExportQuery]) -> StreamingResponse:
    return streamed(call.hub.exports.contacts_export(call.query))


def export_group_members(call: Call[None, MemberExportQuery]) -> StreamingResponse:
    group = parse_uuid(call.path["group_id"], "group")
    return streamed(call.hub.exports.members_export(group, call.query))


FORMATS = (
    "format=ndjson (one item a line, as the list shows it), csv (a header, one line per item) "
    "or parquet (typed columns; needs pyarrow on the server, else 400 parquet_unavailable)."
)
OPERATIONS = [
    Operation(
        "GET",
        "/api/activities/export",
        export_activities,
        "Export the activity log's activities as a file, with the log's filters",
        "Activities",
        query=ActivityExportQuery,
        produces=PRODUCES,
        description=FORMATS
        + " With type, CSV and Parquet have a column per field of the type (fields.<name>).",
    ),
    Operation(
        "GET",
        "/api/contacts/export",
        export_contacts,
        "Export the contacts a search finds (every contact without q) as a file",
        "Contacts",
        query=ContactExportQuery,
        produces=PRODUCES,
        description=FORMATS,
    ),
    Operation(
        "GET",
        "/api/groups/{group_id}/members/export",
        export_group_members,
        "Export a group's members, with their emails and names, as a file",
        "Contact groups",
        query=MemberExportQuery,
        produces=PRODUCES,
        errors=(404,),
        description=FORMATS,
    ),
]
