"""The ingest route table: every transport's routes, one entry each, from which both the
dispatch (waypost/transports/router.py) and the OpenAPI document (``/api/openapi.json``) are
built.

An entry names its method, path, transport and endpoint, the paths it also answers under
(``/Kentico.Tracking/...``, Segment's short forms) and what the document says of it. Adding
or removing a route is adding or removing its entry; a new transport is a
:class:`~waypost.transports.frame.Transport` and a helper that fills in its common fields.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from waypost.domain.segment import Message
from waypost.openapi_types import Auth
from waypost.pipeline.prepare import ActivityIn
from waypost.services.contacts import ContactCreated
from waypost.transports.browser import (
    ActivityAnswer,
    BrowserApp,
    ConsentAnswer,
    ConsentBody,
    IdentifyAnswer,
    IdentifyBody,
)
from waypost.transports.frame import Answer, IngestRequest, Transport
from waypost.transports.marketo import MarketoAnswer, MarketoApp, TokenAnswer, TokenQuery
from waypost.transports.posthog import (
    FlagsAnswer,
    PostHogApp,
    PostHogBatch,
    PostHogOk,
    RemoteConfig,
)
from waypost.transports.segment import CdnSettings, SegmentApp
from waypost.transports.snowplow import SnowplowApp, SnowplowEvent, SnowplowPayload
from waypost.transports.tracking import (
    AgreeBody,
    ConsentTextOut,
    IsAgreedOut,
    ResultsOut,
    TrackingApp,
)


@dataclass(frozen=True)
class IngestRoute:
    """One ingest route: served by ``endpoint`` of ``transport``, documented by the rest."""

    method: str
    path: str
    transport: type[Transport]
    # An endpoint of the transport class, given the transport when called.
    endpoint: Callable[[Any, IngestRequest], Awaitable[Answer]]
    operation_id: str
    summary: str
    tag: str
    auth: Auth
    body: type | None = None
    response: Any = None
    status: int = 200
    errors: Sequence[int] = ()
    produces: Sequence[str] = ()
    description: str = ""
    # Undocumented paths of the same route.
    aliases: tuple[str, ...] = ()
    query: type | None = None
    # The success answer's media type when it is not JSON (a script, an image).
    media_type: str = "application/json"


# -- the request shapes as documented (the transports decode them in parts) --------------------


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


# A batch's messages are JSON objects of any shape as far as the body goes: one that is not a
# Segment message (a field of the wrong type, a number out of range) is kept as a rejected
# activity and the others stored, as Segment's SDKs expect (docs/segment.md).
SegmentMessages = Annotated[
    list[dict[str, Any]],
    msgspec.Meta(
        description="Segment messages (track, identify, page, screen, group, alias), each "
        "shaped as the body of /v1/track and the others (SegmentCall). A message that is not "
        "one is kept as a rejected activity and the rest stored: only a batch whose messages "
        "are not all JSON objects is refused."
    ),
]


class SegmentBatch(msgspec.Struct, rename="camel"):
    """``/v1/batch``: Segment messages (track, identify, page, screen, group, alias)."""

    batch: SegmentMessages
    sent_at: str | None = None
    write_key: str | None = None


class SegmentCall(Message, rename="camel"):
    """A single Segment call (``/v1/track``, ...): the route sets ``type``; any value sent is
    replaced."""

    type: Any = None


class SegmentSuccess(msgspec.Struct):
    success: bool


class MarketoRecord(msgspec.Struct, rename="camel"):
    """One Marketo activity: ``leadId`` (integer), ``activityTypeId`` (the type's number),
    ``activityDate`` (ISO 8601 with an offset), ``primaryAttributeValue`` and ``attributes``
    (``[{"name" or "apiName", "value"}]``). A record that breaks these rules is skipped, with
    its reasons, and kept as a rejected activity; the others are still added."""

    lead_id: Any = None
    activity_type_id: Any = None
    activity_date: Any = None
    primary_attribute_value: Any = None
    attributes: Any = None


class MarketoRequest(msgspec.Struct):
    """``POST /rest/v1/activities/external.json``: 1 to 300 records (more is a 413)."""

    input: list[MarketoRecord]


# -- the table ----------------------------------------------------------------------------------

SEGMENT = "Segment-compatible API"
POSTHOG = "PostHog-compatible capture"
SNOWPLOW = "Snowplow-compatible collector"
MARKETO = "Marketo-compatible custom activities"
TRACKING = "Tracking (Kentico-compatible; also under /Kentico.Tracking)"
BROWSER = "Browser tracking"
ALIAS = "The same route answers under /Kentico.Tracking."


def tracking(
    method: str,
    path: str,
    endpoint: Callable[[TrackingApp, IngestRequest], Awaitable[Answer]],
    **doc: Any,
) -> IngestRoute:
    """A route of the tracking API, also under /Kentico.Tracking (Kentico's path)."""
    doc.setdefault("description", ALIAS)
    kentico = "/Kentico.Tracking" + path.removeprefix("/tracking")
    return IngestRoute(
        method,
        path,
        TrackingApp,
        endpoint,
        tag=TRACKING,
        auth="tracking",
        **doc,
        aliases=(kentico,),
    )


def browser(
    path: str, endpoint: Callable[[BrowserApp, IngestRequest], Awaitable[Answer]], **doc: Any
) -> IngestRoute:
    """A route of the browser endpoints (all POST)."""
    errors = (404, 429)
    return IngestRoute(
        "POST", path, BrowserApp, endpoint, tag=BROWSER, auth="publishable", errors=errors, **doc
    )


def segment_call(kind: str, short: str) -> IngestRoute:
    """Segment's single call of ``kind``, also under analytics.js's ``short`` path."""
    return IngestRoute(
        "POST",
        f"/v1/{kind}",
        SegmentApp,
        functools.partial(SegmentApp.call, kind=kind),
        f"segment_{kind}",
        f"Segment {kind} call",
        SEGMENT,
        "segment",
        body=SegmentCall,
        response=SegmentSuccess,
        # From a page, past its address's hourly cap on rejected activities.
        errors=(429,),
        aliases=(f"/v1/{short}",),
    )


def posthog_capture(path: str, operation_id: str) -> IngestRoute:
    """A PostHog capture path (also without its trailing slash)."""
    return IngestRoute(
        "POST",
        path,
        PostHogApp,
        PostHogApp.capture,
        operation_id,
        f"PostHog events ({path})",
        POSTHOG,
        "posthog",
        body=PostHogBatch,
        response=PostHogOk,
        errors=(429,),
        description="The key is api_key or token in the body: a tracking key, or a publishable "
        "key from a page of the channel's origins. See docs/collectors.md.",
        aliases=(path.rstrip("/"),),
    )


def posthog_static(
    path: str,
    endpoint: Callable[[PostHogApp, IngestRequest], Awaitable[Answer]],
    operation_id: str,
    summary: str,
    response: Any,
    **doc: Any,
) -> IngestRoute:
    """What posthog-js asks for besides events: answered with nothing switched on."""
    return IngestRoute(
        doc.pop("method", "POST"),
        path,
        PostHogApp,
        endpoint,
        operation_id,
        summary,
        POSTHOG,
        "public",
        response=response,
        **doc,
    )


INGEST_ROUTES: tuple[IngestRoute, ...] = (
    tracking(
        "GET",
        "/tracking/consents/{consent}",
        TrackingApp.consent_text,
        operation_id="tracking_consent_text",
        summary="A consent's short and full text (languageName=, else the channel's default)",
        response=ConsentTextOut,
        errors=(404,),
    ),
    tracking(
        "POST",
        "/tracking/contacts",
        TrackingApp.create_contact,
        operation_id="tracking_create_contact",
        summary="Create an anonymous contact",
        response=ContactCreated,
    ),
    tracking(
        "POST",
        "/tracking/contacts/{contact}/consents/{consent}",
        TrackingApp.agree,
        operation_id="tracking_agree",
        summary="Agree to (agree: true) or revoke a consent",
        body=AgreeBody,
        response=IsAgreedOut,
        errors=(404,),
    ),
    tracking(
        "GET",
        "/tracking/contacts/{contact}/consents/{consent}",
        TrackingApp.is_agreed,
        operation_id="tracking_is_agreed",
        summary="Whether a contact has a current agreement",
        response=IsAgreedOut,
        errors=(404,),
    ),
    tracking(
        "POST",
        "/tracking/activities",
        TrackingApp.activities,
        operation_id="tracking_log_activities",
        summary="Log activities: one result per activity, in order",
        body=TrackingRequest,
        response=ResultsOut,
        status=207,
        errors=(404,),
        description=ALIAS + " See docs/tracking-api.md.",
    ),
    browser(
        "/browser/consent",
        BrowserApp.consent,
        operation_id="browser_consent",
        summary="Give or revoke a consent from a page (creates the contact)",
        body=ConsentBody,
        response=ConsentAnswer,
        description=(
            "A first agreement (no contact) sent with an id is stored once: the same id "
            "sent again within a day answers with the contact the first one made. See "
            "docs/browser-tracking.md."
        ),
    ),
    browser(
        "/browser/activity",
        BrowserApp.activity,
        operation_id="browser_activity",
        summary="Log one client-side activity of the page's visitor",
        body=BrowserActivityRequest,
        response=ActivityAnswer,
        status=202,
    ),
    browser(
        "/browser/identify",
        BrowserApp.identify,
        operation_id="browser_identify",
        summary="Name the visitor by email (a valid identity hash merges contacts)",
        body=IdentifyBody,
        response=IdentifyAnswer,
    ),
    IngestRoute(
        "POST",
        "/v1/batch",
        SegmentApp,
        SegmentApp.batch,
        "segment_batch",
        "Segment batch: up to 500 KB, 32 KB per message",
        SEGMENT,
        "segment",
        body=SegmentBatch,
        response=SegmentSuccess,
        errors=(429,),
        description="Basic auth with the tracking key as user name, or writeKey. "
        "See docs/segment.md.",
        aliases=("/v1/b", "/v1/import"),
    ),
    IngestRoute(
        "GET",
        "/v1/projects/{write_key}/settings",
        SegmentApp,
        SegmentApp.project_settings,
        "segment_project_settings",
        "analytics.js's settings: it sends to this server with the write key",
        SEGMENT,
        "public",
        response=CdnSettings,
        errors=(401, 403, 404),
        description="For @segment/analytics-next with its cdnURL pointed at Waypost; the "
        "write key is a publishable key, from a page of its channel's origins. See "
        "docs/collectors.md.",
    ),
    segment_call("track", "t"),
    segment_call("identify", "i"),
    segment_call("page", "p"),
    segment_call("screen", "s"),
    segment_call("group", "g"),
    segment_call("alias", "a"),
    posthog_capture("/batch/", "posthog_batch"),
    posthog_capture("/capture/", "posthog_capture"),
    posthog_capture("/e/", "posthog_e"),
    posthog_capture("/i/v0/e/", "posthog_i_v0_e"),
    posthog_static(
        "/flags/",
        PostHogApp.flags,
        "posthog_flags",
        "PostHog feature flags: none",
        FlagsAnswer,
        aliases=("/flags", "/decide/", "/decide"),
    ),
    posthog_static(
        "/array/{key}/config",
        PostHogApp.config,
        "posthog_remote_config",
        "posthog-js's remote config: nothing switched on",
        RemoteConfig,
        method="GET",
        errors=(404,),
    ),
    posthog_static(
        "/array/{key}/config.js",
        PostHogApp.config_js,
        "posthog_remote_config_js",
        "posthog-js's remote config as a script",
        None,
        method="GET",
        errors=(404,),
        media_type="application/javascript",
    ),
    IngestRoute(
        "POST",
        "/com.snowplowanalytics.snowplow/tp2",
        SnowplowApp,
        SnowplowApp.post,
        "snowplow_tp2",
        "Snowplow events (payload_data): 200 with an empty body",
        SNOWPLOW,
        "snowplow",
        body=SnowplowPayload,
        errors=(429,),
        description="The key is each event's aid: a tracking key, or a publishable key from a "
        "page of the channel's origins. See docs/collectors.md.",
    ),
    IngestRoute(
        "GET",
        "/i",
        SnowplowApp,
        SnowplowApp.pixel,
        "snowplow_pixel",
        "One Snowplow event in the query string: a 1x1 GIF",
        SNOWPLOW,
        "snowplow",
        query=SnowplowEvent,
        errors=(429,),
        media_type="image/gif",
    ),
    IngestRoute(
        "POST",
        "/rest/v1/activities/external.json",
        MarketoApp,
        MarketoApp.external,
        "marketo_external_activities",
        "Marketo custom activities: up to 300, one result each (added or skipped)",
        MARKETO,
        "marketo",
        body=MarketoRequest,
        response=MarketoAnswer,
        errors=(413, 415),
        description="The access token is a tracking key, as Authorization: Bearer or "
        "access_token=. activityTypeId is the type's number. See docs/collectors.md.",
    ),
    IngestRoute(
        "GET",
        "/identity/oauth/token",
        MarketoApp,
        MarketoApp.token,
        "marketo_token",
        "Marketo's access token: the tracking key sent as client_secret",
        MARKETO,
        "public",
        query=TokenQuery,
        response=TokenAnswer,
        errors=(401, 403),
        description="Marketo's client credentials flow. See docs/collectors.md.",
    ),
)
