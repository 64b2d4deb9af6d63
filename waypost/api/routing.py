"""Declared operations: one table drives both the routes and the OpenAPI document.

Each :class:`Operation` names its body, query and answer types (msgspec Structs). The router
decodes and validates the request into those types, authenticates, runs the handler in a worker
thread (handlers talk to the database synchronously) and encodes the answer. Handlers stay
thin: parse, call a service, answer.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from waypost.access.auth import api_principal
from waypost.api.date_times import check_date_times
from waypost.error_words import quoted
from waypost.errors import (
    ApiError,
    check_depth,
    check_no_nul,
    from_validation_error,
    holds_nul,
    nul_refused,
)
from waypost.openapi_types import Auth
from waypost.services.sessions import Session
from waypost.store import StorageUnavailable

if TYPE_CHECKING:
    from waypost.hub import Hub
    from waypost.services.keys import Principal

B = TypeVar("B")
Q = TypeVar("Q")

JSON_TYPES = ("application/json", "text/json")


@dataclass(frozen=True)
class Call(Generic[B, Q]):
    """What a handler gets: the hub of services, the decoded body and query, path values."""

    hub: Hub
    body: B
    query: Q
    path: Mapping[str, str]
    principal: Principal | None
    # Query parameters the query type leaves to the handler (see ``extra_prefix``).
    extra: Mapping[str, str] = field(default_factory=dict)
    # The user of the admin UI whose session cookie authenticated the call (no key then).
    user_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Operation:
    """One route: method, path, types, and the handler that serves it (admin and public
    routes only: the ingest routes are served by their transports)."""

    method: str
    path: str
    handler: Callable[[Call[Any, Any]], Any]
    summary: str
    tag: str
    body: type | None = None
    query: type | None = None
    response: Any = None
    status: int = 200
    auth: Auth = "admin"
    errors: Sequence[int] = field(default_factory=tuple)
    description: str = ""
    # Media types of a file the operation answers with instead of JSON (an export).
    produces: Sequence[str] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class NoBody(msgspec.Struct):
    """Placeholder for operations without a body or query."""


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        msgspec.json.encode(content),
        status_code=status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def error_response(error: ApiError) -> Response:
    return Response(
        error.body(),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers or None,
    )


def storage_unavailable() -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        "The database cannot be reached right now; nothing was stored. Retry shortly.",
        headers={"Retry-After": "1"},
    )


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"The body is over the limit of {limit} bytes per request."
    )


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, read no further than ``limit`` bytes: 413 as soon as it passes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(raw: bytes, content_type: str, body_type: type, limit: int) -> Any:
    """Decode a JSON body into ``body_type``, with the stable 4xx answers for bad input."""
    if len(raw) > limit:
        raise _too_large(limit)
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send JSON with 'Content-Type: application/json' (got {quoted(media)}).",
        )
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The body is empty; send a JSON object.")
    if holds_nul(raw):
        raise nul_refused("Text in the body")
    check_depth(raw)
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        # msgspec validates while it parses, so a body cut short after an unknown or wrong
        # property fails validation first; it is malformed JSON all the same.
        try:
            value = msgspec.json.decode(raw)
        except msgspec.ValidationError:
            # Well-formed JSON that no type takes (a number such as 1e400, out of any range):
            # the typed decode's error names the field.
            raise from_validation_error(exc, body_type) from None
        except msgspec.DecodeError as malformed:
            raise from_validation_error(malformed) from None
        if "got `float`" in str(exc):
            return _with_whole_numbers(value, body_type)
        raise from_validation_error(exc, body_type, value) from None
    except msgspec.DecodeError as exc:
        raise from_validation_error(exc) from None


def _with_whole_numbers(value: Any, body_type: type) -> Any:
    """JSON has one number type, so ``30.0`` is the integer 30, as the document's ``integer``
    says; msgspec refuses it for an ``int``. Such numbers are made ints (a ``float`` field takes
    an int just as well) and the body decoded again; ``30.5`` still fails as it did."""
    stack = [value] if isinstance(value, dict | list) else []
    while stack:  # no recursion: how deep a body is nested is for the size limits to decide
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(item, float) and item.is_integer():
                node[key] = int(item)
            elif isinstance(item, dict | list):
                stack.append(item)
    try:
        return msgspec.json.decode(msgspec.json.encode(value), type=body_type)
    except msgspec.ValidationError as still:
        # The whole numbers' own fault (1e300 where at most a million is taken) is the one to
        # tell; a fraction fails as it did.
        raise from_validation_error(still, body_type, value) from None


def split_query(
    params: Mapping[str, str], query_type: type
) -> tuple[dict[str, str], dict[str, str]]:
    """Parameters for the query type, and those under its ``extra_prefix`` (e.g. ``field.``)."""
    prefix: str | None = getattr(query_type, "extra_prefix", None)
    if not prefix:
        return dict(params), {}
    plain = {k: v for k, v in params.items() if not k.startswith(prefix)}
    extra = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    return plain, extra


def decode_query(params: Mapping[str, str], query_type: type) -> Any:
    check_no_nul(params.items())
    try:
        query: Any = msgspec.convert(dict(params), query_type, strict=False)
    except msgspec.ValidationError as exc:
        error = from_validation_error(exc, query_type)
        error.message = error.message.replace("field", "query parameter", 1)
        raise error from None
    # Lax conversion reads "null" as None, which only leaving the parameter out means.
    for encode_name, name in _parameter_names(query_type):
        if params.get(encode_name) == "null" and getattr(query, name) is None:
            raise ApiError(
                400,
                "invalid_field",
                f"{encode_name} does not take null; leave the parameter out instead.",
                encode_name,
            )
    return query


@functools.cache
def _parameter_names(query_type: type) -> tuple[tuple[str, str], ...]:
    """Each query parameter's name and its attribute's, worked out once per query type
    (``msgspec.structs.fields`` evaluates the type's annotations on every call)."""
    return tuple((f.encode_name, f.name) for f in msgspec.structs.fields(query_type))


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """A path identifier; anything that is not a UUID names nothing, so it is a 404."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", f"No {what} has the identifier {quoted(value)}.") from None


class OperationRoute(Route):
    """A route whose path parameters never take a literal path of another operation, so that
    ``GET /api/groups/validate`` is a wrong method of that path rather than a group id, and a
    405's ``Allow`` names only that path's methods."""

    def __init__(self, *args: Any, reserved: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reserved = frozenset(
            p for p in reserved if p != self.path and self.path_regex.match(p)
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.reserved and scope.get("path") in self.reserved:
            return Match.NONE, {}
        return super().matches(scope)


def build_routes(operations: Sequence[Operation], hub: Hub) -> list[Route]:
    """The routes of ``operations``; literal paths win over the parameters of others."""
    literal = frozenset(op.path for op in operations if "{" not in op.path)
    return [build_route(op, hub, literal) for op in operations]


def build_route(operation: Operation, hub: Hub, reserved: frozenset[str] = frozenset()) -> Route:
    body_type = operation.body
    query_type = operation.query
    limit = hub.settings.max_request_bytes

    async def endpoint(request: Request) -> Response:
        try:
            principal = None
            user_id = None
            if operation.auth == "admin":
                # A bearer admin key, or the session cookie of a user of the admin UI.
                caller = await api_principal(hub, request, operation.tag)
                if isinstance(caller, Session):
                    user_id = caller.user.id
                else:
                    principal = caller
            body: Any = None
            if body_type is not None:
                raw = await bounded_body(request, limit)
                body = decode_body(raw, request.headers.get("content-type", ""), body_type, limit)
                check_date_times(body, body_type)
            query: Any = None
            extra: dict[str, str] = {}
            if query_type is not None:
                # All of them, those left to the handler (field.<name>=...) too.
                check_no_nul(request.query_params.multi_items())
                plain, extra = split_query(request.query_params, query_type)
                query = decode_query(plain, query_type)
                check_date_times(query, query_type)
            call: Call[Any, Any] = Call(
                hub, body, query, request.path_params, principal, extra, user_id
            )
            result = await run_in_threadpool(operation.handler, call)
        except ApiError as exc:
            return error_response(exc)
        except StorageUnavailable:
            return error_response(storage_unavailable())
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        return json_response(result, operation.status)

    endpoint.__name__ = operation.operation_id
    return OperationRoute(operation.path, endpoint, methods=[operation.method], reserved=reserved)
