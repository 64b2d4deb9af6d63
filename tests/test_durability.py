"""SIGKILL under load: every activity answered 202 is in the database, and retries with the
same ids store nothing twice. A real ``waypost serve`` process on SQLite and PostgreSQL, with the
writer in the server's process, or in a process of its own (``WAYPOST_WRITER_PROCESS``) and then
the server killed, the writer's process killed, or both."""

from __future__ import annotations

import os
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
    from tests.server_support import ServedWaypost
else:
    from server_support import ServedWaypost

pytestmark = pytest.mark.slow


@dataclass
class Sent:
    """One request's activities and what the server answered for each, if it answered."""

    ids: list[str]
    statuses: list[int] = field(default_factory=list)
    activity_ids: list[str] = field(default_factory=list)


def send(http: httpx.Client, auth: dict[str, Any], request: Sent) -> bool:
    """Post the request; True and its results recorded when the answer is a 207."""
    body = {
        **auth["body"],
        "activities": [{"type": "click", "value": i, "id": i} for i in request.ids],
    }
    try:
        answer = http.post("/tracking/activities", json=body, headers=auth["headers"])
    except httpx.TransportError:
        return False
    if answer.status_code != 207:
        assert answer.status_code == 503, answer.text
        return False
    results = answer.json()["results"]
    request.statuses = [r["status"] for r in results]
    request.activity_ids = [r["id"] for r in results]
    return True


@pytest.mark.parametrize(
    ("writer_process", "killed"),
    [
        (False, "server"),
        (True, "server"),
        (True, "writer process"),
        (True, "server and writer process"),
    ],
)
def test_sigkill_under_load_loses_no_acknowledged_activity(
    database_url: str, tmp_path: Path, writer_process: bool, killed: str
) -> None:
    served = ServedWaypost(
        tmp_path, database_url, log_level="warning", writer_process=str(int(writer_process))
    )
    with served as server:
        first_output = server.start().output()
        key = re.search(r"Tracking key \(headless channel\):\s+(wpt_\S+)", first_output)
        channel = re.search(r"Headless channel:\s+([0-9a-f-]{36})", first_output)
        assert key is not None, first_output
        assert channel is not None, first_output
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        created = httpx.post(f"{server.url}/tracking/contacts", headers=headers, timeout=10)
        assert created.status_code == 200, created.text
        auth = {
            "headers": headers,
            "body": {"channel": channel.group(1), "contact": created.json()["contact"]},
        }

        stop = threading.Event()
        answered: list[Sent] = []
        unanswered: list[Sent] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=5) as http:
                i = 0
                while not stop.is_set():
                    request = Sent([f"c{n}-r{i}-a{j}" for j in range(5)])
                    i += 1
                    ok = send(http, auth, request)
                    with lock:
                        (answered if ok else unanswered).append(request)
                    if not ok:
                        time.sleep(0.02)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        try:
            # Under load until some requests were answered (a writer's process may take a
            # moment to start on a busy machine), then a little more.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if len(answered) >= 20:
                        break
                time.sleep(0.05)
            time.sleep(0.3)
            if writer_process:
                writer = server.writer_process()
            if killed != "server":
                os.kill(writer, signal.SIGKILL)
            if killed != "writer process":
                server.kill()
            with lock:
                acknowledged_before_kill = sum(len(r.ids) for r in answered)
            time.sleep(0.2)
            if killed != "writer process":
                server.start()
            time.sleep(0.6)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)

        assert acknowledged_before_kill > 0
        assert unanswered, "no request was cut off by the kill"
        # The clients retry every request that did not get its 207, with the same ids.
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for request in unanswered:
                for _ in range(20):
                    if send(http, auth, request):
                        break
                    time.sleep(0.1)
                else:
                    pytest.fail(f"a retry never got a 207: {server.output()}")

    engine = make_engine(load_settings({"WAYPOST_DATABASE_URL": database_url}))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(activities.c.client_id, activities.c.id)).all()
    finally:
        engine.dispose()
    stored: dict[str, str] = {}
    for client_id, activity_id in rows:
        assert client_id not in stored, f"{client_id} is stored twice"
        stored[client_id] = str(activity_id)

    sent_ids = {i for request in answered + unanswered for i in request.ids}
    assert len(rows) == len(sent_ids)
    assert set(stored) == sent_ids
    for request in answered + unanswered:
        for client_id, status, activity_id in zip(
            request.ids, request.statuses, request.activity_ids, strict=True
        ):
            # A 202 is in the database under the id it was answered with; so is a 208.
            assert status in (202, 208), (client_id, status)
            assert stored[client_id] == activity_id, client_id
    retried_208 = sum(r.statuses.count(208) for r in unanswered)
    acknowledged = sum(r.statuses.count(202) for r in answered + unanswered)
    assert acknowledged + retried_208 == len(sent_ids)
