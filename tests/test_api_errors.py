"""Bad input on every admin operation gets its own 4xx, always in the one error shape.

The cases are generated from the operation table (``admin_operations()``), so a new route is
covered as soon as it is declared. Each test walks the operations as subtests, so a failure
names the operation while the suite stays fast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx2
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.types import Message

from waypost.api.routing import Operation
from waypost.app import admin_operations, create_app
from waypost.domain.playbooks import ActivityTrigger, EveryTime, WebhookAction
from waypost.hub import Hub
from waypost.pagination import encode_cursor
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.groups import GroupCreate
from waypost.services.keys import CreatedKey, KeyCreate, KeyUpdate
from waypost.services.playbooks import PlaybookCreate
from waypost.services.webhook_endpoints import WebhookEndpointCreate
from waypost.settings import Settings
from waypost.store.schema import consents, contacts

if TYPE_CHECKING:
    from tests.conftest import Tracker

ErrorCheck = Callable[..., dict[str, str]]

OPERATIONS = admin_operations()
PATH_PARAM = re.compile(r"{([a-z_]+)}")
LIMIT = 4096


def op_id(op: Operation) -> str:
    return f"{op.method} {op.path}"


def struct_fields(struct: type) -> list[msgspec.inspect.Field]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType), f"{struct} is not a msgspec Struct"
    return list(info.fields)


def required_names(struct: type) -> set[str]:
    return {f.encode_name for f in struct_fields(struct) if f.required}


BODY_OPS = [op for op in OPERATIONS if op.body is not None]
ITEM_OPS = [op for op in OPERATIONS if PATH_PARAM.search(op.path)]
QUERY_OPS = [op for op in OPERATIONS if op.query is not None]
ADMIN_OPS = [op for op in OPERATIONS if op.auth == "admin"]


def test_the_table_has_the_foundation_routes() -> None:
    declared = {op_id(op) for op in OPERATIONS}
    for resource, param in (("channels", "channel_id"), ("keys", "key_id")):
        base = f"/api/{resource}"
        assert {f"POST {base}", f"GET {base}", f"GET {base}/{{{param}}}"} <= declared
        assert {f"PATCH {base}/{{{param}}}", f"DELETE {base}/{{{param}}}"} <= declared
    types = "/api/activity-types/{type_id}"
    assert {f"POST {types}/enable", f"POST {types}/disable", f"DELETE {types}"} <= declared
    assert {"POST /api/keys/{key_id}/disable", "POST /api/activity-types"} <= declared
    assert len(declared) == len(OPERATIONS), "two operations share a method and path"


@pytest.fixture
def app_client(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[TestClient, dict[str, str], Hub]]:
    """A client of an app whose request limit is small, with an admin key's headers."""
    app = create_app(make_settings(max_request_bytes=LIMIT))
    with TestClient(app) as test_client:
        hub: Hub = app.state.hub
        key = hub.keys.create(KeyCreate(access="admin")).key
        yield test_client, {"Authorization": f"Bearer {key}"}, hub


@pytest.fixture
def samples(
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    make_type: Callable[..., ActivityType],
) -> dict[str, str]:
    """Existing objects for path parameters; parameters not listed get a random UUID."""
    channel = make_channel(kind="website")
    now = dt.datetime.now(dt.UTC)
    contact, consent = uuid.uuid4(), uuid.uuid4()
    with hub.store.write() as conn:
        conn.execute(
            contacts.insert().values(id=contact, attributes={}, created_at=now, updated_at=now)
        )
        conn.execute(
            consents.insert().values(
                id=consent,
                code_name="Sample",
                display_name="Sample",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
    group = hub.groups.create(
        GroupCreate(name="Sample", condition={"contact": {"field": "email", "exists": True}})
    )
    activity_type = make_type()
    endpoint = hub.webhook_endpoints.create(WebhookEndpointCreate(url="https://93.184.216.34/in"))
    playbook = hub.playbooks.create(
        PlaybookCreate(
            name="Sample",
            trigger=ActivityTrigger(type=activity_type.code_name),
            cadence=EveryTime(),
            actions=[WebhookAction(endpoint=endpoint.id)],
        )
    )
    return {
        "channel_id": str(channel.id),
        "key_id": str(make_key("tracking", channel.id).id),
        "type_id": str(activity_type.id),
        "endpoint_id": str(endpoint.id),
        "playbook_id": str(playbook.id),
        "contact_id": str(contact),
        "consent_id": str(consent),
        "group_id": str(group.id),
    }


def fill(path: str, values: dict[str, str]) -> str:
    return PATH_PARAM.sub(lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


def send(
    client: TestClient,
    op: Operation,
    path: str,
    headers: dict[str, str],
    content: bytes | None = None,
    content_type: str = "application/json",
    params: dict[str, str] | None = None,
) -> httpx2.Response:
    if content is None:
        return client.request(op.method, path, headers=headers, params=params)
    return client.request(
        op.method,
        path,
        content=content,
        headers={**headers, "Content-Type": content_type},
        params=params,
    )


# -- bodies -----------------------------------------------------------------------------------

MALFORMED = [b'{"name": ', b'{"surely_not": ', b"{'name': 'x'}", b"nul", b"\xff\xfe", b"", b"  "]
NOT_OBJECTS = [b"[]", b'"text"', b"42", b"null", b"true"]
# A nested array is the wrong type for every property the admin API declares.
WRONG = [[True]]


def test_bad_bodies(
    app_client: tuple[TestClient, dict[str, str], Hub],
    samples: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    client, headers, _ = app_client
    for op in BODY_OPS:
        assert op.body is not None
        path = fill(op.path, samples)
        with subtests.test(op_id(op), case="malformed JSON"):
            for content in MALFORMED:
                expect_error(send(client, op, path, headers, content), 400, "invalid_json")
        with subtests.test(op_id(op), case="not an object"):
            for content in NOT_OBJECTS:
                expect_error(send(client, op, path, headers, content), 400, "invalid_field")
        for field in struct_fields(op.body):
            if isinstance(field.type, msgspec.inspect.AnyType):
                continue
            name = field.encode_name
            with subtests.test(op_id(op), case="wrong type", field=name):
                content = json.dumps({name: WRONG}).encode()
                error = expect_error(send(client, op, path, headers, content), 400, "invalid_field")
                assert re.match(rf"{re.escape(name)}($|[.\[])", error.get("field", "")), error
        with subtests.test(op_id(op), case="unknown field"):
            content = json.dumps({"surely_not_a_field": 1}).encode()
            expect_error(
                send(client, op, path, headers, content),
                400,
                "unknown_field",
                "surely_not_a_field",
            )
        if required := required_names(op.body):
            with subtests.test(op_id(op), case="missing field"):
                error = expect_error(send(client, op, path, headers, b"{}"), 400, "missing_field")
                assert error.get("field") in required
        with subtests.test(op_id(op), case="not JSON"):
            for content_type in (
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/xml",
            ):
                answer = send(client, op, path, headers, b"{}", content_type)
                expect_error(answer, 415, "unsupported_media_type")
        with subtests.test(op_id(op), case="over the limit"):
            content = json.dumps({"name": "x" * LIMIT}).encode()
            error = expect_error(send(client, op, path, headers, content), 413, "payload_too_large")
            assert str(LIMIT) in error["message"]


def test_json_with_a_charset_is_json(client: TestClient, admin_headers: dict[str, str]) -> None:
    answer = client.post(
        "/api/channels",
        content=b'{"name": "x", "kind": "headless"}',
        headers={**admin_headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert answer.status_code == 201, answer.text


def test_a_body_at_the_limit_is_read(
    app_client: tuple[TestClient, dict[str, str], Hub], expect_error: ErrorCheck
) -> None:
    client, headers, _ = app_client
    body = json.dumps({"name": "", "kind": "headless"})
    content = json.dumps({"name": "x" * (LIMIT - len(body)), "kind": "headless"}).encode()
    assert len(content) == LIMIT
    # Read, decoded and judged on its content: a name this long is refused, but not as too big.
    expect_error(
        client.post("/api/channels", content=content, headers=headers), 400, "invalid_field", "name"
    )


def test_a_streamed_body_over_the_limit_is_not_read_to_its_end(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(max_request_bytes=LIMIT))
    hub: Hub = app.state.hub
    key = hub.keys.create(KeyCreate(access="admin")).key
    read = 0
    answer: list[Message] = []

    async def receive() -> Message:
        # No Content-Length: the server learns the size only by reading.
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b" " * LIMIT, "more_body": read < 1000}

    async def send(message: Message) -> None:
        answer.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/channels",
        "raw_path": b"/api/channels",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {key}".encode())],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        hub.close()
    assert answer[0]["status"] == 413
    assert read <= 2


# -- identifiers ------------------------------------------------------------------------------


# Bodies with required properties, valid apart from the identifier in the path.
VALID_BODIES = {
    "/api/webhook-endpoints/{endpoint_id}/replay": (
        b'{"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}'
    ),
}


def valid_body(op: Operation) -> bytes | None:
    if op.body is None:
        return None
    if op.path in VALID_BODIES:
        return VALID_BODIES[op.path]
    assert not required_names(op.body), f"give {op_id(op)} a valid body for the 404 tests"
    return b"{}"


def test_unknown_ids_are_404(
    client: TestClient,
    admin_headers: dict[str, str],
    samples: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    for op in ITEM_OPS:
        params = PATH_PARAM.findall(op.path)
        for param in params:
            # The other parameters name existing objects, so the unknown one is at fault.
            known = {k: v for k, v in samples.items() if k != param}
            with subtests.test(op_id(op), param=param, case="unknown"):
                answer = send(client, op, fill(op.path, known), admin_headers, valid_body(op))
                assert answer.status_code == 404, answer.text
                error = expect_error(answer, 404, answer.json()["error"]["code"])
                assert error["code"].endswith("not_found"), error
            for bad in ("not-a-uuid", "123", "wpa_abc", "%20"):
                with subtests.test(op_id(op), param=param, case=bad):
                    path = fill(op.path.replace(f"{{{param}}}", bad), known)
                    answer = send(client, op, path, admin_headers, valid_body(op))
                    expect_error(answer, 404, "not_found")


# -- queries ----------------------------------------------------------------------------------


def test_query_parameters(
    client: TestClient,
    admin_headers: dict[str, str],
    samples: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    def query(op: Operation, path: str, params: dict[str, str]) -> httpx2.Response:
        return send(client, op, path, admin_headers, valid_body(op), params=params)

    for op in QUERY_OPS:
        assert op.query is not None
        path = fill(op.path, samples)
        names = {f.encode_name for f in struct_fields(op.query)}
        with subtests.test(op_id(op), case="unknown parameter"):
            expect_error(
                client.request(op.method, path, params={"surely_not": "1"}, headers=admin_headers),
                400,
                "unknown_field",
                "surely_not",
            )
        if "limit" in names:
            with subtests.test(op_id(op), case="limit"):
                for limit in ("0", "1001", "-1", "many"):
                    expect_error(
                        query(op, path, {"limit": limit}),
                        400,
                        "invalid_field",
                        "limit",
                    )
                for limit in ("1", "1000"):
                    answer = query(op, path, {"limit": limit})
                    assert answer.status_code == 200, answer.text
                    assert set(answer.json()) >= {"data", "next"}
        if "cursor" in names:
            with subtests.test(op_id(op), case="cursor"):
                expect_error(
                    query(op, path, {"cursor": "garbage!"}),
                    400,
                    "invalid_field",
                    "cursor",
                )


def text_parameters(query: type) -> dict[str, int | None]:
    """The query type's text parameters, each with the most characters it takes."""
    found: dict[str, int | None] = {}
    for f in struct_fields(query):
        kinds = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        for kind in kinds:
            if isinstance(kind, msgspec.inspect.Metadata):  # a type with a description
                kind = kind.type
            if isinstance(kind, msgspec.inspect.StrType):
                found[f.encode_name] = kind.max_length
    return found


def test_every_text_query_parameter_has_a_longest_value() -> None:
    """A query value is otherwise bounded by the request line only (docs/admin-api.md)."""
    unbounded = [
        f"{op_id(op)} {name}"
        for op in QUERY_OPS
        for name, longest in text_parameters(op.query or type(None)).items()
        if longest is None
    ]
    assert unbounded == []


def test_a_query_value_over_its_longest_is_a_400(
    client: TestClient,
    admin_headers: dict[str, str],
    samples: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    for op in QUERY_OPS:
        assert op.query is not None
        path = fill(op.path, samples)
        for name, longest in text_parameters(op.query).items():
            assert longest is not None
            with subtests.test(op_id(op), parameter=name):
                params = {name: "a" * (longest + 1)}
                answer = send(client, op, path, admin_headers, valid_body(op), params=params)
                error = expect_error(answer, 400, "invalid_field", name)
                assert error["message"] == f"{name} holds at most {longest} characters."
                # At the most it takes, the value is read (a cursor of a's is then no cursor
                # this API gave out; any other value finds nothing).
                params = {name: "a" * longest}
                answer = send(client, op, path, admin_headers, valid_body(op), params=params)
                if answer.status_code == 400:
                    assert "holds at most" not in answer.json()["error"]["message"]
                else:
                    assert answer.status_code == 200, answer.text


def test_null_is_no_query_value(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    # A filter left out is no filter; "null" is a value the parameter does not take.
    cases = [
        ("/api/keys", "access"),
        ("/api/keys", "channel"),
        ("/api/activity-types", "client_side"),
        ("/api/activities", "since"),
    ]
    for path, name in cases:
        answer = client.get(path, params={name: "null"}, headers=admin_headers)
        expect_error(answer, 400, "invalid_field", name)
    # Text parameters take the word as it is.
    params = {"reason": "null"}
    answer = client.get("/api/rejected-activities", params=params, headers=admin_headers)
    assert answer.status_code == 200, answer.text


# -- authentication ---------------------------------------------------------------------------


def test_every_admin_operation_needs_an_admin_key(
    client: TestClient,
    hub: Hub,
    samples: dict[str, str],
    make_key: Callable[..., CreatedKey],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    tracking = make_key("tracking", uuid.UUID(samples["channel_id"]))
    disabled = make_key("admin")
    hub.keys.update(disabled.id, KeyUpdate(enabled=False))
    for op in ADMIN_OPS:
        path = fill(op.path, samples)
        body = b"{}" if op.body is not None else None
        with subtests.test(op_id(op)):
            expect_error(send(client, op, path, {}, body), 401, "unauthorized")
            unknown = {"Authorization": "Bearer wpa_unknown"}
            expect_error(send(client, op, path, unknown, body), 401, "unauthorized")
            for key in (tracking, disabled):
                bearer = {"Authorization": f"Bearer {key.key}"}
                expect_error(send(client, op, path, bearer, body), 403, "forbidden")


# -- routes -----------------------------------------------------------------------------------


def test_unknown_routes_are_404(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    for path in ("/api/nothing-here", "/api/channels/x/y/z", "/nothing", "/api", "/api/"):
        expect_error(client.get(path, headers=admin_headers), 404, "not_found")
        expect_error(client.post(path, json={}, headers=admin_headers), 404, "not_found")


def test_wrong_methods_are_405(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    subtests: pytest.Subtests,
) -> None:
    by_path: dict[str, set[str]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, set()).add(op.method)
    for path, methods in by_path.items():
        concrete = fill(path, {})
        expected = methods | ({"HEAD"} if "GET" in methods else set())
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - methods):
            with subtests.test(f"{method} {path}"):
                answer = client.request(method, concrete, headers=admin_headers)
                expect_error(answer, 405, "method_not_allowed")
                # Exactly the methods of this path: /api/groups/validate is no group id.
                assert set(answer.headers["allow"].split(", ")) == expected


def test_literal_paths_are_not_identifiers(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    for path in ("/api/groups/validate", "/api/rejected-activities/replay"):
        answer = client.options(path, headers=admin_headers)
        expect_error(answer, 405, "method_not_allowed")
        assert answer.headers["allow"] == "POST"
        answer = client.get(path, headers=admin_headers)
        expect_error(answer, 405, "method_not_allowed")
        assert answer.headers["allow"] == "POST"
    expect_error(client.get("/api/groups/nothing", headers=admin_headers), 404, "not_found")


# -- nothing a client sends gives a 5xx ---------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@hypothesis_settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_bodies_never_give_a_5xx(
    client: TestClient,
    admin_headers: dict[str, str],
    samples: dict[str, str],
    data: st.DataObject,
) -> None:
    op = data.draw(st.sampled_from(BODY_OPS), label="operation")
    assert op.body is not None
    names = [f.encode_name for f in struct_fields(op.body)]
    body = data.draw(
        st.dictionaries(st.sampled_from([*names, "other"]), JSON_VALUES, max_size=len(names)),
        label="body",
    )
    answer = send(client, op, fill(op.path, samples), admin_headers, json.dumps(body).encode())
    assert answer.status_code < 500, (op_id(op), answer.text)
    if answer.status_code >= 400:
        error = answer.json()
        assert set(error) == {"error"}
        assert {"code", "message"} <= set(error["error"]) <= {"code", "message", "field"}


# -- outages and bugs still answer in the error shape -------------------------------------------


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://127.0.0.1:1/waypost", "sqlite:////nonexistent/dir/waypost.db"]
)
def test_a_storage_outage_is_503(url: str, expect_error: ErrorCheck) -> None:
    # Settings as such, not load_settings: start-up refuses a SQLite directory that does not
    # exist; this is one that went away after it.
    app = create_app(Settings(database_url=url))
    with TestClient(app) as client:
        for op in OPERATIONS:
            body = b"{}" if op.body is not None else None
            headers = {"Authorization": "Bearer wpa_whatever"}
            answer = send(client, op, fill(op.path, {}), headers, body)
            expect_error(answer, 503, "storage_unavailable")
            assert int(answer.headers["retry-after"]) >= 1


def test_a_bug_is_a_500_in_the_error_shape_without_details(
    settings: Settings,
    hub: Hub,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    expect_error: ErrorCheck,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(hub.channels, "list_page", broken)
    with TestClient(create_app(settings, hub=hub), raise_server_exceptions=False) as client:
        answer = client.get("/api/channels", headers=admin_headers)
    error = expect_error(answer, 500, "internal_error")
    assert "secret internals" not in answer.text
    assert "field" not in error
    assert "secret internals" in caplog.text


def test_a_nul_character_is_a_400_not_a_database_error(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    # PostgreSQL text cannot hold NUL; "\\u0000" (an escaped backslash, then u0000) is text.
    answer = client.post(
        "/api/channels",
        content=b'{"name": "a\\u0000b", "kind": "headless"}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_field"
    answer = client.post(
        "/api/channels",
        content=b'{"name": "a\\\\u0000b", "kind": "headless"}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "a\\u0000b"
    answer = client.get("/api/contacts?q=a%00b", headers=admin_headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {
        "code": "invalid_field",
        "message": "q cannot hold the NUL character.",
        "field": "q",
    }


# -- messages in words ---------------------------------------------------------------------

TYPE_NAMES = "boolean, datetime, decimal, email, integer, phone, text, url"
MESSAGES = [
    (
        "POST",
        "/api/reports/run",
        {"kind": "counts", "since": "2026-03-01", "until": "2026-03-02", "filters": {"": "x"}},
        "filters",
        "A key of filters must not be empty.",
    ),
    (
        "POST",
        "/api/consents",
        {"code_name": "c", "display_name": "C", "texts": {"x" * 17: {"short_text": "s"}}},
        "texts",
        "A key of texts holds at most 16 characters.",
    ),
    (
        "POST",
        "/api/consents",
        {
            "code_name": "c",
            "display_name": "C",
            "texts": {
                "en": {"short_text": "s", "full_text": "f"},
                "cs": {"short_text": 5, "full_text": "f"},
            },
        },
        "texts.cs.short_text",
        "texts.cs.short_text must be a string, not a whole number.",
    ),
    (
        "POST",
        "/api/activity-types",
        {"name": "Quote", "rate_limits": {"per_ip": {"limit": 1e300, "window_seconds": 60}}},
        "rate_limits.per_ip.limit",
        "rate_limits.per_ip.limit must be at most 1000000.",
    ),
    (
        "POST",
        "/api/activity-types",
        {"name": "Quote", "fields": [{"name": "amount", "type": "float"}]},
        "fields[0].type",
        f"fields[0].type: 'float' is not allowed; use one of {TYPE_NAMES}.",
    ),
    (
        "PATCH",
        "/api/activity-types/{type}",
        {"enabled": "yes"},
        "enabled",
        "enabled must be true or false, not a string.",
    ),
    (
        "POST",
        "/api/keys",
        {"access": "root"},
        "access",
        "access: 'root' is not allowed; use one of admin, publishable, tracking.",
    ),
    (
        "POST",
        "/api/keys",
        {"access": "admin", "channel": "web"},
        "channel",
        "channel must be a UUID.",
    ),
    (
        "POST",
        "/api/keys",
        {"access": "admin", "name": "x" * 201},
        "name",
        "name holds at most 200 characters.",
    ),
    (
        "POST",
        "/api/channels",
        {"name": "Shop", "kind": "website", "allowed_origins": "https://shop.example"},
        "allowed_origins",
        "allowed_origins must be a list, not a string.",
    ),
    ("POST", "/api/channels", ["Shop"], None, "The body must be an object, not a list."),
    ("GET", "/api/activities?limit=0", None, "limit", "limit must be at least 1."),
    (
        "GET",
        "/api/activities?since=yesterday",
        None,
        "since",
        "since must be a date and time in ISO 8601 with an offset, such as 2026-01-31T09:30:00Z.",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field", "message"), MESSAGES)
def test_messages_say_what_to_send(
    client: TestClient,
    admin_headers: dict[str, str],
    make_type: Callable[..., ActivityType],
    method: str,
    path: str,
    body: object,
    field: str | None,
    message: str,
) -> None:
    path = path.replace("{type}", str(make_type().id))
    kwargs: dict[str, object] = {} if body is None else {"json": body}
    answer = client.request(method, path, headers=admin_headers, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["message"] == message
    assert error.get("field") == field
    assert "`" not in error["message"]


# Date and times with no UTC form: Python's datetime ends at the years 1 and 9999.
NO_UTC = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
SOMEONE = "018f0000-0000-7000-8000-000000000001"
TIMED = [
    ("GET", "/api/activities?since={t}", None, "since"),
    ("GET", "/api/activities?until={t}", None, "until"),
    ("GET", f"/api/contacts/{SOMEONE}/activities?since={{t}}", None, "since"),
    ("GET", "/api/rejected-activities?since={t}", None, "since"),
    ("GET", f"/api/groups/{SOMEONE}/check/{SOMEONE}?at={{t}}", None, "at"),
    ("GET", "/api/activities/export?since={t}", None, "since"),
    ("POST", "/api/rejected-activities/replay", {"reason": "x", "since": "{t}"}, "since"),
    (
        "POST",
        f"/api/webhook-endpoints/{SOMEONE}/replay",
        {"since": "2026-01-01T00:00:00Z", "until": "{t}"},
        "until",
    ),
]


@pytest.mark.parametrize("moment", NO_UTC)
@pytest.mark.parametrize(("method", "path", "body", "field"), TIMED)
def test_a_date_and_time_with_no_utc_form_is_a_400(
    client: TestClient,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, str] | None,
    field: str,
    moment: str,
) -> None:
    path = path.replace("{t}", moment.replace("+", "%2B"))
    json = None if body is None else {k: v.replace("{t}", moment) for k, v in body.items()}
    answer = client.request(method, path, headers=admin_headers, json=json)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert "out of range" in error["message"]


@pytest.mark.parametrize(("method", "path", "body", "field"), TIMED)
def test_a_date_and_time_without_an_offset_is_a_400(
    client: TestClient,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, str] | None,
    field: str,
    tracker: Tracker,
) -> None:
    """Every time the admin API takes is refused by the one check (errors.with_offset)."""
    moment = "2026-01-01T00:00:00"
    # An unknown contact's log is a 404 before its filters are read.
    path = path.replace(f"/contacts/{SOMEONE}/", f"/contacts/{tracker.new_contact()}/")
    path = path.replace("{t}", moment)
    json = None if body is None else {k: v.replace("{t}", moment) for k, v in body.items()}
    answer = client.request(method, path, headers=admin_headers, json=json)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert error["message"] == f"{field} needs an offset, e.g. Z."


@pytest.mark.parametrize("moment", [*NO_UTC, "2026-01-01T00:00:00"])
@pytest.mark.parametrize("path", ["/api/activities", "/api/rejected-activities"])
def test_a_forged_cursor_with_no_utc_form_is_a_400(
    client: TestClient, admin_headers: dict[str, str], path: str, moment: str
) -> None:
    cursor = encode_cursor(f"{moment}|{SOMEONE}")
    answer = client.get(path, params={"cursor": cursor}, headers=admin_headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "cursor"


def test_a_number_out_of_any_range_names_its_field(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    """1e400 is valid JSON that no number type takes: the field is named, not ``[...]``."""
    answer = client.post(
        "/api/activity-types",
        content=b'{"name": "Quote", "retention_days": 1e400}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    error = expect_error(answer, 400, "invalid_field", "retention_days")
    assert error["message"] == "retention_days is a number out of range; send a smaller one."


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/activity-types", {"name": " \t "}, "name"),
        ("/api/channels", {"name": "   ", "kind": "headless"}, "name"),
        ("/api/consents", {"code_name": "c", "display_name": "  ", "texts": {}}, "display_name"),
        ("/api/groups", {"name": " ", "condition": {"consent": "c"}}, "name"),
        ("/api/reports/saved", {"name": "\n", "definition": {}}, "name"),
    ],
)
def test_a_name_of_white_space_only_is_refused(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    path: str,
    body: dict[str, object],
    field: str,
) -> None:
    # A name of spaces names nothing anyone can tell apart in a list.
    error = expect_error(client.post(path, json=body, headers=admin_headers), 400, "invalid_field")
    assert error["field"] == field
    assert error["message"] == f"{field} must hold more than white space."


def test_a_long_value_a_choice_does_not_take_is_cut_in_the_message(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    answer = client.get("/api/suppressions", params={"kind": "k" * 5000}, headers=admin_headers)
    error = expect_error(answer, 400, "invalid_field", "kind")
    assert "(5000 characters)" in error["message"]
    assert len(error["message"]) < 600
