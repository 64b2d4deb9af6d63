"""SIGKILL under load: every activity answered 202 is in the database, and retries with the
same ids store nothing twice. A real ``waypost serve`` process on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from waypost.settings import load_settings
from waypost.store import make_engine
from waypost.store.schema import activities

pytestmark = pytest.mark.slow

WAYPOST = Path(sys.executable).parent / "waypost"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """``waypost serve`` in a subprocess; its output goes to files in ``logs``."""

    database_url: str
    port: int
    logs: Path
    starts: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start and wait until it answers; its standard output so far."""
        self.starts += 1
        out = self.logs / f"serve-{self.starts}.out"
        env = {
            **os.environ,
            "WAYPOST_DATABASE_URL": self.database_url,
            "WAYPOST_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
        }
        with out.open("wb") as stdout, (self.logs / f"serve-{self.starts}.err").open("wb") as err:
            self.process = subprocess.Popen(
                [str(WAYPOST), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=stdout,
                stderr=err,
                env=env,
                cwd=self.logs,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"waypost serve exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/api/openapi.json", timeout=1).status_code == 200:
                    return out.read_text()
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"waypost serve did not start: {self.output()}"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def output(self) -> str:
        name = f"serve-{self.starts}"
        return "\n".join((self.logs / f"{name}.{ext}").read_text() for ext in ("out", "err"))


@contextmanager
def serving(database_url: str, logs: Path) -> Iterator[Server]:
    server = Server(database_url, free_port(), logs)
    try:
        yield server
    finally:
        server.stop()


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


def test_sigkill_under_load_loses_no_acknowledged_activity(
    database_url: str, tmp_path: Path
) -> None:
    with serving(database_url, tmp_path) as server:
        first_output = server.start()
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
            time.sleep(1.2)
            server.kill()
            with lock:
                acknowledged_before_kill = sum(len(r.ids) for r in answered)
            time.sleep(0.2)
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
