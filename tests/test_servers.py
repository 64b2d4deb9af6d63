"""Servers sharing one process log under names of their own, and the grace period is shared
between the connections and what follows them (waypost/servers.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from waypost.servers import _named_logs, _serve, _Server, drain_seconds

if TYPE_CHECKING:
    from tests.server_support import free_port
else:
    from server_support import free_port


def app(text: str) -> Starlette:
    async def home(_: object) -> PlainTextResponse:
        return PlainTextResponse(text)

    return Starlette(routes=[Route("/", home)])


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_demo_server_logs_under_names_of_its_own(loop: str) -> None:
    ports = [free_port(), free_port()]
    servers = [
        _Server(uvicorn.Config(app(name), port=port, loop=loop, log_config=None))
        for name, port in zip(["api", "demo"], ports, strict=True)
    ]
    records = Records()
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(records)
    level = uvicorn_logger.level
    uvicorn_logger.setLevel(logging.INFO)
    # A log config an earlier server applied (uvicorn's, or Waypost's) stops the access log at
    # its own handler; here every record goes up to the handler above, as it would by default.
    children = [logging.getLogger(f"uvicorn.{name}") for name in ("access", "error")]
    kept = [(child.propagate, child.disabled, child.level) for child in children]
    for child in children:
        child.propagate, child.disabled, child.level = True, False, logging.NOTSET
    factory = servers[0].config.get_loop_factory()

    def run() -> None:
        with _named_logs(True), asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(servers, [None, "demo"], None))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not all(s.started for s in servers):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/").text == "api"
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/").text == "demo"
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(10)
        uvicorn_logger.removeHandler(records)
        uvicorn_logger.setLevel(level)
        for child, (propagate, disabled, child_level) in zip(children, kept, strict=True):
            child.propagate, child.disabled, child.level = propagate, disabled, child_level
    access = {r.name: r.getMessage() for r in records.records if ".access" in r.name}
    assert set(access) == {"uvicorn.access", "uvicorn.access.demo"}
    assert str(ports[0]) not in access["uvicorn.access.demo"]
    names = {r.name for r in records.records}
    # The servers' own messages (started, shutting down) are told apart too.
    assert {"uvicorn.error", "uvicorn.error.demo"} <= names
    started = [r.name for r in records.records if "Uvicorn running on" in r.getMessage()]
    assert sorted(started) == ["uvicorn.error", "uvicorn.error.demo"]


def test_connections_get_most_of_the_grace_period() -> None:
    assert drain_seconds(25) == 15
    assert drain_seconds(10) == 6
    assert drain_seconds(0.5) == 1
