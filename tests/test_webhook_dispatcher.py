"""The webhook dispatcher against real receivers on loopback, on SQLite and PostgreSQL:
signatures verified by the ``standardwebhooks`` library, retries with one webhook-id,
Retry-After, 410, five days of failure, refused addresses, slow endpoints, several
dispatchers and leases."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.testclient import TestClient

from waypost.clock import Clock, FakeClock, SystemClock
from waypost.domain.webhook_signing import message_id
from waypost.hub import Hub
from waypost.ids import new_id
from waypost.records.outbox import OutboxMessage, enqueue
from waypost.services.webhook_cycles import Done, Work
from waypost.services.webhook_dispatcher import WebhookDispatcher
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.schema import webhook_attempts, webhook_messages

if TYPE_CHECKING:
    from tests.server_support import free_port
    from tests.webhook_receiver import (
        Received,
        Reply,
        add_endpoint,
        add_messages,
        attempts,
        endpoint_row,
        eventually,
        message,
        messages,
        receiving,
    )
else:
    from server_support import free_port
    from webhook_receiver import (
        Received,
        Reply,
        add_endpoint,
        add_messages,
        attempts,
        endpoint_row,
        eventually,
        message,
        messages,
        receiving,
    )

FAST = {
    "webhook_allow_private": True,
    "webhook_retry_schedule": "0.1s,0.2s",
    "webhook_poll_seconds": 0.5,
}

MakeDispatcher = Callable[..., WebhookDispatcher]


@pytest.fixture
def make_dispatcher(make_settings: Callable[..., Settings]) -> Iterator[MakeDispatcher]:
    """Dispatchers on the test database, each with a store of its own (as a process would
    have), started; ``clock`` and keyword settings over FAST. Stopped at the end."""
    made: list[WebhookDispatcher] = []

    def make(clock: Clock | None = None, start: bool = True, **options: Any) -> WebhookDispatcher:
        kwargs = {k: options.pop(k) for k in ("lease_margin", "stop_grace") if k in options}
        settings = make_settings(**{**FAST, **options})
        dispatcher = WebhookDispatcher(
            Store(make_engine(settings)), settings, clock or SystemClock(), **kwargs
        )
        made.append(dispatcher)
        if start:
            dispatcher.start()
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.stop()
        dispatcher.store.dispose()


def verified(request: Received, secret: str) -> Any:
    return Webhook(secret).verify(request.body, request.headers)


def test_messages_are_signed_and_delivered_once(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher()
    with receiving() as receiver:
        endpoint = add_endpoint(store, receiver.url)
        ids = add_messages(store, endpoint.id, 3, wake=dispatcher.wake)
        requests = receiver.wait_for(3)
        eventually(lambda: all(message(store, i)["status"] == "delivered" for i in ids))
    assert sorted(r.webhook_id for r in requests) == sorted(message_id(i) for i in ids)
    for request in requests:
        assert verified(request, endpoint.secret)["type"] == "activity.performed"
        assert request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("Waypost-Webhooks/")
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    for ident in ids:
        row = message(store, ident)
        assert row["attempts"] == 1
        assert row["last_status"] == 200
        assert row["delivered_at"] is not None
        assert row["lease_owner"] is None
        assert row["lease_until"] is None
        [logged] = attempts(store, ident)
        assert logged["attempt"] == 1
        assert logged["http_status"] == 200
        assert logged["error"] is None
        assert logged["response"] == "ok"
        assert logged["duration_ms"] >= 0
    assert len(receiver.requests) == 3


def test_a_fast_endpoint_s_backlog_is_claimed_in_large_batches(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    # Its lane empties between two cycles; what the next cycle claims for it is still sized
    # by how fast its calls have been (half a second of them), not two per slot.
    dispatcher = make_dispatcher(webhook_concurrency_per_endpoint=1)
    claimed: list[int] = []
    run = dispatcher.cycles.run

    def counted(work: Work) -> Done:
        done = run(work)
        if done.claimed:
            claimed.append(len(done.claimed))
        return done

    dispatcher.cycles.run = counted  # type: ignore[method-assign]
    with receiving() as receiver:
        endpoint = add_endpoint(store, receiver.url)
        add_messages(store, endpoint.id, 2, wake=dispatcher.wake)
        receiver.wait_for(2)
        eventually(lambda: all(m["status"] == "delivered" for m in messages(store)))
        claimed.clear()
        add_messages(store, endpoint.id, 200, wake=dispatcher.wake)
        receiver.wait_for(202, timeout=30)
    assert sum(claimed) == 200
    assert len(claimed) <= 20, claimed


def test_both_secrets_sign_during_a_rotation(store: Store, make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher()
    now = dt.datetime.now(dt.UTC)
    with receiving() as first, receiving() as second:
        rotating = add_endpoint(
            store,
            first.url,
            previous_secret=(old := add_endpoint(store, "https://example.com").secret),
            previous_secret_expires_at=now + dt.timedelta(hours=24),
        )
        expired_old = add_endpoint(store, "https://example.org").secret
        rotated = add_endpoint(
            store,
            second.url,
            previous_secret=expired_old,
            previous_secret_expires_at=now - dt.timedelta(seconds=1),
        )
        add_messages(store, rotating.id, wake=dispatcher.wake)
        add_messages(store, rotated.id, wake=dispatcher.wake)
        [during] = first.wait_for(1)
        [after] = second.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verified(during, rotating.secret)
    assert verified(during, old)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verified(after, rotated.secret)
    with pytest.raises(WebhookVerificationError):
        verified(after, expired_old)


def test_500_twice_then_200_is_three_attempts_of_one_message(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher()

    def respond(_request: Received, n: int) -> Reply:
        return Reply(500, b"down for now") if n < 2 else Reply(200, b"thanks")

    with receiving(respond) as receiver:
        endpoint = add_endpoint(store, receiver.url)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        requests = receiver.wait_for(3)
        eventually(lambda: message(store, ident)["status"] == "delivered")
        time.sleep(0.3)
        assert len(receiver.requests) == 3
    assert {r.webhook_id for r in requests} == {message_id(ident)}
    for request in requests:
        verified(request, endpoint.secret)
    # 0.1 s then 0.2 s, each within 20%.
    assert requests[1].at - requests[0].at >= 0.08
    assert requests[2].at - requests[1].at >= 0.16
    logged = attempts(store, ident)
    assert [a["attempt"] for a in logged] == [1, 2, 3]
    assert [a["http_status"] for a in logged] == [500, 500, 200]
    assert [a["response"] for a in logged] == ["down for now", "down for now", "thanks"]
    row = message(store, ident)
    assert row["attempts"] == 3
    assert row["last_status"] == 200
    # A success ends the endpoint's failing streak.
    assert endpoint_row(store, endpoint.id)["failing_since"] is None


def test_after_the_last_step_the_message_is_failed(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher()
    with receiving(lambda _r, _n: Reply(503, b"")) as receiver:
        endpoint = add_endpoint(store, receiver.url)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        eventually(lambda: message(store, ident)["status"] == "failed")
        time.sleep(0.3)
        assert len(receiver.requests) == 3
    row = message(store, ident)
    assert row["attempts"] == 3
    assert row["last_status"] == 503
    assert row["next_attempt_at"] is None
    ep = endpoint_row(store, endpoint.id)
    assert ep["enabled"] is True
    assert ep["failing_since"] is not None


def test_retry_after_is_respected(store: Store, make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher()

    def respond(_request: Received, n: int) -> Reply:
        return Reply(503, headers={"Retry-After": "1"}) if n == 0 else Reply()

    with receiving(respond) as receiver:
        endpoint = add_endpoint(store, receiver.url)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        first, second = receiver.wait_for(2, timeout=5)
    # The schedule says 0.1 s; the receiver asked for 1 s.
    assert 1.0 <= second.at - first.at < 1.9
    assert message(store, ident)["attempts"] >= 1


def test_410_disables_the_endpoint_and_fails_the_rest(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher(webhook_concurrency_per_endpoint=1)
    with receiving(lambda _r, _n: Reply(410, b"gone")) as gone, receiving() as other:
        endpoint = add_endpoint(store, gone.url)
        fine = add_endpoint(store, other.url)
        ids = add_messages(store, endpoint.id, 5, wake=dispatcher.wake)
        [kept] = add_messages(store, fine.id, wake=dispatcher.wake)
        eventually(lambda: not endpoint_row(store, endpoint.id)["enabled"])
        eventually(lambda: message(store, kept)["status"] == "delivered")
        eventually(lambda: all(message(store, i)["status"] == "failed" for i in ids))
        time.sleep(0.3)
        assert len(gone.requests) == 1
    row = endpoint_row(store, endpoint.id)
    assert row["disabled_reason"] == "gone"
    answered = [message(store, i) for i in ids]
    assert sorted(m["attempts"] for m in answered) == [0, 0, 0, 0, 1]
    assert {m["last_error"] for m in answered} == {"endpoint_disabled"}
    assert endpoint_row(store, fine.id)["enabled"] is True


def test_five_days_of_failure_disable_the_endpoint(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    clock = FakeClock()
    dispatcher = make_dispatcher(clock, webhook_retry_schedule="1s,1s,1s,1s")
    with receiving(lambda _r, _n: Reply(500)) as receiver:
        endpoint = add_endpoint(store, receiver.url, now=clock.now())
        [ident] = add_messages(store, endpoint.id, now=clock.now(), wake=dispatcher.wake)
        receiver.wait_for(1)
        eventually(lambda: message(store, ident)["attempts"] == 1)
        started = endpoint_row(store, endpoint.id)["failing_since"]
        assert started is not None
        clock.advance(4 * 86400)
        dispatcher.wake()
        receiver.wait_for(2)
        eventually(lambda: message(store, ident)["attempts"] == 2)
        row = endpoint_row(store, endpoint.id)
        assert row["enabled"] is True
        assert row["failing_since"] == started
        clock.advance(86400 + 10)
        dispatcher.wake()
        receiver.wait_for(3)
        eventually(lambda: not endpoint_row(store, endpoint.id)["enabled"])
    assert endpoint_row(store, endpoint.id)["disabled_reason"] == "failing"
    row = message(store, ident)
    assert row["status"] == "failed"
    assert row["last_error"] == "endpoint_disabled"
    assert row["attempts"] == 3


def test_a_refused_address_fails_the_attempt_without_a_request(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher(webhook_allow_private=False)
    with receiving() as receiver:
        endpoint = add_endpoint(store, receiver.url)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        eventually(lambda: message(store, ident)["status"] == "failed")
        assert receiver.requests == []
    logged = attempts(store, ident)
    assert [(a["http_status"], a["error"]) for a in logged] == [(None, "address_refused")] * 3
    assert message(store, ident)["last_error"] == "address_refused"


def test_a_refused_connection_and_a_timeout_are_failed_attempts(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher(webhook_timeout_seconds=0.3, webhook_retry_schedule="5s")
    with receiving(lambda _r, _n: Reply(delay=5)) as receiver:
        slow = add_endpoint(store, receiver.url)
        closed = add_endpoint(store, f"http://127.0.0.1:{free_port()}/hook")
        [late] = add_messages(store, slow.id, wake=dispatcher.wake)
        [refused] = add_messages(store, closed.id, wake=dispatcher.wake)
        eventually(lambda: bool(attempts(store, late)) and bool(attempts(store, refused)))
    [timed_out] = attempts(store, late)
    assert (timed_out["http_status"], timed_out["error"]) == (None, "timeout")
    assert 250 <= timed_out["duration_ms"] < 2000
    [no_one] = attempts(store, refused)
    assert (no_one["http_status"], no_one["error"]) == (None, "connection_refused")
    row = message(store, late)
    assert row["status"] == "pending"
    assert row["next_attempt_at"] > row["updated_at"]


def test_only_the_first_kilobyte_of_an_answer_is_kept(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher()
    body = b"\x00" + "é".encode() * 3000
    with receiving(lambda _r, _n: Reply(200, body)) as receiver:
        endpoint = add_endpoint(store, receiver.url)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        eventually(lambda: message(store, ident)["status"] == "delivered")
    [logged] = attempts(store, ident)
    assert logged["response"] == "\ufffd" + "é" * 511


def test_a_slow_endpoint_does_not_delay_another(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher()
    with (
        receiving(lambda _r, _n: Reply(delay=10)) as slow,
        receiving() as fast,
    ):
        stuck = add_endpoint(store, slow.url)
        quick = add_endpoint(store, fast.url)
        add_messages(store, stuck.id, 40, wake=dispatcher.wake)
        slow.wait_for(4)
        started = time.monotonic()
        add_messages(store, quick.id, 50, wake=dispatcher.wake)
        fast.wait_for(50, timeout=5)
        took = time.monotonic() - started
        # No more than the endpoint's concurrency in flight to the slow one.
        assert len(slow.requests) == dispatcher.concurrency
        slow.release()
    assert took < 1.0, took


def test_two_dispatchers_deliver_each_message_once(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    first, second = make_dispatcher(), make_dispatcher()
    with receiving(lambda _r, _n: Reply(delay=0.002)) as receiver:
        endpoints = [add_endpoint(store, receiver.url) for _ in range(3)]
        ids = []
        for n in range(6):
            ids += add_messages(store, endpoints[n % 3].id, 50, wake=first.wake)
            second.wake()
        receiver.wait_for(len(ids), timeout=30)
        eventually(lambda: all(m["status"] == "delivered" for m in messages(store)))
        time.sleep(0.3)
        counts = Counter(r.webhook_id for r in receiver.requests)
    assert len(counts) == len(ids) == 300
    assert set(counts.values()) == {1}
    with store.read() as conn:
        logged = conn.execute(
            sa.select(webhook_attempts.c.http_status, webhook_attempts.c.error)
        ).all()
    assert Counter(tuple(row) for row in logged) == {(200, None): 300}
    assert first.attempts > 0
    assert second.attempts > 0
    assert first.attempts + second.attempts == 300


def test_a_stopped_dispatcher_leaves_its_claims_to_another(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    timeout, margin = 1.0, 0.5
    lease = 2 * timeout + margin
    first = make_dispatcher(
        webhook_concurrency_per_endpoint=1,
        webhook_timeout_seconds=timeout,
        lease_margin=margin,
        stop_grace=0.05,
    )
    holding = True

    def respond(_request: Received, _n: int) -> Reply:
        return Reply(delay=30) if holding else Reply()

    with receiving(respond) as receiver:
        endpoint = add_endpoint(store, receiver.url)
        # The lease runs from the claim, which comes after this and before the first call
        # arrives: the two bound it from both sides, however slow the machine.
        before_claim = time.monotonic()
        add_messages(store, endpoint.id, 2, wake=first.wake)
        [in_flight] = receiver.wait_for(1)
        claimed_at = time.monotonic()
        # One in flight, one claimed and waiting for the lane.
        eventually(lambda: all(m["lease_owner"] == first.node for m in messages(store)))
        first.stop()
        holding = False
        receiver.release()
        second = make_dispatcher()
        given_back, again = receiver.wait_for(3, timeout=10)[1:]
        # The one never sent was given back at stop: sent at once.
        assert given_back.webhook_id != in_flight.webhook_id
        assert given_back.at - claimed_at < lease - 0.5
        # The one in flight was left to its lease.
        assert again.webhook_id == in_flight.webhook_id
        assert again.at - before_claim >= lease - 0.3
        eventually(lambda: all(m["status"] == "delivered" for m in messages(store)))
    assert second.attempts == 2


def test_a_message_written_as_its_endpoint_was_disabled_is_failed(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher()
    with receiving() as receiver:
        endpoint = add_endpoint(store, receiver.url, enabled=False)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        eventually(lambda: message(store, ident)["status"] == "failed")
        assert receiver.requests == []
    assert message(store, ident)["last_error"] == "endpoint_disabled"
    assert attempts(store, ident) == []


def test_messages_left_from_before_are_sent_when_it_starts(
    store: Store, make_dispatcher: MakeDispatcher
) -> None:
    with receiving() as receiver:
        endpoint = add_endpoint(store, receiver.url)
        ids = add_messages(store, endpoint.id, 3)
        make_dispatcher()
        receiver.wait_for(3)
        eventually(lambda: all(message(store, i)["status"] == "delivered" for i in ids))


def test_wake_starts_it_once_and_start_again(store: Store, make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher(start=False)
    assert not dispatcher.running
    dispatcher.wake()
    assert dispatcher.running
    dispatcher.stop()
    assert not dispatcher.running
    # Stopped, it stays so when woken; started again, it sends what waited.
    dispatcher.wake()
    assert not dispatcher.running
    with receiving() as receiver:
        endpoint = add_endpoint(store, receiver.url)
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        time.sleep(0.2)
        assert message(store, ident)["status"] == "pending"
        dispatcher.start()
        assert dispatcher.running
        eventually(lambda: message(store, ident)["status"] == "delivered")
    dispatcher.stop()


def test_the_receiver_of_the_docs_verifies_and_dedupes(
    store: Store, make_dispatcher: MakeDispatcher, tmp_path: Path
) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "playbooks.md").read_text()
    delivery = text.split("\n## Delivery\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", delivery, flags=re.DOTALL)
    (tmp_path / "receiver.py").write_text(code)
    port = free_port()
    endpoint = add_endpoint(store, f"http://127.0.0.1:{port}/")
    environment = {**os.environ, "WEBHOOK_SECRET": endpoint.secret, "PORT": str(port)}
    dispatcher = make_dispatcher()

    def send(contact: str) -> uuid.UUID:
        body = json.dumps({"type": "activity.performed", "data": {"contact": {"id": contact}}})
        ident = new_id()
        now = dt.datetime.now(dt.UTC)
        with store.write() as conn:
            enqueue(conn, [OutboxMessage(ident, endpoint.id, "activity.performed", body, now)])
        dispatcher.wake()
        eventually(lambda: message(store, ident)["status"] == "delivered")
        return ident

    with subprocess.Popen(
        [sys.executable, str(tmp_path / "receiver.py")],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as receiver:
        try:
            eventually(lambda: _listening(port))
            assert receiver.stdout is not None
            first, second = str(uuid.uuid4()), str(uuid.uuid4())
            ident = send(first)
            assert receiver.stdout.readline().split() == ["activity.performed", first]
            assert message(store, ident)["last_status"] == 204
            # Sent again (as after a lost answer): verified, answered, not acted on twice.
            with store.write() as conn:
                conn.execute(
                    sa.update(webhook_messages)
                    .where(webhook_messages.c.id == ident)
                    .values(status="pending", next_attempt_at=dt.datetime.now(dt.UTC))
                )
            dispatcher.wake()
            eventually(lambda: message(store, ident)["attempts"] == 2)
            assert message(store, ident)["last_status"] == 204
            send(second)
            assert receiver.stdout.readline().split() == ["activity.performed", second]
            # A message signed with another secret is refused.
            forged = add_endpoint(store, f"http://127.0.0.1:{port}/")
            [refused] = add_messages(store, forged.id, wake=dispatcher.wake)
            eventually(lambda: message(store, refused)["last_status"] == 400)
        finally:
            receiver.terminate()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_hub_runs_it_once_woken_and_stops_it_on_close(settings: Settings) -> None:
    hub = Hub(settings, Store(make_engine(settings)))
    try:
        assert not hub.webhooks.running
        hub.webhooks.wake()
        assert hub.webhooks.running
    finally:
        hub.close()
    assert not hub.webhooks.running


def test_the_server_runs_it(hub: Hub, client: TestClient) -> None:
    assert client.get("/api/openapi.json").status_code == 200
    assert hub.webhooks.running


def test_a_transport_can_stand_in_for_the_network(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"mocked")

    settings = make_settings(**FAST)
    dispatcher = WebhookDispatcher(
        store, settings, SystemClock(), transport=httpx.MockTransport(handler)
    )
    try:
        endpoint = add_endpoint(store, "https://receiver.example/hook")
        [ident] = add_messages(store, endpoint.id, wake=dispatcher.wake)
        eventually(lambda: message(store, ident)["status"] == "delivered")
    finally:
        dispatcher.stop()
    [request] = seen
    assert request.url == "https://receiver.example/hook"
    assert attempts(store, ident)[0]["response"] == "mocked"
