"""Support for the playbook tests: webhook endpoints inserted as rows, the runs and outbox
messages read back, and the playbooks admin API through one client.

Imported by tests/test_playbook*.py and tests/test_api_playbooks.py (pytest puts tests/ on
sys.path; mypy knows it as tests.playbook_support).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx2
import sqlalchemy as sa

from waypost.hub import Hub
from waypost.store.schema import playbook_runs, webhook_endpoints, webhook_messages

LOANS = "custom_loan_calculator"


def insert_endpoint(hub: Hub, *, enabled: bool = True, url: str = "") -> uuid.UUID:
    """A webhook endpoint row (the endpoints' API is not the playbooks' to test)."""
    endpoint = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    with hub.store.write() as conn:
        conn.execute(
            webhook_endpoints.insert().values(
                id=endpoint,
                url=url or f"http://127.0.0.1:9/hooks/{endpoint.hex[:8]}",
                description="",
                enabled=enabled,
                secret="whsec_" + "A" * 43 + "=",
                created_at=now,
                updated_at=now,
            )
        )
    return endpoint


def messages(hub: Hub) -> list[dict[str, Any]]:
    """Every outbox message, oldest first, its body decoded (as ``data``)."""
    m = webhook_messages
    with hub.store.read() as conn:
        rows = conn.execute(sa.select(m).order_by(m.c.created_at, m.c.id)).all()
    return [{**row._mapping, "data": json.loads(row.body)} for row in rows]


def runs(hub: Hub) -> list[dict[str, Any]]:
    """Every playbook run, oldest first."""
    r = playbook_runs
    with hub.store.read() as conn:
        rows = conn.execute(sa.select(r).order_by(r.c.at, r.c.id)).all()
    return [dict(row._mapping) for row in rows]


def webhook(endpoint: uuid.UUID) -> list[dict[str, Any]]:
    return [{"kind": "webhook", "endpoint": str(endpoint)}]


def loan_trigger(**fields: Any) -> dict[str, Any]:
    trigger: dict[str, Any] = {"event": "activity", "type": LOANS}
    if fields:
        trigger["fields"] = fields
    return trigger


@dataclass
class Playbooks:
    """The playbooks admin API through one client and headers."""

    client: Any
    headers: dict[str, str]

    def post(self, **body: Any) -> httpx2.Response:
        answer: httpx2.Response = self.client.post(
            "/api/playbooks", json=body, headers=self.headers
        )
        return answer

    def create(
        self,
        trigger: dict[str, Any],
        endpoint: uuid.UUID,
        cadence: str | dict[str, Any] = "every_time",
        **extra: Any,
    ) -> dict[str, Any]:
        extra.setdefault("name", f"Playbook {uuid.uuid4().hex[:8]}")
        answer = self.post(
            trigger=trigger,
            cadence={"mode": cadence} if isinstance(cadence, str) else cadence,
            actions=webhook(endpoint),
            **extra,
        )
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def patch(self, playbook: str, **changes: Any) -> httpx2.Response:
        answer: httpx2.Response = self.client.patch(
            f"/api/playbooks/{playbook}", json=changes, headers=self.headers
        )
        return answer

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        answer = self.client.get(path, params=params, headers=self.headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found
