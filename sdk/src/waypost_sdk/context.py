"""The current contact of a web request, in a context variable the middleware sets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

MAX_URL = 2048


@dataclass(frozen=True)
class RequestContext:
    """What the middleware knows about the request being handled."""

    contact: str | None
    """The visitor's contact id, when their cookie level allows tracking."""
    url: str | None = None
    """The request's absolute URL, when it is one Waypost accepts."""
    referrer: str | None = None


request_context: ContextVar[RequestContext | None] = ContextVar("waypost_request", default=None)
"""Set by the middleware for each request; read it through :func:`current_request`."""


def current_request() -> RequestContext | None:
    """The request context set by the middleware (or :func:`use_contact`), if any."""
    return request_context.get()


def current_contact() -> str | None:
    """The current visitor's contact id, or ``None`` when there is none or it is not tracked."""
    context = request_context.get()
    return context.contact if context is not None else None


@contextmanager
def use_contact(
    contact: str | uuid.UUID | None, url: str | None = None, referrer: str | None = None
) -> Iterator[RequestContext]:
    """Make ``contact`` the current contact inside the block, e.g. in a background job that
    knows whom it works for, or in a framework without the middleware."""
    context = RequestContext(
        str(uuid.UUID(str(contact))) if contact is not None else None,
        web_url(url),
        web_url(referrer),
    )
    token = request_context.set(context)
    try:
        yield context
    finally:
        request_context.reset(token)


def web_url(url: str | None) -> str | None:
    """``url`` if Waypost would take it (absolute http or https, at most 2048 characters)."""
    if url is None or len(url) > MAX_URL:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        return None
    return url
