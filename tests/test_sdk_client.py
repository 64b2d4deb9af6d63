"""The SDK's Client against a real `waypost serve`: batching, retries, drops, exit flush.

Nothing is mocked: activities go over HTTP to a Waypost subprocess (sometimes through a proxy
that fails on purpose), and what arrived is read back from its admin API or database.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from waypost_sdk import Client, ClientOptions, Dropped, WaypostError
from waypost_sdk.client import contact_uuid
from waypost_sdk.delivery import backoff, refusal
from waypost_sdk.options import encode

if TYPE_CHECKING:
    from tests.sdk_support import FaultyProxy, WaypostServer, running_server
    from tests.server_support import free_port
else:
    from sdk_support import FaultyProxy, WaypostServer, running_server
    from server_support import free_port

FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05}
MAX_PER_REQUEST = 150


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    """One Waypost for the module; it takes at most 150 activities per request (for 413s)."""
    directory = tmp_path_factory.mktemp("waypost")
    with running_server(directory, max_activities_per_request=str(MAX_PER_REQUEST)) as running:
        yield running


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client(server: WaypostServer) -> Iterator[MakeClient]:
    """Clients of ``server`` (or of ``url``), closed at the end of the test."""
    clients: list[Client] = []

    def make(url: str | None = None, key: str | None = None, **options: Any) -> Client:
        client = Client(url or server.url, key or server.tracking_key, server.channel, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=5)


@pytest.fixture
def contact(make_client: MakeClient) -> str:
    return make_client().create_contact()


@pytest.fixture
def proxy(server: WaypostServer) -> Iterator[FaultyProxy]:
    faulty = FaultyProxy(server.url)
    yield faulty
    faulty.close()


@pytest.fixture
def sdk_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="waypost_sdk")
    caplog.set_level(logging.DEBUG, logger="httpx")
    return caplog


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- batching ----------------------------------------------------------------------------------


def test_many_log_calls_go_in_few_requests_and_all_arrive_in_order(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    client = make_client(flush_interval=30)
    before = server.activity_requests()
    ids = [client.log(contact, "click", value=f"button-{i}") for i in range(250)]
    assert all(ids)
    assert client.flush(timeout=10)

    stats = client.stats
    assert (stats.enqueued, stats.delivered, stats.pending, stats.dropped_total) == (250, 250, 0, 0)
    assert stats.requests == 3  # 100 + 100 + 50
    wait_for(lambda: server.activity_requests() - before >= 3)
    assert server.activity_requests() - before == 3
    stored = server.activities(contact)
    assert [a["value"] for a in stored] == [f"button-{i}" for i in range(250)]
    assert [a["client_id"] for a in stored] == ids
    assert stored[0]["title"] == "Clicked 'button-0'"


def test_a_batch_is_sent_after_flush_interval_without_a_flush(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    client = make_client(flush_interval=0.2)
    started = time.monotonic()
    for i in range(3):
        client.log(contact, "click", value=f"late-{i}")
    wait_for(lambda: client.stats.delivered == 3)
    assert time.monotonic() - started >= 0.15
    assert client.stats.requests == 1
    assert len(server.activities(contact)) == 3


def test_batches_stay_under_the_servers_byte_limits(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    big = server.create_type("Big form", [{"name": "text", "type": "text", "max_length": 20000}])
    client = make_client(flush_interval=30, max_batch_size=MAX_PER_REQUEST)
    text = "x" * 15_000
    for i in range(300):  # 4.5 MB in all: at least three requests of at most 1.9 MB
        assert client.log(contact, big, value=str(i), fields={"text": text})
    assert client.flush(timeout=20)
    stats = client.stats
    assert stats.delivered == 300, stats
    assert stats.requests == 3  # by bytes (~126 each), not by count (150)
    assert (
        server.count(
            "SELECT count(*) FROM activities JOIN activity_types t ON t.id = type_id "
            "WHERE t.code_name = ?",
            big,
        )
        == 300
    )


def test_an_activity_over_16_kb_is_dropped_at_once(
    make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    drops: list[Dropped] = []
    client = make_client(on_drop=drops.append)
    assert client.log(contact, "click", value="x", fields={"text": "y" * 17_000}) is None
    assert client.stats.dropped["too_large"] == 1
    assert [d.reason for d in drops] == ["too_large"]
    assert drops[0].activity["value"] == "x"
    assert "too_large" in sdk_log.text
    assert client.stats.requests == 0


def test_a_batch_over_the_servers_activity_count_is_split_on_413(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    client = make_client(flush_interval=30, max_batch_size=4 * MAX_PER_REQUEST)
    for i in range(4 * MAX_PER_REQUEST):
        client.log(contact, "click", value=str(i))
    assert client.flush(timeout=10)
    stats = client.stats
    assert stats.delivered == 4 * MAX_PER_REQUEST
    assert stats.requests == 1 + 2 + 4  # 600 refused, 300 refused, 150 taken
    assert len(server.activities(contact)) == 4 * MAX_PER_REQUEST


def test_activities_of_several_contacts_go_one_request_per_contact(
    server: WaypostServer, make_client: MakeClient
) -> None:
    client = make_client(flush_interval=30)
    contacts = [client.create_contact() for _ in range(3)]
    for i in range(30):
        client.log(contacts[i % 3], "click", value=str(i))
    assert client.flush(timeout=10)
    assert client.stats.requests == 3
    for n, who in enumerate(contacts):
        assert [a["value"] for a in server.activities(who)] == [str(i) for i in range(n, 30, 3)]


def test_every_field_of_an_activity_arrives(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    loan = server.create_type(
        "Loan calculator usage",
        [
            {"name": "amount", "type": "decimal", "primary": True},
            {"name": "months", "type": "integer"},
            {"name": "decided", "type": "datetime"},
        ],
    )
    client = make_client()
    when = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
    client.log(
        contact,
        loan,
        title="Ran the loan calculator",
        url="https://bank.example/loans?x=1",
        referrer="https://search.example/",
        fields={"amount": decimal.Decimal("50000.10"), "months": 24, "decided": when},
        occurred_at=when - dt.timedelta(hours=1),
        id="order-42",
    )
    assert client.flush(timeout=10)
    [stored] = server.activities(contact)
    assert stored["title"] == "Ran the loan calculator"
    assert stored["value"] == "50000.10"  # the primary field's value
    assert stored["url"] == "https://bank.example/loans?x=1"
    assert stored["referrer"] == "https://search.example/"
    assert stored["fields"]["months"] == 24
    assert decimal.Decimal(str(stored["fields"]["amount"])) == decimal.Decimal("50000.10")
    assert stored["occurred_at"].startswith("2026-01-31T11:00:00")
    assert stored["client_id"] == "order-42"


def test_arguments_that_can_never_be_sent_raise(make_client: MakeClient, contact: str) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="contact must be a contact's UUID"):
        client.log("not-a-uuid", "click", value="x")
    with pytest.raises(ValueError, match="time zone"):
        client.log(contact, "click", value="x", occurred_at=dt.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="object values cannot be sent"):
        client.log(contact, "click", value="x", fields={"f": object()})
    assert client.stats.enqueued == 0


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        ClientOptions(max_batch_size=0)
    with pytest.raises(ValueError, match="max_request_bytes"):
        ClientOptions(max_request_bytes=1000)
    with pytest.raises(ValueError, match="key is required"):
        Client("http://127.0.0.1:1", "", uuid.uuid4())


# -- flush, close, exit ------------------------------------------------------------------------


def test_close_flushes_then_drops_what_is_logged_later(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    drops: list[Dropped] = []
    client = make_client(flush_interval=30, on_drop=drops.append)
    for i in range(10):
        client.log(contact, "click", value=str(i))
    assert client.close(timeout=10)
    assert len(server.activities(contact)) == 10
    assert client.log(contact, "click", value="late") is None
    assert client.stats.dropped["closed"] == 1
    assert [d.reason for d in drops] == ["closed"]
    assert client.flush(timeout=1)  # nothing left to wait for


def test_a_client_is_a_context_manager(server: WaypostServer, contact: str) -> None:
    with Client(server.url, server.tracking_key, server.channel, flush_interval=30) as client:
        client.log(contact, "click", value="with")
    assert client.stats.delivered == 1
    assert [a["value"] for a in server.activities(contact)] == ["with"]


def test_flush_gives_up_waiting_at_its_timeout_and_close_drops_the_rest(
    make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    drops: list[Dropped] = []
    nowhere = f"http://127.0.0.1:{free_port()}"
    client = make_client(nowhere, on_drop=drops.append, max_retries=1000, **FAST)
    for i in range(5):
        client.log(contact, "click", value=str(i))
    started = time.monotonic()
    assert client.flush(timeout=0.3) is False
    assert client.close(timeout=0.2) is False
    assert time.monotonic() - started < 5
    assert client.stats.dropped["shutdown"] == 5
    assert client.stats.pending == 0
    assert [d.reason for d in drops] == ["shutdown"] * 5
    assert "at shutdown" in sdk_log.text


def test_the_queue_is_flushed_at_exit_without_the_servers_dependencies(
    server: WaypostServer, contact: str, tmp_path: Path
) -> None:
    """A script that logs and exits without flush(); the SDK imports none of the server's
    dependencies (the script refuses to import them)."""
    script = tmp_path / "log_and_exit.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys

            SERVER_ONLY = {{"starlette", "sqlalchemy", "msgspec", "alembic", "psycopg",
                           "uvicorn", "click", "redis", "pycountry", "phonenumbers",
                           "uuid_utils"}}

            class Refuse:
                def find_spec(self, name, path=None, target=None):
                    top = name.partition(".")[0]
                    if top in SERVER_ONLY or top == "waypost":
                        raise ModuleNotFoundError(f"the SDK must not import {{name}}")
                    return None

            sys.meta_path.insert(0, Refuse())

            from waypost_sdk import Client

            client = Client({server.url!r}, {server.tracking_key!r}, {server.channel!r},
                            flush_interval=60)
            for i in range(40):
                client.log({contact!r}, "click", value=f"exit-{{i}}")
            loaded = sorted(m for m in sys.modules if m.partition(".")[0] in SERVER_ONLY)
            assert not loaded, loaded
            print("pending", client.stats.pending)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pending", "40"]  # nothing was sent before exit
    assert [a["value"] for a in server.activities(contact)] == [f"exit-{i}" for i in range(40)]


def test_a_forked_child_starts_with_an_empty_queue_and_delivers_its_own(
    server: WaypostServer, contact: str, tmp_path: Path
) -> None:
    """As under gunicorn --preload: the parent delivers what it queued, the child its own."""
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from waypost_sdk import Client

            client = Client({server.url!r}, {server.tracking_key!r}, {server.channel!r},
                            flush_interval=60)
            for i in range(3):
                client.log({contact!r}, "click", value=f"parent-{{i}}")
            pid = os.fork()
            if pid == 0:
                assert client.stats.pending == 0
                client.log({contact!r}, "click", value="child")
                os._exit(0 if client.flush(10) and client.stats.delivered == 1 else 1)
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
            assert client.flush(10) and client.stats.delivered == 3
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    values = sorted(a["value"] for a in server.activities(contact))
    assert values == ["child", "parent-0", "parent-1", "parent-2"]


# -- retries -----------------------------------------------------------------------------------


def test_a_retry_across_a_server_restart_stores_everything_once(
    tmp_path: Path, sdk_log: pytest.LogCaptureFixture
) -> None:
    with running_server(tmp_path) as own:
        client = Client(
            own.url,
            own.tracking_key,
            own.channel,
            max_retries=1000,
            backoff_base=0.01,
            backoff_max=0.05,
        )
        try:
            contact = client.create_contact()
            client.log(contact, "click", value="before")
            assert client.flush(timeout=10)
            own.stop()
            for i in range(20):
                client.log(contact, "click", value=f"during-{i}")
            wait_for(lambda: client.stats.retries >= 3)
            assert client.stats.delivered == 1
            own.start()
            assert client.flush(timeout=20)
        finally:
            client.close(timeout=5)
        stats = client.stats
        assert (stats.delivered, stats.dropped_total) == (21, 0)
        stored = own.activities(contact)
        assert [a["value"] for a in stored] == ["before"] + [f"during-{i}" for i in range(20)]
        assert own.count("SELECT count(*) FROM activities") == 21
    assert "ConnectError" in sdk_log.text


def test_a_429_is_retried_after_retry_after(
    server: WaypostServer, proxy: FaultyProxy, make_client: MakeClient, contact: str
) -> None:
    proxy.script = ["429"]
    client = make_client(proxy.url, flush_interval=30, **FAST)
    for i in range(5):
        client.log(contact, "click", value=str(i))
    assert client.flush(timeout=10)
    assert [s.action for s in proxy.seen] == ["429", "forward"]
    gap = proxy.seen[1].at - proxy.seen[0].at
    assert gap >= 0.9  # Retry-After: 1, not the backoff of at most 0.05 s
    assert (client.stats.retries, client.stats.delivered) == (1, 5)
    assert len(server.activities(contact)) == 5


def test_5xx_answers_are_retried(
    server: WaypostServer, proxy: FaultyProxy, make_client: MakeClient, contact: str
) -> None:
    proxy.script, proxy.retry_after = ["503", "503"], "0"
    client = make_client(proxy.url, flush_interval=30, **FAST)
    for i in range(5):
        client.log(contact, "click", value=str(i))
    assert client.flush(timeout=10)
    assert [s.action for s in proxy.seen] == ["503", "503", "forward"]
    assert (client.stats.retries, client.stats.delivered) == (2, 5)
    assert len(server.activities(contact)) == 5


def test_an_answer_lost_after_the_server_stored_the_batch_is_retried_and_stored_once(
    server: WaypostServer, proxy: FaultyProxy, make_client: MakeClient, contact: str
) -> None:
    proxy.script = ["lose"]
    client = make_client(proxy.url, flush_interval=30, **FAST)
    for i in range(7):
        client.log(contact, "click", value=str(i))
    assert client.flush(timeout=10)
    assert [s.action for s in proxy.seen] == ["lose", "forward"]
    stats = client.stats
    assert (stats.delivered, stats.duplicates, stats.retries) == (7, 7, 1)
    assert [a["value"] for a in server.activities(contact)] == [str(i) for i in range(7)]


def test_the_same_ids_sent_again_by_another_client_are_stored_once(
    server: WaypostServer, make_client: MakeClient, contact: str
) -> None:
    first, second = make_client(), make_client()
    for client in (first, second):
        for i in range(3):
            client.log(contact, "click", value=str(i), id=f"{contact}-{i}")
        assert client.flush(timeout=10)
    assert (first.stats.duplicates, second.stats.duplicates) == (0, 3)
    assert second.stats.delivered == 3
    assert len(server.activities(contact)) == 3


def test_network_errors_are_given_up_after_max_retries(
    make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    drops: list[Dropped] = []
    nowhere = f"http://127.0.0.1:{free_port()}"
    client = make_client(nowhere, on_drop=drops.append, max_retries=3, **FAST)
    client.log(contact, "click", value="x")
    assert client.flush(timeout=5)
    assert (client.stats.requests, client.stats.retries) == (4, 3)
    assert [(d.reason, d.status, d.error_code) for d in drops] == [
        ("failed", None, "network_error")
    ]
    assert "Gave up on 1 activity of contact" in sdk_log.text


def test_backoff_is_exponential_with_full_jitter() -> None:
    options = ClientOptions(backoff_base=0.5, backoff_max=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [backoff(options, attempt, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8
        assert min(delays) < ceiling * 0.2
    assert backoff(options, 1, 7.0) == 7.0  # Retry-After, beyond backoff_max
    assert backoff(options, 1, 10_000.0) == 300.0


# -- refusals ----------------------------------------------------------------------------------


def test_a_wrong_key_is_given_up_at_once_with_the_reason_logged_and_never_the_key(
    make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    drops: list[Dropped] = []
    wrong = "wpt_" + uuid.uuid4().hex
    client = make_client(key=wrong, on_drop=drops.append, **FAST)
    for i in range(3):
        client.log(contact, "click", value=str(i))
    assert client.flush(timeout=5)
    stats = client.stats
    assert (stats.requests, stats.retries, stats.dropped["failed"]) == (1, 0, 3)
    assert {(d.reason, d.status, d.error_code) for d in drops} == {("failed", 401, "unauthorized")}
    [record] = [r for r in sdk_log.records if r.levelno == logging.ERROR]
    assert "401 unauthorized" in record.getMessage()
    assert wrong not in sdk_log.text
    assert wrong not in repr(client)


def test_an_unknown_contact_is_given_up_at_once(
    make_client: MakeClient, sdk_log: pytest.LogCaptureFixture
) -> None:
    client = make_client(**FAST)
    client.log(uuid.uuid4(), "click", value="x")
    assert client.flush(timeout=5)
    assert (client.stats.retries, client.stats.dropped["failed"]) == (0, 1)
    assert "404 contact_not_found" in sdk_log.text


def test_a_rejected_activity_is_logged_and_dropped_and_the_others_delivered(
    server: WaypostServer, make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    drops: list[Dropped] = []
    client = make_client(on_drop=drops.append)
    client.log(contact, "click", value="fine")
    bad = client.log(contact, "no_such_type", value="x")
    client.log(contact, "click")  # a click needs a value
    assert client.flush(timeout=5)
    assert client.stats.delivered == 1
    assert client.stats.dropped["rejected"] == 2
    assert [(d.reason, d.status, d.error_code) for d in drops] == [
        ("rejected", 404, "activity_type_not_found"),
        ("rejected", 400, "missing_field"),
    ]
    assert drops[0].activity["id"] == bad
    assert f"rejected activity {bad} (no_such_type)" in sdk_log.text
    assert [a["value"] for a in server.activities(contact)] == ["fine"]


def test_a_full_queue_drops_reports_and_counts(
    server: WaypostServer, make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    drops: list[Dropped] = []
    client = make_client(max_queue_size=5, flush_interval=60, on_drop=drops.append)
    started = time.monotonic()
    results = [client.log(contact, "click", value=str(i)) for i in range(20)]
    assert time.monotonic() - started < 1  # never waits
    assert [r is not None for r in results] == [True] * 5 + [False] * 15
    assert client.stats.dropped["queue_full"] == 15
    assert client.stats.pending == 5
    assert [(d.reason, d.activity["value"]) for d in drops] == [
        ("queue_full", str(i)) for i in range(5, 20)
    ]
    [warning] = [r for r in sdk_log.records if "queue_full" in r.getMessage()]
    assert "max_queue_size=5" in warning.getMessage()
    assert client.flush(timeout=5)
    assert [a["value"] for a in server.activities(contact)] == [str(i) for i in range(5)]


def test_an_on_drop_callback_that_raises_is_logged_and_delivery_goes_on(
    make_client: MakeClient, contact: str, sdk_log: pytest.LogCaptureFixture
) -> None:
    def broken(_: Dropped) -> None:
        raise RuntimeError("callback bug")

    client = make_client(on_drop=broken)
    client.log(contact, "no_such_type", value="x")
    client.log(contact, "click", value="ok")
    assert client.flush(timeout=5)
    assert client.stats.delivered == 1
    assert "on_drop callback failed" in sdk_log.text


# -- compression -------------------------------------------------------------------------------


def test_large_bodies_are_gzipped_and_stored(
    server: WaypostServer, proxy: FaultyProxy, make_client: MakeClient, contact: str
) -> None:
    client = make_client(proxy.url, flush_interval=30)
    client.log(contact, "click", value="small")
    assert client.flush(timeout=5)
    for i in range(50):
        client.log(contact, "click", value=f"large-{i}")
    assert client.flush(timeout=5)
    assert [s.gzip for s in proxy.seen] == [False, True]
    assert len(server.activities(contact)) == 51


def test_without_gzip_nothing_is_compressed(
    proxy: FaultyProxy, make_client: MakeClient, contact: str
) -> None:
    client = make_client(proxy.url, flush_interval=30, gzip=False)
    for i in range(50):
        client.log(contact, "click", value=f"large-{i}")
    assert client.flush(timeout=5)
    assert [s.gzip for s in proxy.seen] == [False]


def test_a_server_that_refuses_gzip_gets_uncompressed_bodies_from_then_on(
    server: WaypostServer,
    proxy: FaultyProxy,
    make_client: MakeClient,
    contact: str,
    sdk_log: pytest.LogCaptureFixture,
) -> None:
    proxy.refuse_gzip = True
    client = make_client(proxy.url, flush_interval=30)
    for batch in range(2):
        for i in range(50):
            client.log(contact, "click", value=f"{batch}-{i}")
        assert client.flush(timeout=5)
    assert [(s.action, s.gzip) for s in proxy.seen] == [
        ("refuse_gzip", True),
        ("forward", False),
        ("forward", False),
    ]
    assert client.stats.delivered == 100
    assert "sending uncompressed bodies from now on" in sdk_log.text
    assert len(server.activities(contact)) == 100


# -- direct calls ------------------------------------------------------------------------------


def test_contacts_and_consents(server: WaypostServer, make_client: MakeClient) -> None:
    with server.admin() as admin:
        created = admin.post(
            "/api/consents",
            json={
                "code_name": "TrackingConsent",
                "display_name": "Tracking",
                "texts": {"en": {"short_text": "We track.", "full_text": "<p>We track.</p>"}},
            },
        )
    assert created.status_code == 201, created.text
    client = make_client()
    contact = client.create_contact()
    assert uuid.UUID(contact)
    assert client.consent_agreed(contact, "TrackingConsent") is False
    assert client.set_consent(contact, "TrackingConsent") is True
    assert client.consent_agreed(contact, "TrackingConsent") is True
    assert client.set_consent(contact, "TrackingConsent", agree=False) is False
    text = client.consent_text("TrackingConsent", "cs")  # the channel's default language
    assert (text.short_text, text.full_text) == ("We track.", "<p>We track.</p>")
    with pytest.raises(WaypostError) as raised:
        client.consent_text("NoSuchConsent")
    assert raised.value.status == 404


def test_direct_calls_raise_on_refusal_and_after_retrying_network_errors(
    make_client: MakeClient,
) -> None:
    with pytest.raises(WaypostError) as refused:
        make_client(key="wpt_wrong").create_contact()
    assert (refused.value.status, refused.value.error_code) == (401, "unauthorized")
    nowhere = make_client(f"http://127.0.0.1:{free_port()}", **FAST)
    with pytest.raises(WaypostError) as unreachable:
        nowhere.create_contact()
    assert (unreachable.value.status, unreachable.value.error_code) == (None, "network_error")


def test_a_direct_call_is_retried_after_a_503(proxy: FaultyProxy, make_client: MakeClient) -> None:
    proxy.script, proxy.retry_after = ["503"], "0"
    contact = make_client(proxy.url, **FAST).create_contact()
    assert uuid.UUID(contact)
    assert [s.action for s in proxy.seen] == ["503", "forward"]


def test_a_direct_call_fails_at_once_when_retry_after_is_longer_than_backoff_max(
    proxy: FaultyProxy, make_client: MakeClient
) -> None:
    proxy.script = ["429"]
    with pytest.raises(WaypostError) as raised:
        make_client(proxy.url, **FAST).create_contact()
    assert (raised.value.status, raised.value.error_code) == (429, "rate_limited")
    assert [s.action for s in proxy.seen] == ["429"]


def test_stats_add_up(make_client: MakeClient, contact: str) -> None:
    client = make_client(max_queue_size=4, flush_interval=30)
    for i in range(3):
        client.log(contact, "click", value=str(i))
    client.log(contact, "no_such_type", value="x")
    for i in range(2):
        client.log(contact, "click", value=str(i))
    before = client.stats
    assert (before.enqueued, before.pending, before.dropped["queue_full"]) == (4, 4, 2)
    assert client.flush(timeout=5)
    after = client.stats
    assert (after.enqueued, after.pending, after.delivered) == (4, 0, 3)
    assert after.dropped == {
        "queue_full": 2,
        "too_large": 0,
        "closed": 0,
        "rejected": 1,
        "failed": 0,
        "shutdown": 0,
    }


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (decimal.Decimal("50000.10"), '"50000.10"'),
        (decimal.Decimal("1E+2"), '"100"'),
        (decimal.Decimal("1.5E-3"), '"0.0015"'),
        (decimal.Decimal("-7"), '"-7"'),
    ],
)
def test_decimals_are_sent_in_plain_notation(value: decimal.Decimal, sent: str) -> None:
    # The server takes decimals in plain notation only (docs/activity-fields.md), and str()
    # of a Decimal may use an exponent.
    assert encode({"amount": value}) == f'{{"amount":{sent}}}'.encode()


# -- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (1, "c1", 401, "unauthorized", "That API key is not known; use a tracking key."),
            "Waypost refused 1 activity of contact c1 (401 unauthorized): That API key is not "
            "known; use a tracking key. It is dropped, as sending it again cannot succeed; fix "
            "the cause and log it again.",
        ),
        (
            (3, "c2", 404, "contact_not_found", "No contact has that identifier"),
            "Waypost refused 3 activities of contact c2 (404 contact_not_found): No contact has "
            "that identifier. They are dropped, as sending them again cannot succeed; fix the "
            "cause and log them again.",
        ),
    ],
)
def test_refusals_are_logged_in_sentences(args: tuple[Any, ...], message: str) -> None:
    assert refusal(*args) == message


@pytest.mark.parametrize(
    ("contact", "message"),
    [
        ("not-a-uuid", "contact must be a contact's UUID, as create_contact() returns; "
         "got 'not-a-uuid'."),
        (42, "contact must be a contact's UUID, as create_contact() returns; got 42."),
    ],
)  # fmt: skip
def test_a_contact_that_is_not_a_uuid_is_told_what_to_pass(contact: Any, message: str) -> None:
    with pytest.raises(ValueError, match="contact must") as caught:
        contact_uuid(contact)
    assert str(caught.value) == message
