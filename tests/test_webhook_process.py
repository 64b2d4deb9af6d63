"""The webhook dispatcher in a process of its own (WAYPOST_WEBHOOK_PROCESS): woken by the
hub's commits, stopped with the hub, gone with the hub's process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from standardwebhooks.webhooks import Webhook

from waypost.domain.webhook_signing import message_id
from waypost.hub import Hub
from waypost.records.outbox import DELIVERED
from waypost.services.webhook_process import DispatcherProcess, can_run_apart
from waypost.settings import Settings, load_settings

if TYPE_CHECKING:
    from tests.webhook_receiver import (
        Reply,
        add_endpoint,
        add_messages,
        eventually,
        messages,
        receiving,
    )
else:
    from webhook_receiver import (
        Reply,
        add_endpoint,
        add_messages,
        eventually,
        messages,
        receiving,
    )


def apart(make_settings: Callable[..., Settings]) -> Settings:
    # A poll far off: only the hub's wake can have the messages sent within the test.
    return make_settings(
        webhook_process=True, webhook_allow_private=True, webhook_poll_seconds=600.0
    )


def test_the_process_sends_what_the_hub_commits_and_stops_with_it(
    make_settings: Callable[..., Settings],
) -> None:
    hub = Hub(apart(make_settings))
    process = hub.webhook_process
    assert process is not None
    try:
        with receiving() as receiver:
            endpoint = add_endpoint(hub.store, receiver.url)
            hub.start_webhooks()
            assert process.pid not in (None, os.getpid())
            ids = add_messages(hub.store, endpoint.id, 5, wake=hub.wake_webhooks)
            received = receiver.wait_for(5, timeout=30)
            eventually(
                lambda: all(m["status"] == DELIVERED for m in messages(hub.store)), timeout=10
            )
            ids += add_messages(hub.store, endpoint.id, 2, wake=hub.wake_webhooks)
            received = receiver.wait_for(7, timeout=10)
        assert sorted(r.webhook_id for r in received) == sorted(message_id(i) for i in ids)
        for request in received:
            Webhook(endpoint.secret).verify(request.body, request.headers)
        # Nothing ran in this process.
        assert not hub.webhooks.running
        assert hub.webhooks.attempts == 0
    finally:
        hub.close()
    assert not process.running
    assert process.pid is None


def test_the_process_ends_when_the_hub_s_process_is_gone(
    make_settings: Callable[..., Settings],
) -> None:
    dispatcher = DispatcherProcess(apart(make_settings))
    dispatcher.start()
    child = dispatcher._process
    assert child is not None
    assert child.is_alive()
    # What the process sees when the hub's process dies, however: the pipe's other end
    # closed, with no word sent.
    assert dispatcher._pipe is not None
    os.close(dispatcher._pipe)
    dispatcher._pipe = dispatcher._process = None
    child.join(30)
    assert child.exitcode == 0


def test_a_database_only_this_process_opens_keeps_the_dispatcher_here() -> None:
    assert can_run_apart("sqlite:///./waypost.db")
    assert not can_run_apart("sqlite://")
    assert not can_run_apart("sqlite:///:memory:")
    assert not can_run_apart("sqlite:///file:db?mode=memory&uri=true")
    settings = load_settings({}, database_url="sqlite:///:memory:", webhook_process=True)
    hub = Hub(settings)
    try:
        assert hub.webhook_process is None
    finally:
        hub.close()


def test_the_process_logs_in_the_servers_format(
    make_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str]
) -> None:
    """With WAYPOST_LOG_FORMAT=json the process's lines are JSON too (an endpoint answering
    410 Gone is disabled, which the process logs)."""
    hub = Hub(
        make_settings(
            webhook_process=True,
            webhook_allow_private=True,
            webhook_poll_seconds=600.0,
            log_format="json",
        )
    )
    try:
        with receiving(lambda _request, _n: Reply(status=410)) as receiver:
            endpoint = add_endpoint(hub.store, receiver.url)
            hub.start_webhooks()
            add_messages(hub.store, endpoint.id, 1, wake=hub.wake_webhooks)
            receiver.wait_for(1, timeout=30)
            seen: list[str] = []

            def logged() -> bool:
                seen.extend(capfd.readouterr().err.splitlines())
                return any("disabled" in line for line in seen)

            eventually(logged, timeout=10)
    finally:
        hub.close()
    line = next(line for line in seen if "disabled" in line)
    record = json.loads(line)
    assert record["level"] == "warning"
    assert record["logger"] == "waypost.webhooks"
    assert str(endpoint.id) in record["message"]
