"""Waypost's Python SDK: log activities from Python code and web applications.

It needs only the standard library and httpx, so it can be installed in any application
without Waypost's server. See docs/python-sdk.md.

- :class:`Client`: log activities in the background (batched, retried, flushed at exit),
  create contacts, set consents.
- :class:`ActivityLogger` and :class:`CustomActivityData`: log a custom activity for the
  current contact of a web request, as Kentico's ``ICustomActivityLogger`` does.
- :class:`WaypostASGIMiddleware` and :class:`WaypostWSGIMiddleware`: find that contact from
  the browser tracker's cookies; :func:`current_contact` reads it.
"""

from waypost_sdk.client import Client
from waypost_sdk.context import RequestContext, current_contact, current_request, use_contact
from waypost_sdk.logger import ActivityLogger, CustomActivityData
from waypost_sdk.middleware import ContactCookies, WaypostASGIMiddleware, WaypostWSGIMiddleware
from waypost_sdk.models import ConsentText, Dropped, DropReason, Stats, WaypostError
from waypost_sdk.options import ClientOptions

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
