"""The ingest routes as operations, for the OpenAPI document (they are served as bare ASGI)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from waypost.api.routing import Operation, documented
from waypost.domain.segment import Message
from waypost.ingest.activities import ActivityIn
from waypost.ingest.browser import (
    ActivityAnswer,
    ConsentAnswer,
    ConsentBody,
    IdentifyAnswer,
    IdentifyBody,
)
from waypost.ingest.tracking import AgreeBody, ConsentTextOut, IsAgreedOut, ResultsOut
from waypost.services.contacts import ContactCreated


class TrackingRequest(msgspec.Struct):
    """``POST /tracking/activities``: property names match case-insensitively."""

    channel: uuid.UUID
    contact: uuid.UUID
    activities: list[ActivityIn]


class BrowserActivityRequest(msgspec.Struct, rename="camel"):
    """``POST /browser/activity``: ``cookieLevel`` is none, essential, visitor or all."""

    contact: uuid.UUID
    cookie_level: str
    activity: ActivityIn


class SegmentBatch(msgspec.Struct, rename="camel"):
    """``/v1/batch``: Segment messages (track, identify, page, screen, group, alias)."""

    batch: list[Message]
    sent_at: str | None = None
    write_key: str | None = None


class SegmentCall(Message, rename="camel"):
    """A single Segment call (``/v1/track``, ...): the route sets ``type``; any value sent is
    replaced."""

    type: Any = None


class SegmentSuccess(msgspec.Struct):
    success: bool


SEGMENT = "Segment-compatible API"
TRACKING = "Tracking (Kentico-compatible; also under /Kentico.Tracking)"
BROWSER = "Browser tracking"
ALIAS = "The same route answers under /Kentico.Tracking."


def ingest_operations() -> list[Operation]:
    return [
        documented(
            "GET",
            "/tracking/consents/{consent}",
            "tracking_consent_text",
            "A consent's short and full text (languageName=, else the channel's default)",
            TRACKING,
            response=ConsentTextOut,
            auth="tracking",
            errors=(404,),
            description=ALIAS,
        ),
        documented(
            "POST",
            "/tracking/contacts",
            "tracking_create_contact",
            "Create an anonymous contact",
            TRACKING,
            response=ContactCreated,
            auth="tracking",
            description=ALIAS,
        ),
        documented(
            "POST",
            "/tracking/contacts/{contact}/consents/{consent}",
            "tracking_agree",
            "Agree to (agree: true) or revoke a consent",
            TRACKING,
            body=AgreeBody,
            response=IsAgreedOut,
            auth="tracking",
            errors=(404,),
            description=ALIAS,
        ),
        documented(
            "GET",
            "/tracking/contacts/{contact}/consents/{consent}",
            "tracking_is_agreed",
            "Whether a contact has a current agreement",
            TRACKING,
            response=IsAgreedOut,
            auth="tracking",
            errors=(404,),
            description=ALIAS,
        ),
        documented(
            "POST",
            "/tracking/activities",
            "tracking_log_activities",
            "Log activities: one result per activity, in order",
            TRACKING,
            body=TrackingRequest,
            response=ResultsOut,
            status=207,
            auth="tracking",
            errors=(404,),
            description=ALIAS + " See docs/tracking-api.md.",
        ),
        documented(
            "POST",
            "/browser/consent",
            "browser_consent",
            "Give or revoke a consent from a page (creates the contact)",
            BROWSER,
            body=ConsentBody,
            response=ConsentAnswer,
            auth="publishable",
            errors=(404, 429),
            description=(
                "A first agreement (no contact) sent with an id is stored once: the same id "
                "sent again within a day answers with the contact the first one made. See "
                "docs/browser-tracking.md."
            ),
        ),
        documented(
            "POST",
            "/browser/activity",
            "browser_activity",
            "Log one client-side activity of the page's visitor",
            BROWSER,
            body=BrowserActivityRequest,
            response=ActivityAnswer,
            status=202,
            auth="publishable",
            errors=(404, 429),
        ),
        documented(
            "POST",
            "/browser/identify",
            "browser_identify",
            "Name the visitor by email (a valid identity hash merges contacts)",
            BROWSER,
            body=IdentifyBody,
            response=IdentifyAnswer,
            auth="publishable",
            errors=(404, 429),
        ),
        documented(
            "POST",
            "/v1/batch",
            "segment_batch",
            "Segment batch: up to 500 KB, 32 KB per message",
            SEGMENT,
            body=SegmentBatch,
            response=SegmentSuccess,
            auth="segment",
            description="Basic auth with the tracking key as user name, or writeKey. "
            "See docs/segment.md.",
        ),
        *(
            documented(
                "POST",
                f"/v1/{kind}",
                f"segment_{kind}",
                f"Segment {kind} call",
                SEGMENT,
                body=SegmentCall,
                response=SegmentSuccess,
                auth="segment",
            )
            for kind in ("track", "identify", "page", "screen", "group", "alias")
        ),
    ]
