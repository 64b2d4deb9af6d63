"""/api/openapi.json and /api/docs: public, complete, and working offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from starlette.testclient import TestClient

from waypost.admin.rendering import SECURITY_HEADERS
from waypost.app import admin_operations, api_document, create_app
from waypost.openapi_types import Documented
from waypost.settings import load_settings
from waypost.transports.routes import INGEST_ROUTES

PATH_PARAM = re.compile(r"{([a-z_]+)}")


# The document and the docs page hold no data, so SQLite alone serves them here.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("openapi") / "waypost.db"
    app = create_app(load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"}))
    with TestClient(app) as client:
        answer = client.get("/api/openapi.json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert isinstance(body, dict)
    return body


def encode_names(struct: type) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(struct)}


def values_of(node: object, key: str) -> Iterator[str]:
    """Every text value of ``key`` anywhere in ``node`` (a JSON document)."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, str):
                yield value
            else:
                yield from values_of(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from values_of(item, key)


def refs(node: object) -> Iterator[str]:
    return values_of(node, "$ref")


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    assert isinstance(node, dict)
    return node


def test_the_document_is_openapi_3_1_and_public(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Waypost"
    assert document["info"]["version"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]


@SQLITE_ONLY
def test_the_served_document_is_the_one_the_code_builds(
    document: dict[str, Any], client: TestClient
) -> None:
    """It is built once per process: a second app serves the same document."""
    built = msgspec.json.decode(msgspec.json.encode(api_document()))
    assert document == built
    assert client.get("/api/openapi.json").json() == built


@SQLITE_ONLY
def test_no_key_is_needed_even_with_a_wrong_one(client: TestClient) -> None:
    assert client.get("/api/openapi.json").status_code == 200
    headers = {"Authorization": "Bearer wpa_not-a-key"}
    assert client.get("/api/openapi.json", headers=headers).status_code == 200
    assert client.get("/api/docs", headers=headers).status_code == 200


def all_operations() -> list[Documented]:
    return [*admin_operations(), *INGEST_ROUTES]


def test_every_operation_is_described(document: dict[str, Any]) -> None:
    operations = all_operations()
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert described == {(op.method, op.path) for op in operations}
    ids = [document["paths"][op.path][op.method.lower()]["operationId"] for op in operations]
    assert len(ids) == len(set(ids)), "operation ids must be unique"


@pytest.mark.parametrize("op", all_operations(), ids=lambda op: f"{op.method} {op.path}")
def test_each_operation_has_its_body_parameters_and_answers(
    document: dict[str, Any], op: Documented
) -> None:
    item = document["paths"][op.path][op.method.lower()]
    assert item["summary"] == op.summary
    responses = item["responses"]

    if op.body is not None:
        schema = item["requestBody"]["content"]["application/json"]["schema"]
        body = resolve(document, schema["$ref"])
        assert body["type"] == "object"
        assert set(body["properties"]) == encode_names(op.body)
        assert {"400", "413", "415"} <= set(responses)
    else:
        assert "requestBody" not in item

    path_params = {p["name"] for p in item["parameters"] if p["in"] == "path"}
    assert path_params == set(PATH_PARAM.findall(op.path))
    if path_params:
        assert "404" in responses
    if op.query is not None:
        query_params = {p["name"] for p in item["parameters"] if p["in"] == "query"}
        assert query_params == encode_names(op.query)

    success = responses[str(op.status)]
    media = getattr(op, "media_type", "application/json")
    if op.produces:
        # A file: each of its media types, without parameters (a charset).
        assert set(success["content"]) == {media.split(";")[0] for media in op.produces}
    elif op.status == 204 or (op.response is None and media == "application/json"):
        # No content: a 204, or Snowplow's collector answering 200 with an empty body.
        assert "content" not in success
    else:
        assert list(success["content"]) == [media]
        schema = success["content"][media]["schema"]
        assert "$ref" in schema or "type" in schema, schema
    if op.auth == "admin":
        assert {"401", "403"} <= set(responses)
        assert "security" not in item or item["security"]
    for status, answer in responses.items():
        if int(status) >= 400:
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    found = set(refs(document))
    assert found
    for ref in found:
        resolve(document, ref)


# Python's own: \A and \Z (ends of the text), named groups, inline flags. JSON Schema's patterns
# are ECMA-262 regular expressions, where none of them means the same, or anything.
PYTHON_ONLY = re.compile(r"\\[AZ]|\(\?P|\(\?[aiLmsux]")


def test_every_pattern_is_an_ecma_262_regular_expression(document: dict[str, Any]) -> None:
    found = list(values_of(document, "pattern"))
    assert found
    for pattern in found:
        assert not PYTHON_ONLY.search(pattern), pattern
        re.compile(pattern)


def test_the_error_shape_is_documented(document: dict[str, Any]) -> None:
    body = resolve(document, "#/components/schemas/ErrorBody")
    assert body["required"] == ["error"]
    detail = resolve(document, body["properties"]["error"]["$ref"])
    assert set(detail["properties"]) == {"code", "message", "field"}
    assert set(detail["required"]) == {"code", "message"}


def test_the_create_bodies_of_design_2_4(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    channel = schemas["ChannelCreate"]
    assert set(channel["required"]) == {"name", "kind"}
    assert channel["properties"]["kind"]["enum"] == ["headless", "website"]
    key = schemas["KeyCreate"]
    assert set(key["required"]) == {"access"}
    assert set(key["properties"]["access"]["enum"]) == {"tracking", "publishable", "admin"}
    activity_type = schemas["ActivityTypeCreate"]
    assert set(activity_type["required"]) == {"name"}
    assert {"code_name", "fields", "aliases", "rate_limits", "retention_days"} <= set(
        activity_type["properties"]
    )
    field_types = schemas["FieldSpec"]["properties"]["type"]["enum"]
    assert set(field_types) == {
        "text",
        "integer",
        "decimal",
        "boolean",
        "datetime",
        "url",
        "email",
        "phone",
    }


# -- the docs page --------------------------------------------------------------------------


class Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    @classmethod
    def parsed(cls, html: str) -> Assets:
        parser = cls()
        parser.feed(html)
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


@SQLITE_ONLY
def test_docs_page_loads_only_local_assets(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = Assets()
    parser.feed(page.text)
    assert parser.urls, "the page references no assets"
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme, f"{url} is not served by Waypost"
        assert not parts.netloc, f"{url} is not served by Waypost"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
    assert any(url.endswith(".js") for url in parser.urls)
    assert any(url.endswith(".css") for url in parser.urls)
    config = docs_scripts(client)
    assert "/api/openapi.json" in config
    assert not re.search(r"https?://", config)
    # Swagger UI would otherwise show a badge image from validator.swagger.io.
    assert re.search(r"validatorUrl:\s*null", config)


def docs_scripts(client: TestClient) -> str:
    """The docs page's own scripts, inline or served: all but Swagger UI's bundle."""
    parser = Assets.parsed(client.get("/api/docs").text)
    served = [
        client.get(url).text
        for url in parser.urls
        if url.endswith(".js") and not url.endswith("/swagger-ui-bundle.js")
    ]
    return "\n".join([*parser.scripts, *served])


@SQLITE_ONLY
def test_the_docs_page_has_the_admin_pages_security_headers(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value, name
    # The page's own script must then be served, not inline, or the policy would block it.
    assert not "".join(Assets.parsed(page.text).scripts).strip()


@SQLITE_ONLY
def test_the_docs_page_keeps_no_key_in_the_browser(client: TestClient) -> None:
    # Swagger UI's persistAuthorization would keep the admin key given to "Authorize" in
    # localStorage, where any script on this origin (the admin UI's) could read it.
    config = docs_scripts(client)
    assert "SwaggerUIBundle(" in config
    assert not re.search(r"persistAuthorization:\s*(true|!0|1)", config)


@SQLITE_ONLY
def test_the_stylesheet_loads_nothing_from_elsewhere(client: TestClient) -> None:
    css = client.get("/api/docs/assets/swagger-ui.css")
    assert css.status_code == 200
    for url in re.findall(r"url\(([^)]*)\)", css.text):
        assert not re.match(r"""["']?(https?:)?//""", url), url
    assert "@import" not in css.text


@SQLITE_ONLY
def test_unknown_assets_are_404(client: TestClient) -> None:
    answer = client.get("/api/docs/assets/nothing.js")
    assert answer.status_code == 404


@SQLITE_ONLY
def test_home_leads_to_the_docs(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code in (302, 307)
    assert answer.headers["location"] == "/api/docs"


@SQLITE_ONLY
def test_the_favicon_is_served_and_cached(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert '<link rel="icon" href="/favicon.ico"' in page.text
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content.startswith(b"\x00\x00\x01\x00")  # an ICO file
    assert icon.headers["cache-control"] == "public, max-age=86400"
    again = client.get("/favicon.ico", headers={"If-None-Match": icon.headers["etag"]})
    assert again.status_code == 304
    assert client.head("/favicon.ico").status_code == 200


# -- what the document promises is what the server accepts ------------------------------------


def query_parameters(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for param in operation["parameters"]:
                if param["in"] == "query":
                    yield f"{method.upper()} {path} {param['name']}", param["schema"]


def test_query_parameters_are_never_null(document: dict[str, Any]) -> None:
    # Left out, a parameter is null; sent empty (since=), it is an empty string, refused.
    for where, schema in query_parameters(document):
        assert {"type": "null"} not in schema.get("anyOf", []), where
        assert schema.get("default", "") is not None, where


def test_datetimes_are_documented_as_date_time(document: dict[str, Any]) -> None:
    params = dict(query_parameters(document))
    for name in ("since", "until"):
        assert params[f"GET /api/activities {name}"] == {"type": "string", "format": "date-time"}
    at = params["GET /api/groups/{group_id}/check/{contact_id} at"]
    assert at["format"] == "date-time"
    activity = document["components"]["schemas"]["Activity"]["properties"]
    assert activity["occurred_at"]["format"] == "date-time"
    group = document["components"]["schemas"]["Group"]["properties"]
    computed = [o for o in group["computed_at"]["anyOf"] if o.get("type") == "string"]
    assert computed == [{"type": "string", "format": "date-time"}]


@SQLITE_ONLY
def test_cursors_match_their_documented_pattern(
    document: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    cursors = [s for where, s in query_parameters(document) if where.endswith(" cursor")]
    assert cursors
    for schema in cursors:
        assert schema["minLength"] == 1
        assert schema["pattern"] == cursors[0]["pattern"]
    for n in range(3):
        answer = client.post(
            "/api/consents",
            json={"code_name": f"c{n}", "display_name": f"C{n}"},
            headers=admin_headers,
        )
        assert answer.status_code == 201, answer.text
    page = client.get("/api/consents", params={"limit": 1}, headers=admin_headers).json()
    assert re.fullmatch(cursors[0]["pattern"].strip("^$"), page["next"])


@SQLITE_ONLY
def test_languages_follow_their_pattern_and_origins_their_description(
    document: dict[str, Any], client: TestClient, admin_headers: dict[str, str]
) -> None:
    schemas = document["components"]["schemas"]
    channel = schemas["ChannelCreate"]["properties"]
    # An origin is described in words: what is taken (letter case, IPv6 literals, hosts in any
    # script) is more than a pattern could say without refusing some of it.
    assert "pattern" not in channel["allowed_origins"]["items"]
    assert "Origin" in channel["allowed_origins"]["items"]["description"]
    language = re.compile(channel["default_language"]["pattern"])
    texts = schemas["ConsentCreate"]["properties"]["texts"]["propertyNames"]
    assert texts["pattern"] == language.pattern
    for value in (
        "https://www.example.com",
        "http://localhost:8000/",
        "https://a-b.example",
        "http://[::1]:8080",
        "HTTPS://ä.example",
    ):
        answer = client.post(
            "/api/channels",
            json={"name": value, "kind": "website", "allowed_origins": [value]},
            headers=admin_headers,
        )
        assert answer.status_code == 201, answer.text
    for value in ("", "example.com", "https://example.com/path", "ftp://example.com", "*"):
        answer = client.post(
            "/api/channels",
            json={"name": f"x{value}", "kind": "website", "allowed_origins": [value]},
            headers=admin_headers,
        )
        assert answer.status_code == 400, answer.text
    for value in ("en", "en-US", "cs", "zh-Hant-TW"):
        assert language.match(value), value
    for value in ("00", "e", "en_US", "x-schemathesis-additional"):
        assert not language.match(value), value


def test_single_segment_calls_take_their_type_from_the_route(document: dict[str, Any]) -> None:
    # The server overwrites a single call's "type" with its route's, whatever was sent.
    for kind in ("track", "identify", "page", "screen", "group", "alias"):
        body = document["paths"][f"/v1/{kind}"]["post"]["requestBody"]
        schema = resolve(document, body["content"]["application/json"]["schema"]["$ref"])
        assert "type" not in schema["properties"]["type"], kind
        assert "anyOf" not in schema["properties"]["type"], kind
    # A batch's messages are objects of any shape: one that is not a Segment message is kept
    # as rejected and the others stored (a 200), so no message shape makes the batch invalid.
    batch = resolve(document, "#/components/schemas/SegmentBatch")["properties"]["batch"]
    assert batch["items"] == {"type": "object"}
    assert "SegmentCall" in batch["description"]
