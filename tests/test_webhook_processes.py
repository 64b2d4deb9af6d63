"""Two ``waypost serve`` processes on one PostgreSQL database deliver each webhook message
exactly once between them, and a process killed with messages in flight leaves them to the
other once their leases run out (on SQLite too)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from waypost.settings import load_settings
from waypost.store import Store, make_engine
from waypost.store.schema import webhook_attempts

if TYPE_CHECKING:
    from tests.server_support import ServedWaypost
    from tests.webhook_receiver import (
        Received,
        Reply,
        add_endpoint,
        add_messages,
        eventually,
        messages,
        receiving,
    )
else:
    from server_support import ServedWaypost
    from webhook_receiver import (
        Received,
        Reply,
        add_endpoint,
        add_messages,
        eventually,
        messages,
        receiving,
    )

pytestmark = pytest.mark.slow

MESSAGES = 300
WEBHOOKS = {
    "log_level": "warning",
    "webhook_allow_private": "1",
    "webhook_retry_schedule": "0.2s,0.5s",
    "webhook_poll_seconds": "0.2",
}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    the_store = Store(make_engine(load_settings({"WAYPOST_DATABASE_URL": database_url})))
    yield the_store
    the_store.dispose()


@contextmanager
def two_servers(
    database_url: str, logs: Path, **settings: str
) -> Iterator[tuple[ServedWaypost, ServedWaypost]]:
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(
                ServedWaypost(logs, database_url, name=name, **{**WEBHOOKS, **settings})
            )
            for name in ("first", "second")
        )
        yield first, second


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_processes_deliver_each_message_once(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with (
        receiving(lambda _r, _n: Reply(delay=0.005)) as receiver,
        two_servers(database_url, tmp_path) as (first, second),
    ):
        first.start()
        second.start()
        endpoints = [add_endpoint(store, receiver.url) for _ in range(3)]
        ids: list[uuid.UUID] = []
        for n in range(6):
            # Written by neither process: both find them by polling, as messages written by
            # a third node would be.
            ids += add_messages(store, endpoints[n % 3].id, MESSAGES // 6)
        receiver.wait_for(MESSAGES, timeout=60)
        eventually(lambda: all(m["status"] == "delivered" for m in messages(store)), 30)
        time.sleep(1.0)
        counts = Counter(r.webhook_id for r in receiver.requests)
    assert len(counts) == len(ids) == MESSAGES
    assert set(counts.values()) == {1}
    with store.read() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(webhook_attempts)).scalar()
            == MESSAGES
        )
    # Which process delivers which message is whichever claims it first: one that claims a
    # whole backlog in one cycle (docs/playbooks.md) may deliver all of them, so the test asks
    # only that nothing was delivered twice, nor attempted twice.


def test_a_killed_process_leaves_its_messages_to_the_other(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    held = True

    def respond(_request: Received, _n: int) -> Reply:
        return Reply(delay=30) if held else Reply()

    with (
        receiving(respond) as receiver,
        two_servers(database_url, tmp_path, webhook_timeout_seconds="1") as (first, second),
    ):
        first.start()
        endpoint = add_endpoint(store, receiver.url)
        ids = add_messages(store, endpoint.id, 3)
        receiver.wait_for(3, timeout=10)
        killed_at = time.monotonic()
        first.kill()
        held = False
        receiver.release()
        second.start()
        eventually(lambda: all(m["status"] == "delivered" for m in messages(store)), 30)
        again = list(receiver.requests[3:])
    # Sent again, with the same ids, once the leases (2 timeouts and 5 s) had run out.
    assert sorted(r.webhook_id for r in again) == sorted(f"msg_{i.hex}" for i in ids)
    assert min(r.at for r in again) - killed_at >= 5.0


def test_sigterm_lets_calls_in_flight_finish_and_sends_nothing_twice(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with (
        receiving(lambda _r, _n: Reply(delay=1.0)) as receiver,
        ServedWaypost(tmp_path, database_url, name="served", **WEBHOOKS) as server,
    ):
        server.start()
        endpoint = add_endpoint(store, receiver.url)
        add_messages(store, endpoint.id, 3)
        receiver.wait_for(3, timeout=10)
        # uvicorn ends a graceful shutdown by raising the signal again: -15, not a kill.
        assert server.stop() in (0, -15)
        # Answered during the drain, and recorded before the process ended.
        assert [m["status"] for m in messages(store)] == ["delivered"] * 3
        server.start()
        time.sleep(1.0)
        assert len(receiver.requests) == 3
