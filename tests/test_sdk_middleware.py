"""ActivityLogger with the ASGI and WSGI middleware, against a real `waypost serve`.

A Starlette app (through httpx's ASGITransport) and plain WSGI apps (through httpx's
WSGITransport and wsgiref's server) log Kentico's loan calculator activity for the visitor of
the request; what arrived is read back from Waypost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
import wsgiref.simple_server
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from waypost_sdk import (
    ActivityLogger,
    Client,
    ContactCookies,
    CustomActivityData,
    WaypostASGIMiddleware,
    WaypostWSGIMiddleware,
    current_contact,
    current_request,
    use_contact,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from tests.sdk_support import WaypostServer, running_server
    from tests.server_support import free_port
else:
    from sdk_support import WaypostServer, running_server
    from server_support import free_port

LOAN = "custom_loan_calculator"
HTTPS_SITE = "https://bank.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    with running_server(tmp_path_factory.mktemp("waypost")) as running:
        running.create_type("Loan calculator usage", code_name=LOAN)
        yield running


@pytest.fixture
def client(server: WaypostServer) -> Iterator[Client]:
    the_client = Client(server.url, server.tracking_key, server.channel, flush_interval=30)
    yield the_client
    the_client.close(timeout=5)


@pytest.fixture
def sdk_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="waypost_sdk")
    return caplog


def contacts(server: WaypostServer) -> int:
    return server.count("SELECT count(*) FROM contacts")


# -- ASGI ----------------------------------------------------------------------------------------


def starlette_app(logger: ActivityLogger) -> Starlette:
    async def calculate(request: Request) -> JSONResponse:
        amount = request.query_params.get("amount", "0")
        if "pause" in request.query_params:
            await asyncio.sleep(0.05)  # let concurrent requests interleave
        logged = logger.log(LOAN, CustomActivityData(title="Loan calculator usage", value=amount))
        return JSONResponse({"contact": current_contact(), "logged": logged})

    def calculate_sync(request: Request) -> JSONResponse:  # runs on Starlette's thread pool
        logged = logger.log(LOAN, CustomActivityData(value="sync"))
        return JSONResponse({"contact": current_contact(), "logged": logged})

    return Starlette(routes=[Route("/calc", calculate), Route("/sync", calculate_sync)])


def asgi_app(client: Client, **options: Any) -> WaypostASGIMiddleware:
    return WaypostASGIMiddleware(starlette_app(ActivityLogger(client)), client, **options)


async def _get(app: Any, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=HTTPS_SITE) as http:
        return await http.get(path, headers=headers)


def asgi_get(app: Any, path: str, cookie: str = "", **headers: str) -> httpx.Response:
    all_headers = {**headers, **({"Cookie": cookie} if cookie else {})}
    response = asyncio.run(_get(app, path, all_headers))
    assert response.status_code == 200, response.text
    return response


def test_a_visitor_who_has_not_allowed_tracking_gets_no_contact(
    server: WaypostServer, client: Client, sdk_log: pytest.LogCaptureFixture
) -> None:
    before = contacts(server)
    app = asgi_app(client)
    for cookie in ("", "wp_cookielevel=essential", "wp_cookielevel=none", "wp_cookielevel=bad"):
        response = asgi_get(app, "/calc?amount=1", cookie)
        assert response.json() == {"contact": None, "logged": None}
        assert "set-cookie" not in response.headers
    assert contacts(server) == before
    assert client.stats.enqueued == 0
    assert "No current contact" in sdk_log.text
    assert [r.levelno for r in sdk_log.records if "No current contact" in r.message] == [
        logging.DEBUG
    ] * 4


def test_at_visitor_level_a_contact_is_created_and_its_cookie_set(
    server: WaypostServer, client: Client
) -> None:
    before = contacts(server)
    response = asgi_get(
        asgi_app(client),
        "/calc?amount=50000",
        "theme=dark; wp_cookielevel=visitor",
        Referer="https://search.example/?q=loans",
    )
    contact = response.json()["contact"]
    assert uuid.UUID(contact)
    assert response.headers["set-cookie"] == (
        f"wp_contact={contact}; Path=/; Max-Age=31536000; SameSite=Lax; Secure"
    )
    assert contacts(server) == before + 1
    assert client.flush(timeout=10)
    [stored] = server.activities(contact)
    assert stored["type"] == LOAN
    assert stored["title"] == "Loan calculator usage"
    assert stored["value"] == "50000"
    assert stored["url"] == f"{HTTPS_SITE}/calc?amount=50000"
    assert stored["referrer"] == "https://search.example/?q=loans"
    assert stored["client_id"] == response.json()["logged"]


def test_the_contact_cookie_is_the_current_contact_in_async_and_sync_endpoints(
    server: WaypostServer, client: Client
) -> None:
    contact = client.create_contact()
    before = contacts(server)
    app = asgi_app(client)
    cookie = f"wp_contact={contact}; wp_cookielevel=all"
    for path in ("/calc?amount=7", "/sync"):
        response = asgi_get(app, path, cookie)
        assert response.json()["contact"] == contact
        assert "set-cookie" not in response.headers
    assert contacts(server) == before
    assert client.flush(timeout=10)
    assert [a["value"] for a in server.activities(contact)] == ["7", "sync"]
    assert current_contact() is None  # nothing leaks out of the requests


def test_below_visitor_level_the_contact_cookie_is_not_used(client: Client) -> None:
    contact = str(uuid.uuid4())
    response = asgi_get(
        asgi_app(client), "/calc", f"wp_contact={contact}; wp_cookielevel=essential"
    )
    assert response.json() == {"contact": None, "logged": None}


def test_a_malformed_contact_cookie_is_replaced_by_a_new_contact(client: Client) -> None:
    response = asgi_get(asgi_app(client), "/calc", "wp_contact=not-a-uuid; wp_cookielevel=all")
    contact = response.json()["contact"]
    assert uuid.UUID(contact)
    assert response.headers["set-cookie"].startswith(f"wp_contact={contact};")


def test_concurrent_requests_each_see_their_own_contact(client: Client) -> None:
    app = asgi_app(client)
    mine = [str(uuid.uuid4()) for _ in range(5)]

    async def all_at_once() -> list[httpx.Response]:
        return await asyncio.gather(
            *(
                _get(app, "/calc?pause=1", {"Cookie": f"wp_contact={c}; wp_cookielevel=all"})
                for c in mine
            )
        )

    answers = asyncio.run(all_at_once())
    assert [a.json()["contact"] for a in answers] == mine


def test_without_contact_creation_or_with_another_default_level(
    server: WaypostServer, client: Client
) -> None:
    before = contacts(server)
    off = asgi_get(asgi_app(client, create_contacts=False), "/calc", "wp_cookielevel=all")
    assert off.json()["contact"] is None
    assert contacts(server) == before
    # A site whose visitors are tracked without a choice (where the law allows it).
    cookies = ContactCookies(default_level="visitor", domain="bank.example")
    on = asgi_get(asgi_app(client, cookies=cookies), "/calc")
    assert uuid.UUID(on.json()["contact"])
    assert "; Domain=bank.example;" in on.headers["set-cookie"]
    with pytest.raises(ValueError, match="default_level"):
        ContactCookies(default_level="everyone")


def test_when_waypost_cannot_create_a_contact_the_page_still_works(
    sdk_log: pytest.LogCaptureFixture,
) -> None:
    nowhere = Client(
        f"http://127.0.0.1:{free_port()}",
        "wpt_x",
        uuid.uuid4(),
        backoff_base=0.01,
        backoff_max=0.05,
    )
    try:
        response = asgi_get(asgi_app(nowhere), "/calc", "wp_cookielevel=visitor")
    finally:
        nowhere.close(timeout=1)
    assert response.json() == {"contact": None, "logged": None}
    assert "set-cookie" not in response.headers
    assert "Could not create a contact for a visitor" in sdk_log.text


def test_other_asgi_scopes_pass_through(client: Client) -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert current_request() is None

    async def lifespan() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(_: Any) -> None:
            pass

        await WaypostASGIMiddleware(inner, client)({"type": "lifespan"}, receive, send)

    asyncio.run(lifespan())
    assert seen == ["lifespan"]


# -- WSGI ----------------------------------------------------------------------------------------


def wsgi_calculator(logger: ActivityLogger) -> Any:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        amount = environ.get("QUERY_STRING", "").rpartition("=")[2] or "0"
        logged = logger.log(LOAN, CustomActivityData(title="Loan calculator usage", value=amount))
        body = json.dumps({"contact": current_contact(), "logged": logged}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app


def wsgi_get(app: Any, path: str, cookie: str = "") -> httpx.Response:
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://shop.example") as http:
        response = http.get(path, headers={"Cookie": cookie} if cookie else {})
    assert response.status_code == 200, response.text
    return response


def test_wsgi_creates_a_contact_at_visitor_level_and_logs_for_it(
    server: WaypostServer, client: Client
) -> None:
    app = WaypostWSGIMiddleware(wsgi_calculator(ActivityLogger(client)), client)
    first = wsgi_get(app, "/calc?amount=25000", "wp_cookielevel=visitor")
    contact = first.json()["contact"]
    assert first.headers["set-cookie"] == (
        f"wp_contact={contact}; Path=/; Max-Age=31536000; SameSite=Lax"  # http: not Secure
    )
    again = wsgi_get(app, "/calc?amount=30000", f"wp_cookielevel=visitor; wp_contact={contact}")
    assert again.json()["contact"] == contact
    assert "set-cookie" not in again.headers
    nobody = wsgi_get(app, "/calc?amount=1")
    assert nobody.json() == {"contact": None, "logged": None}
    assert client.flush(timeout=10)
    stored = server.activities(contact)
    assert [a["value"] for a in stored] == ["25000", "30000"]
    assert stored[0]["url"] == "http://shop.example/calc?amount=25000"
    assert current_contact() is None


def test_wsgi_keeps_the_contact_while_a_streamed_body_is_produced(client: Client) -> None:
    def streaming(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            for _ in range(3):
                yield f"{current_contact()}\n".encode()

        return body()

    contact = str(uuid.uuid4())
    app = WaypostWSGIMiddleware(streaming, client)
    response = wsgi_get(app, "/", f"wp_contact={contact}; wp_cookielevel=all")
    assert response.text.split() == [contact] * 3
    assert current_contact() is None  # closing the body ended the request's context


def test_wsgi_under_a_real_wsgiref_server(server: WaypostServer, client: Client) -> None:
    app = WaypostWSGIMiddleware(wsgi_calculator(ActivityLogger(client)), client)

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet) as httpd:
        thread = threading.Thread(target=httpd.handle_request, daemon=True)
        thread.start()
        port = httpd.server_address[1]
        response = httpx.get(
            f"http://127.0.0.1:{port}/calc?amount=900",
            headers={"Cookie": "wp_cookielevel=all"},
            timeout=10,
        )
        thread.join(timeout=10)
    contact = response.json()["contact"]
    assert response.headers["set-cookie"].startswith(f"wp_contact={contact};")
    assert client.flush(timeout=10)
    [stored] = server.activities(contact)
    assert (stored["value"], stored["url"]) == ("900", f"http://127.0.0.1:{port}/calc?amount=900")


# -- without middleware ------------------------------------------------------------------------


def test_use_contact_sets_the_current_contact_for_a_block(
    server: WaypostServer, client: Client, sdk_log: pytest.LogCaptureFixture
) -> None:
    logger = ActivityLogger(client)
    assert logger.log(LOAN, CustomActivityData(value="1")) is None
    assert "No current contact" in sdk_log.text
    contact = client.create_contact()
    with use_contact(contact, url="https://bank.example/jobs/nightly", referrer="not a url"):
        assert current_contact() == contact
        assert logger.log(LOAN, CustomActivityData(value="2", fields={}))
    assert current_contact() is None
    assert client.flush(timeout=10)
    [stored] = server.activities(contact)
    assert (stored["value"], stored["url"], stored["referrer"]) == (
        "2",
        "https://bank.example/jobs/nightly",
        None,
    )
