"""SIGTERM drains: a real ``waypost serve`` under load from many kept-alive clients stops
accepting, answers every request in flight, commits, and exits 0; no client sees its connection
reset, and every activity answered 202 is stored (docs/operations.md, "Shutting down")."""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa

from waypost.settings import load_settings
from waypost.store import make_engine
from waypost.store.schema import activities

if TYPE_CHECKING:
    from tests.server_support import STOP_TIMEOUT, ServedWaypost
else:
    from server_support import STOP_TIMEOUT, ServedWaypost

pytestmark = pytest.mark.slow

CLIENTS = 24


@dataclass
class Load:
    """What the clients sent and saw."""

    acknowledged: dict[str, str] = field(default_factory=dict)
    answered_after_signal: int = 0
    refused_after_signal: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def first_run(server: ServedWaypost) -> dict[str, Any]:
    output = server.start().output()
    key = re.search(r"Tracking key \(headless channel\):\s+(wpt_\S+)", output)
    channel = re.search(r"Headless channel:\s+([0-9a-f-]{36})", output)
    assert key is not None, output
    assert channel is not None, output
    headers = {"Authorization": f"Bearer {key.group(1)}"}
    created = httpx.post(f"{server.url}/tracking/contacts", headers=headers, timeout=10)
    assert created.status_code == 200, created.text
    return {
        "headers": headers,
        "body": {"channel": channel.group(1), "contact": created.json()["contact"]},
    }


def client(
    server: ServedWaypost, auth: dict[str, Any], n: int, load: Load, signalled: list[float]
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        i = 0
        while True:
            ids = [f"c{n}-r{i}-a{j}" for j in range(5)]
            i += 1
            body = {
                **auth["body"],
                "activities": [{"type": "click", "value": a, "id": a} for a in ids],
            }
            try:
                answer = http.post("/tracking/activities", json=body, headers=auth["headers"])
            except httpx.ConnectError as exc:
                with load.lock:
                    if signalled:
                        load.refused_after_signal += 1
                    else:
                        load.failures.append(f"refused before the signal: {exc!r}")
                return
            except httpx.TransportError as exc:
                # A reset, or a connection closed under a request: what a drain must not do.
                with load.lock:
                    load.failures.append(f"{type(exc).__name__}: {exc}")
                return
            with load.lock:
                if answer.status_code != 207:
                    load.failures.append(f"{answer.status_code}: {answer.text}")
                    return
                if signalled:
                    load.answered_after_signal += 1
                for sent, result in zip(ids, answer.json()["results"], strict=True):
                    if result["status"] != 202:
                        load.failures.append(f"{sent}: {result}")
                    load.acknowledged[sent] = result["id"]


def test_sigterm_under_load_answers_in_flight_requests_and_stores_every_202(
    database_url: str, tmp_path: Path
) -> None:
    with ServedWaypost(tmp_path, database_url, log_level="warning") as server:
        auth = first_run(server)
        load = Load()
        signalled: list[float] = []
        threads = [
            threading.Thread(target=client, args=(server, auth, n, load, signalled))
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        process = server.process
        assert process is not None
        with load.lock:
            before = len(load.acknowledged)
            signalled.append(time.monotonic())
        process.send_signal(signal.SIGTERM)
        code = process.wait(STOP_TIMEOUT)
        took = time.monotonic() - signalled[0]
        for thread in threads:
            thread.join(15)
        output = server.output()

    assert code == 0, output
    assert took < 10, took
    assert not load.failures, (load.failures[:5], output)
    assert before > 0
    # Requests were in flight when the signal came, and they were answered.
    assert load.answered_after_signal > 0
    assert load.refused_after_signal == CLIENTS
    assert "timeout graceful shutdown exceeded" not in output

    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(activities.c.client_id, activities.c.id)).all()
    finally:
        engine.dispose()
    stored = {client_id: str(activity_id) for client_id, activity_id in rows}
    assert len(stored) == len(rows)
    for sent, activity_id in load.acknowledged.items():
        assert stored.get(sent) == activity_id, sent
    assert len(rows) == len(load.acknowledged)
