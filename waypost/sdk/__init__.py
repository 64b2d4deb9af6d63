"""The Python SDK's former place: the SDK is its own distribution now, ``waypost-sdk``
(``sdk/`` in this repository, imported as ``waypost_sdk``; docs/python-sdk.md).

``waypost.sdk`` stays importable, as the same objects, for code written against it, where
``waypost-sdk`` is installed beside the server (the development install has both). New code
imports ``waypost_sdk``, which needs only httpx.
"""

from waypost_sdk import (
    ActivityLogger,
    Client,
    ClientOptions,
    ConsentText,
    ContactCookies,
    CustomActivityData,
    Dropped,
    DropReason,
    RequestContext,
    Stats,
    WaypostASGIMiddleware,
    WaypostError,
    WaypostWSGIMiddleware,
    current_contact,
    current_request,
    use_contact,
)

__all__ = [
    "ActivityLogger",
    "Client",
    "ClientOptions",
    "ConsentText",
    "ContactCookies",
    "CustomActivityData",
    "DropReason",
    "Dropped",
    "RequestContext",
    "Stats",
    "WaypostASGIMiddleware",
    "WaypostError",
    "WaypostWSGIMiddleware",
    "current_contact",
    "current_request",
    "use_contact",
]
