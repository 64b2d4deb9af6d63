"""What the OpenAPI document needs to know of an operation, whoever serves it.

The admin API's operations (waypost/api/routing.py) and the ingest routes
(waypost/transports/routes.py) both describe themselves this way, and the document
(waypost/api/openapi.py) is built from either without knowing which router serves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

# admin: an admin key; public: none; tracking: a tracking key (bearer); publishable: a
# publishable key in the ``key`` query parameter; segment: a tracking key as the Basic-auth
# user name or ``writeKey``; posthog: a tracking or publishable key as ``api_key`` (body or
# query); snowplow: a tracking or publishable key as each event's ``aid``; marketo: a
# tracking key as a bearer token or ``access_token``.
Auth = Literal[
    "admin", "public", "tracking", "publishable", "segment", "posthog", "snowplow", "marketo"
]


class Documented(Protocol):
    """One documented operation: method, path, body, query and answer types (msgspec
    Structs), the success status, the key it takes, the errors it may answer, and the media
    types of the file it answers with, when it answers with a file rather than JSON."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def operation_id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def body(self) -> type | None: ...
    @property
    def query(self) -> type | None: ...
    @property
    def response(self) -> Any: ...
    @property
    def status(self) -> int: ...
    @property
    def auth(self) -> Auth: ...
    @property
    def errors(self) -> Sequence[int]: ...
    @property
    def produces(self) -> Sequence[str]: ...
