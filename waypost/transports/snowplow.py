"""Snowplow's collector endpoints, as bare ASGI, so that Snowplow's trackers send to Waypost by
changing their collector's address (docs/collectors.md).

``POST /com.snowplowanalytics.snowplow/tp2`` takes a ``payload_data`` batch, ``GET /i`` one
event in the query string (the pixel), and pages get CORS with credentials (the browser
tracker sends its cookies). The key travels in each event's ``aid`` (the application id): a
tracking key from a server, a publishable key from a page of the channel's allowed origins
(the Origin, or the Referer's origin for a pixel). The answers are the collector's: 200 with
an empty body, and for ``GET /i`` a transparent 1x1 GIF, once everything is committed; a
storage outage is a 503, which the trackers retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from waypost.domain.collected import Collected, Unread
from waypost.domain.snowplow import (
    MAX_PARAMETERS,
    application_id,
    events_of_post,
    events_of_query,
    map_event,
)
from waypost.errors import ApiError
from waypost.ids import utcnow
from waypost.services.collectors import SNOWPLOW_IDS
from waypost.transports.collected import CollectorTransport
from waypost.transports.frame import Answer, Cors, IngestRequest, KeyRule

# The smallest transparent GIF, as Snowplow's collector answers its pixel.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"cache-control", b"no-cache, no-store, must-revalidate"),
]


# The shapes the OpenAPI document shows (waypost/transports/routes.py).


class SnowplowPayload(msgspec.Struct):
    """Snowplow's payload_data: events of the tracker protocol, each with the key in ``aid``."""

    schema: str
    data: list[dict[str, Any]]


class SnowplowEvent(msgspec.Struct):
    """``GET /i``: one event of the tracker protocol in the query string (the main ones)."""

    e: str
    aid: str | None = None
    eid: str | None = None
    url: str | None = None
    page: str | None = None
    refr: str | None = None
    uid: str | None = None
    duid: str | None = None
    dtm: str | None = None
    stm: str | None = None
    se_ca: str | None = None
    se_ac: str | None = None
    ue_px: str | None = None
    cx: str | None = None


class SnowplowApp(CollectorTransport):
    """Snowplow's collector: the key in ``aid``, from servers or pages."""

    keys = KeyRule(
        access="tracking",
        missing="Send the key as the application id (aid): a tracking key, or a publishable "
        "key from a page.",
        unknown="That key (aid) is not known.",
        disabled="That key (aid) is disabled.",
        wrong_access="{a_key} cannot send events; use a tracking or publishable key.",
        no_channel="The key's channel no longer exists.",
    )
    browser_keys = KeyRule(
        access="publishable",
        missing="",
        unknown="",
        disabled="That key (aid) is disabled.",
        wrong_access="",
        no_channel="Publishable keys work for website channels only.",
        channel_kind="website",
    )
    cors = Cors(
        methods=b"GET, POST, OPTIONS",
        headers=b"Content-Type, SP-Anonymous",
        foreign_origin="The origin {origin!r} is not an allowed origin of the key's channel.",
        credentials=True,
    )
    not_found = "No such route; see docs/collectors.md."
    kinds = SNOWPLOW_IDS
    source = "snowplow"

    async def post(self, request: IngestRequest) -> Answer:
        """``POST /com.snowplowanalytics.snowplow/tp2``: a batch of events."""
        events = events_of_post(await self.body(request))
        await self._collect(request, events)
        return 200, b"", []

    async def pixel(self, request: IngestRequest) -> Answer:
        """``GET /i``: one event in the query string."""
        query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            pairs = parse_qsl(
                query, keep_blank_values=True, max_num_fields=MAX_PARAMETERS, errors="strict"
            )
        except ValueError:
            # Too many parameters, or percent-escapes that are not UTF-8.
            raise ApiError(400, "invalid_field", "The query string is not an event.") from None
        await self._collect(request, events_of_query(pairs))
        return 200, PIXEL, PIXEL_HEADERS

    async def _collect(
        self, request: IngestRequest, events: Sequence[dict[str, Any] | Unread]
    ) -> None:
        key = application_id(events)
        now = utcnow()
        mapped: list[Collected] = []
        for event in events:
            found = map_event(event, now)
            if found is not None:
                mapped.append(found)
        await self.collect(request, key, mapped, now)
