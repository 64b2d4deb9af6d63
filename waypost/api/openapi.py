"""The OpenAPI 3.1 document, generated from the declared operations, and the docs page."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from waypost.errors import ErrorBody
from waypost.openapi_types import Documented

PATH_PARAM = re.compile(r"{([a-z_]+)}")

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    207: "Multi-status: one result per item, in order",
    208: "Already stored (same id)",
    405: "Method not allowed",
    400: "Bad input: the body, a field or a parameter is wrong",
    401: "No API key, or one that is not known",
    403: "The key is disabled or not allowed here",
    404: "Not found",
    409: "Conflict: a duplicate name, or a change that existing data forbids",
    413: "Over a configured limit",
    415: "Not JSON",
    429: "Rate limited",
    503: "Storage unavailable; retry after the Retry-After seconds",
}

REF = "#/components/schemas/{name}"

SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "tracking": [{"trackingKey": []}],
    "publishable": [{"publishableKey": []}],
    "segment": [{"writeKey": []}],
    "posthog": [{"posthogKey": []}],
    "snowplow": [{"snowplowKey": []}],
    "marketo": [{"trackingKey": []}, {"marketoToken": []}],
}


def openapi_document(
    operations: Sequence[Documented], *, title: str, version: str, description: str
) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for op in operations:
        types.extend(t for t in (op.body, op.query, op.response) if t is not None)
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    _mark_datetimes(types, components)
    ref_of = {repr(t): r for t, r in zip(types, refs, strict=True)}
    error_ref = ref_of[repr(ErrorBody)]

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op, components),
            "responses": {},
        }
        if op.description:
            item["description"] = op.description
        if op.auth != "admin":
            item["security"] = SECURITY[op.auth]
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_of[repr(op.body)]}},
            }
        success: dict[str, Any] = {"description": STATUS_TEXT.get(op.status, "OK")}
        # Ingest routes may answer a script or an image (waypost/transports/routes.py).
        media = getattr(op, "media_type", "application/json")
        if op.response is not None:
            success["content"] = {media: {"schema": ref_of[repr(op.response)]}}
        elif op.produces:
            success["content"] = {
                produced.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                for produced in op.produces
            }
        elif media != "application/json":
            success["content"] = {media: {"schema": {"type": "string", "format": "binary"}}}
        item["responses"][str(op.status)] = success
        errors = set(op.errors) | {503}
        if op.body is not None:
            errors |= {400, 413, 415}
        if op.query is not None:
            errors.add(400)
        if op.auth != "public":
            errors |= {401, 403}
        for status in sorted(errors):
            item["responses"][str(status)] = {
                "description": STATUS_TEXT[status],
                "content": {"application/json": {"schema": error_ref}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = item

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin key (wpa_...) for /api.",
                },
                "trackingKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A tracking key (wpt_...) of the channel, for /tracking.",
                },
                "writeKey": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Segment style: a tracking key as the user name.",
                },
                "posthogKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "api_key",
                    "description": "PostHog style: a tracking key (or a publishable key from "
                    "a page) as api_key or token, in the body or the query.",
                },
                "snowplowKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "aid",
                    "description": "Snowplow style: a tracking key (or a publishable key from "
                    "a page) as each event's application id, aid.",
                },
                "marketoToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "access_token",
                    "description": "Marketo style: a tracking key as access_token (or as a "
                    "bearer token).",
                },
                "publishableKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "A publishable key (wpp_...) of a website channel.",
                },
            },
        },
        "security": [{"bearerAuth": []}],
    }


def _parameters(op: Documented, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = components[op.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": _not_null(prop),
                }
            )
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its null alternative: a parameter is null when it is
    left out, while ``since=`` sends an empty string, which is refused."""
    options = schema.get("anyOf")
    if not options:
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if schema.get("default") is not None:
        rest["default"] = schema["default"]
    if len(kept) == 1:
        return {**rest, **kept[0]}
    return {**rest, "anyOf": kept}


def _mark_datetimes(types: Sequence[Any], components: dict[str, Any]) -> None:
    """Give datetime properties ``format: date-time``, which msgspec leaves out: without it the
    document would promise that any string is a datetime."""
    seen: set[type] = set()

    def walk(info: msgspec.inspect.Type) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            component = components.get(info.cls.__name__)
            for f in info.fields:
                walk(f.type)
                if component is not None and component.get("title") == info.cls.__name__:
                    _mark(component["properties"].get(f.encode_name), f.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                walk(member)
        elif isinstance(info, msgspec.inspect.Metadata):
            walk(info.type)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.DictType)):
            walk(getattr(info, "item_type", None) or info.value_type)  # type: ignore[union-attr]

    for info in msgspec.inspect.multi_type_info(types):
        walk(info)


def _mark(schema: dict[str, Any] | None, info: msgspec.inspect.Type) -> None:
    if schema is None:
        return
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.DateTimeType):
        schema["format"] = "date-time"
    elif isinstance(info, msgspec.inspect.UnionType):
        for option in schema.get("anyOf", []):
            if option.get("type") == "string" and any(
                isinstance(t, msgspec.inspect.DateTimeType) for t in info.types
            ):
                option["format"] = "date-time"


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Waypost API</title>
<link rel="icon" href="/favicon.ico" sizes="16x16 32x32">
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/start.js"></script>
</body>
</html>
"""

# A file of its own, not inline: the page's Content-Security-Policy runs no inline script.
# validatorUrl: null, or Swagger UI fetches a badge from validator.swagger.io.
# persistAuthorization: false, or the key given to "Authorize" stays in localStorage, where any
# script of this origin (the admin UI's) could read it; it now lasts until the tab is closed.
DOCS_SCRIPT = """window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#docs",
  deepLinking: true, persistAuthorization: false, validatorUrl: null});
"""
