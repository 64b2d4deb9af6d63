"""A ``waypost serve`` process killed with SIGKILL while its playbooks' messages are committed
but not delivered: started again on the same database (SQLite and PostgreSQL), it sends every
one of them, each under the webhook-id and with the body it was committed with."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from waypost.settings import load_settings
from waypost.store import Store, make_engine
from waypost.store.schema import webhook_messages

if TYPE_CHECKING:
    from tests.playbook_support import LOANS
    from tests.server_support import ServedWaypost
    from tests.webhook_receiver import Received, Reply, eventually, receiving
else:
    from playbook_support import LOANS
    from server_support import ServedWaypost
    from webhook_receiver import Received, Reply, eventually, receiving

pytestmark = pytest.mark.slow

ACTIVITIES = 50
SERVED = {
    "log_level": "warning",
    "webhook_allow_private": "1",
    # A short timeout keeps the leases the killed process left short (two timeouts and 5 s);
    # a long first retry keeps the timed-out messages pending until the restart.
    "webhook_timeout_seconds": "1",
    "webhook_retry_schedule": "5s,5m",
}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    the_store = Store(make_engine(load_settings({"WAYPOST_DATABASE_URL": database_url})))
    yield the_store
    the_store.dispose()


def first_run(output: str) -> dict[str, str]:
    """The admin and tracking keys and the headless channel a first run printed."""
    found = {}
    for name, pattern in {
        "admin": r"Admin key \(admin API, /api\):\s+(wpa_\S+)",
        "tracking": r"Tracking key \(headless channel\):\s+(wpt_\S+)",
        "channel": r"Headless channel:\s+([0-9a-f-]{36})",
    }.items():
        match = re.search(pattern, output)
        assert match is not None, output
        found[name] = match.group(1)
    return found


def created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def deliveries(http: httpx.Client, endpoint: str) -> list[dict[str, Any]]:
    """The endpoint's whole delivery log, page by page."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        answer = http.get(f"/api/webhook-endpoints/{endpoint}/deliveries", params=params)
        assert answer.status_code == 200, answer.text
        found += answer.json()["data"]
        if answer.json()["next"] is None:
            return found
        params["cursor"] = answer.json()["next"]


def leased(store: Store) -> int:
    m = webhook_messages
    with store.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(m).where(m.c.lease_owner.is_not(None))
        ).scalar_one()
    return int(count)


def test_a_sigkill_before_delivery_loses_no_committed_message(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    answering = False

    def respond(_request: Received, _n: int) -> Reply:
        # At first the receiver takes each call and never answers it.
        return Reply() if answering else Reply(delay=60)

    with (
        receiving(respond) as receiver,
        ServedWaypost(tmp_path, database_url, **SERVED) as server,
    ):
        keys = first_run(server.start().output())
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        tracking = {"Authorization": f"Bearer {keys['tracking']}"}
        http = httpx.Client(base_url=server.url, headers=admin, timeout=10)
        with http:
            created(
                http.post(
                    "/api/activity-types",
                    json={
                        "name": "Loan calculator usage",
                        "code_name": LOANS,
                        "fields": [{"name": "amount", "type": "decimal"}],
                    },
                )
            )
            endpoint = created(http.post("/api/webhook-endpoints", json={"url": receiver.url}))
            created(
                http.post(
                    "/api/playbooks",
                    json={
                        "name": "Every loan",
                        "trigger": {"event": "activity", "type": LOANS},
                        "cadence": {"mode": "every_time"},
                        "actions": [{"kind": "webhook", "endpoint": endpoint["id"]}],
                    },
                )
            )
            answer = http.post("/tracking/contacts", headers=tracking)
            assert answer.status_code == 200, answer.text
            contact = answer.json()["contact"]
            stored: list[str] = []
            for n in range(ACTIVITIES):
                body = {
                    "channel": keys["channel"],
                    "contact": contact,
                    "activities": [{"type": LOANS, "value": str(n), "fields": {"amount": str(n)}}],
                }
                answer = http.post("/tracking/activities", json=body, headers=tracking)
                assert answer.status_code == 207, answer.text
                [result] = answer.json()["results"]
                if result["status"] == 202:
                    stored.append(result["id"])
            assert len(stored) == ACTIVITIES
            # Calls in flight, more claimed behind them, none answered: committed, leased,
            # not delivered.
            receiver.wait_for(1)
            before = deliveries(http, endpoint["id"])
            called = len(receiver.requests)
            held = leased(store)
            server.kill()
        assert len(before) == ACTIVITIES
        assert {d["status"] for d in before} == {"pending"}
        assert held > 0
        answering = True
        receiver.release()
        server.start()
        with httpx.Client(base_url=server.url, headers=admin, timeout=10) as http:
            eventually(
                lambda: all(d["status"] == "delivered" for d in deliveries(http, endpoint["id"])),
                timeout=30,
                every=0.2,
            )
            after = deliveries(http, endpoint["id"])
        time.sleep(0.5)
        requests = list(receiver.requests)
    print(
        f"SIGKILL with {ACTIVITIES} messages committed: {called} calls made (none answered), "
        f"{held} messages leased; {len(requests)} calls in all, "
        f"{len(requests) - ACTIVITIES} of them repeats"
    )
    hook = Webhook(endpoint["secret"])
    bodies: dict[str, set[str]] = {}
    for request in requests:
        # The killed process's calls and the new one's: each signed for its own timestamp.
        hook.verify(request.body, request.headers)
        bodies.setdefault(request.webhook_id, set()).add(request.body)
    # One message for each activity answered 202, none missing, none made up; a repeat
    # (at least once) carries the very body of the first call.
    assert len(bodies) == ACTIVITIES
    assert all(len(sent) == 1 for sent in bodies.values())
    activities = Counter(
        json.loads(next(iter(sent)))["data"]["activity"]["id"] for sent in bodies.values()
    )
    assert sorted(activities) == sorted(stored)
    assert set(activities.values()) == {1}
    assert {d["webhook_id"] for d in after} == set(bodies)
    assert all(d["attempts"][-1]["http_status"] == 200 for d in after)
