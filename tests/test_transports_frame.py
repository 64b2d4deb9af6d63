"""The ingest frame on its own: bodies, JSON, keys, paths, and a transport's answers (errors,
unknown routes and methods, preflights, CORS, storage outages), with a transport made here the
way a new collector would be, on a catalog held in memory."""

from __future__ import annotations

import base64
import gzip
import uuid
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest

from waypost.domain.keys import hash_key
from waypost.errors import MAX_JSON_DEPTH, ApiError
from waypost.hub import Hub
from waypost.pipeline.catalog import ChannelInfo, KeyInfo, Snapshot
from waypost.store import StorageUnavailable
from waypost.transports.bodies import decode_json, read_body
from waypost.transports.frame import (
    Answer,
    Cors,
    IngestRequest,
    KeyRule,
    Message,
    Methods,
    PathTable,
    Transport,
    basic_user,
    bearer,
    check_key,
    query_key,
)

CHANNEL = uuid.uuid4()
OTHER = uuid.uuid4()
PAGE = "https://shop.example"

pytestmark = pytest.mark.anyio
ELSEWHERE = "https://other.example"


def channel(id: uuid.UUID, kind: str, origins: set[str]) -> ChannelInfo:
    return ChannelInfo(id, kind, "en", frozenset(origins), None, None, False, "secret")


def key(access: Any, channel_id: uuid.UUID | None, enabled: bool = True) -> KeyInfo:
    return KeyInfo(uuid.uuid4(), access, channel_id, enabled)


KEYS = {
    "good": key("tracking", CHANNEL),
    "off": key("tracking", CHANNEL, enabled=False),
    "admin": key("admin", None),
    "orphan": key("tracking", uuid.uuid4()),
    "site": key("tracking", OTHER),
}
SNAPSHOT = Snapshot(
    keys={hash_key(token): info for token, info in KEYS.items()},
    channels={
        CHANNEL: channel(CHANNEL, "headless", {PAGE}),
        OTHER: channel(OTHER, "website", {ELSEWHERE}),
    },
    all_origins=frozenset({PAGE, ELSEWHERE}),
)
RULE = KeyRule(
    access="tracking",
    missing="No key.",
    unknown="Unknown key.",
    disabled="Disabled key.",
    wrong_access="{a_key} will not do.",
    no_channel="No channel.",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def refusal(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    return exc.value.status, exc.value.code, exc.value.message


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, (401, "unauthorized", "No key.")),
        ("", (401, "unauthorized", "No key.")),
        ("nobody", (401, "unauthorized", "Unknown key.")),
        ("off", (403, "forbidden", "Disabled key.")),
        ("admin", (403, "forbidden", "An admin key will not do.")),
        ("orphan", (403, "forbidden", "No channel.")),
    ],
)
def test_check_key_refuses_in_the_transports_words(
    token: str | None, expected: tuple[int, str, str]
) -> None:
    with pytest.raises(ApiError) as exc:
        check_key(SNAPSHOT, token, RULE)
    assert refusal(exc) == expected


def test_check_key_finds_the_key_and_its_channel() -> None:
    found, its_channel = check_key(SNAPSHOT, "good", RULE)
    assert found == KEYS["good"]
    assert its_channel.id == CHANNEL


def test_a_channel_kind_is_checked_when_the_rule_names_one() -> None:
    websites = KeyRule("tracking", "", "", "", "", "Websites only.", channel_kind="website")
    assert check_key(SNAPSHOT, "site", websites)[1].id == OTHER
    with pytest.raises(ApiError) as exc:
        check_key(SNAPSHOT, "good", websites)
    assert refusal(exc) == (403, "forbidden", "Websites only.")


def request_with(headers: dict[str, str] | None = None, query: bytes = b"") -> IngestRequest:
    scope = {
        "method": "POST",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "query_string": query,
    }
    return IngestRequest(scope, receive_body(b""), {})


def test_keys_are_read_where_each_transport_sends_them() -> None:
    assert bearer(request_with({"Authorization": "Bearer wpt_1"})) == "wpt_1"
    assert bearer(request_with({"Authorization": "Basic abc"})) is None
    assert bearer(request_with()) is None
    basic = base64.b64encode(b"wpt_2:").decode()
    assert basic_user(request_with({"Authorization": f"Basic {basic}"})) == "wpt_2"
    assert basic_user(request_with({"Authorization": "Basic not base64!"})) is None
    assert basic_user(request_with({"Authorization": "Bearer wpt_2"})) is None
    assert query_key(request_with(query=b"a=1&key=wpp_3&key=wpp_4")) == "wpp_3"
    assert query_key(request_with(query=b"key=")) is None
    assert query_key(request_with(query=b"token=x"), "token") == "x"


# -- bodies and JSON -----------------------------------------------------------------------------


def receive_body(*chunks: bytes, disconnect: bool = False) -> Any:
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if disconnect:
        messages = [{"type": "http.request", "body": b"{", "more_body": True}]
        messages.append({"type": "http.disconnect"})

    async def receive() -> Message:
        return messages.pop(0)

    return receive


async def test_a_body_is_read_in_chunks_within_its_limit() -> None:
    assert await read_body(receive_body(b'{"a"', b": 1}"), {}, 10) == b'{"a": 1}'
    with pytest.raises(ApiError) as exc:
        await read_body(receive_body(b"12345", b"678901"), {}, 10)
    assert exc.value.status == 413
    with pytest.raises(ApiError) as exc:
        await read_body(receive_body(b""), {b"content-length": b"11"}, 10)
    assert exc.value.status == 413
    with pytest.raises(ApiError) as exc:
        await read_body(receive_body(disconnect=True), {}, 10)
    assert exc.value.code == "invalid_json"


async def test_a_gzipped_body_counts_once_inflated() -> None:
    gz = {b"content-encoding": b"gzip"}
    assert await read_body(receive_body(gzip.compress(b"[1,2]")), gz, 100) == b"[1,2]"
    with pytest.raises(ApiError) as exc:
        await read_body(receive_body(gzip.compress(b" " * 1000)), gz, 100)
    assert exc.value.status == 413
    with pytest.raises(ApiError) as exc:
        await read_body(receive_body(b"not gzip"), gz, 100)
    assert (exc.value.status, exc.value.code) == (400, "invalid_json")
    with pytest.raises(ApiError) as exc:
        await read_body(receive_body(b"x"), {b"content-encoding": b"br"}, 100)
    assert exc.value.status == 415


class Point(msgspec.Struct, forbid_unknown_fields=True):
    x: int


def test_decode_json_answers_the_stable_400s() -> None:
    assert decode_json(b'{"x": 1}', Point) == Point(1)
    cases = {
        b'{"x": 1': "invalid_json",
        b'{"x": "a", ': "invalid_json",
        b'{"x": 1, "y": 2}': "unknown_field",
        b"{}": "missing_field",
        b'{"x": "a"}': "invalid_field",
        b"[" * 100_000 + b"]" * 100_000: "invalid_json",
    }
    for raw, code in cases.items():
        with pytest.raises(ApiError) as exc:
            decode_json(raw, Point)
        assert (exc.value.status, exc.value.code) == (400, code), raw[:20]
    assert MAX_JSON_DEPTH < 100_000


# -- paths ---------------------------------------------------------------------------------------


async def nothing(_: IngestRequest) -> Answer:
    return 204, b"", []


ITEM: Methods = {"GET": nothing}
LIST: Methods = {"POST": nothing}
TABLE = PathTable(("/x/", "/alias/"), ((("things", "{id}"), ITEM), (("things", "new"), LIST)))


def test_paths_match_with_their_values_and_literals_first() -> None:
    assert TABLE.match("/x/things/42", unquote_parts=False) == (ITEM, {"id": "42"})
    assert TABLE.match("/alias/things/42/", unquote_parts=False) == (ITEM, {"id": "42"})
    assert TABLE.match("/x/things/new", unquote_parts=False) == (LIST, {})
    assert TABLE.match("/x/things", unquote_parts=False)[0] is None
    assert TABLE.match("/y/things/1", unquote_parts=False)[0] is None
    assert TABLE.match("/x/things/a%20b", unquote_parts=True) == (ITEM, {"id": "a b"})
    assert TABLE.match("/x/things/a%20b", unquote_parts=False) == (ITEM, {"id": "a%20b"})


def test_a_path_value_cannot_hold_nul() -> None:
    with pytest.raises(ApiError) as exc:
        TABLE.match("/x/things/a%00", unquote_parts=True)
    assert (exc.value.status, exc.value.code) == (400, "invalid_field")


# -- a transport ---------------------------------------------------------------------------------


class Catalog:
    def __init__(self) -> None:
        self.down = False

    def fresh(self) -> Snapshot | None:
        return None

    def get(self) -> Snapshot:
        if self.down:
            raise StorageUnavailable("down")
        return SNAPSHOT


class Echo(msgspec.Struct):
    x: int


class EchoApp(Transport):
    """A transport as a new collector would be: its keys, its pages, its endpoints."""

    keys = RULE
    cors = Cors(b"POST, OPTIONS", b"Authorization", "Not from {origin!r}.")
    not_found = "No such echo route."

    async def echo(self, request: IngestRequest) -> Answer:
        await self.authenticate(request, bearer(request))
        body = decode_json(await self.body(request), Echo)
        return 200, msgspec.json.encode(body), [(b"x-echo", b"1")]


@pytest.fixture
def hub() -> Any:
    noted: list[uuid.UUID] = []
    return SimpleNamespace(
        settings=SimpleNamespace(max_request_bytes=100),
        catalog=Catalog(),
        writer=None,
        keys=SimpleNamespace(usage=SimpleNamespace(note=noted.append, noted=noted)),
    )


@pytest.fixture
def app(hub: Any) -> EchoApp:
    transport = EchoApp(cast(Hub, hub))
    methods: Methods = {"POST": transport.echo, "PUT": transport.echo}
    transport.paths = PathTable(("/echo/",), ((("it",), methods),))
    return transport


async def call(
    app: Transport,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    methods: Methods | None = None,
) -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app.serve(scope, receive_body(body), send, methods)
    start, answer = sent
    found = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], found, answer["body"]


GOOD = {"Authorization": "Bearer good"}


async def test_an_endpoint_answers_and_the_key_counts_as_used(app: EchoApp, hub: Any) -> None:
    status, headers, body = await call(app, "POST", "/echo/it/", b'{"x": 3}', GOOD)
    assert (status, body, headers["x-echo"]) == (200, b'{"x":3}', "1")
    assert headers["content-type"] == "application/json"
    assert hub.keys.usage.noted == [KEYS["good"].id]


async def test_errors_have_the_json_error_shape(app: EchoApp) -> None:
    status, _, body = await call(app, "POST", "/echo/it", b'{"x": "a"}', GOOD)
    assert status == 400
    assert msgspec.json.decode(body)["error"]["code"] == "invalid_field"
    status, _, body = await call(app, "POST", "/echo/it", b"{}", {"Authorization": "Bearer no"})
    assert status == 401
    assert msgspec.json.decode(body) == {
        "error": {"code": "unauthorized", "message": "Unknown key."}
    }


async def test_unknown_routes_and_methods(app: EchoApp) -> None:
    status, _, body = await call(app, "POST", "/echo/nothing")
    assert status == 404
    assert msgspec.json.decode(body)["error"]["message"] == "No such echo route."
    status, headers, body = await call(app, "GET", "/echo/it")
    assert (status, headers["allow"]) == (405, "POST, PUT")
    assert msgspec.json.decode(body)["error"]["message"] == "Use POST or PUT."


async def test_a_storage_outage_is_a_503_with_retry_after(app: EchoApp, hub: Any) -> None:
    hub.catalog.down = True
    status, headers, body = await call(app, "POST", "/echo/it", b'{"x": 1}', GOOD)
    assert (status, headers["retry-after"]) == (503, "1")
    assert msgspec.json.decode(body)["error"]["code"] == "storage_unavailable"
    # From a page too: the origins cannot be read either, and the answer is still the 503.
    for method in ("POST", "OPTIONS"):
        status, headers, body = await call(
            app, method, "/echo/it", b'{"x": 1}', {**GOOD, "Origin": PAGE}
        )
        assert (status, headers.get("retry-after")) == (503, "1"), method
        assert "access-control-allow-origin" not in headers


async def test_a_bug_is_a_500_in_the_error_shape_without_details(
    app: EchoApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What the endpoint did not expect is answered as docs/errors.md says, in the transport's
    shape (it was the server's plain text "Internal Server Error"), its details logged only."""

    async def broken(request: IngestRequest) -> Answer:
        raise RuntimeError("secret internals")

    status, headers, body = await call(
        app, "POST", "/echo/it", b"{}", {**GOOD, "Origin": PAGE}, {"POST": broken}
    )
    assert status == 500
    assert msgspec.json.decode(body) == {
        "error": {"code": "internal_error", "message": "Something went wrong on our side."}
    }
    assert headers["content-type"] == "application/json"
    assert "secret internals" in caplog.text


async def test_preflights_answer_for_every_channels_origins(app: EchoApp) -> None:
    status, headers, body = await call(app, "OPTIONS", "/echo/anything", headers={"Origin": PAGE})
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == PAGE
    assert headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert headers["access-control-allow-headers"] == "Authorization"
    status, headers, _ = await call(app, "OPTIONS", "/echo/it", headers={"Origin": "https://x"})
    assert status == 204
    assert "access-control-allow-origin" not in headers
    assert headers["vary"] == "Origin"


async def test_a_page_of_another_channel_is_refused_and_cannot_read_why(app: EchoApp) -> None:
    status, headers, body = await call(
        app, "POST", "/echo/it", b'{"x": 1}', {**GOOD, "Origin": ELSEWHERE}
    )
    assert status == 403
    assert msgspec.json.decode(body)["error"]["message"] == f"Not from {ELSEWHERE!r}."
    assert "access-control-allow-origin" not in headers
    status, headers, _ = await call(app, "POST", "/echo/it", b'{"x": 1}', {**GOOD, "Origin": PAGE})
    assert (status, headers["access-control-allow-origin"]) == (200, PAGE)


async def test_answers_without_a_page_carry_no_cors(app: EchoApp) -> None:
    _, headers, _ = await call(app, "POST", "/echo/it", b'{"x": 1}', GOOD)
    assert "vary" not in headers


async def test_a_transport_that_requires_an_origin_refuses_none(hub: Any) -> None:
    class PageOnly(EchoApp):
        cors = Cors(b"POST", b"Content-Type", "Not from {origin!r}.", origin_required=True)

    app = PageOnly(cast(Hub, hub))
    status, headers, body = await call(app, "POST", "/echo/it", b"{}", GOOD, {"POST": app.echo})
    assert status == 403
    assert msgspec.json.decode(body)["error"]["message"] == "Not from '(none)'."
    assert headers["vary"] == "Origin"
