"""Support for the contact group tests: the groups admin API and the tracking calls they need.

Imported by tests/test_api_groups.py and tests/test_group_*.py (pytest puts tests/ on sys.path;
mypy knows it as tests.group_support). Everything goes through the public HTTP API.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from starlette.testclient import TestClient

POLL_SECONDS = 2.0


def ago(days: float = 0, *, now: dt.datetime | None = None) -> str:
    """An ``occurredAt`` this many days before now (fractions allowed), ISO 8601 in UTC."""
    moment = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Groups:
    """The groups admin API (and the few tracking calls group tests need) through one client."""

    client: Any
    headers: dict[str, str]
    tracking_headers: dict[str, str] | None = None
    channel: str | None = None

    # -- groups --------------------------------------------------------------------------------

    def post(self, condition: Any, name: str = "Group", **extra: Any) -> httpx2.Response:
        body = {"name": name, "condition": condition, **extra}
        answer: httpx2.Response = self.client.post("/api/groups", json=body, headers=self.headers)
        return answer

    def create(self, condition: Any, name: str | None = None, **extra: Any) -> dict[str, Any]:
        answer = self.post(condition, name or f"Group {time.monotonic_ns()}", **extra)
        assert answer.status_code == 201, answer.text
        group: dict[str, Any] = answer.json()
        return group

    def validate(self, condition: Any) -> httpx2.Response:
        answer: httpx2.Response = self.client.post(
            "/api/groups/validate", json={"condition": condition}, headers=self.headers
        )
        return answer

    def count(self, condition: Any) -> int:
        answer = self.validate(condition)
        assert answer.status_code == 200, answer.text
        assert answer.json()["valid"] is True
        count: int = answer.json()["count"]
        return count

    def get(self, group: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/groups/{group}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def patch(self, group: str, **changes: Any) -> httpx2.Response:
        answer: httpx2.Response = self.client.patch(
            f"/api/groups/{group}", json=changes, headers=self.headers
        )
        return answer

    def walk(self, path: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Every item of a list, page by page."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            answer = self.client.get(path, params=params, headers=self.headers)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            assert set(page) == {"data", "next"}, page
            assert len(page["data"]) <= limit
            items += page["data"]
            cursor = page["next"]
            if cursor is None:
                return items
            assert page["data"], "a cursor after an empty page"

    def members(self, group: str) -> set[str]:
        return {m["contact"] for m in self.walk(f"/api/groups/{group}/members")}

    def contact_groups(self, contact: str) -> list[dict[str, Any]]:
        return self.walk(f"/api/contacts/{contact}/groups")

    def check(self, group: str, contact: str, at: str | None = None) -> dict[str, Any]:
        params = {"at": at} if at is not None else {}
        answer = self.client.get(
            f"/api/groups/{group}/check/{contact}", params=params, headers=self.headers
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def explain(self, group: str, contact: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/groups/{group}/explain/{contact}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def wait_member(
        self, group: str, contact: str, member: bool = True, within: float = POLL_SECONDS
    ) -> float:
        """Poll the check until the membership is as wanted; the seconds it took."""
        start = time.monotonic()
        while True:
            if self.check(group, contact)["member"] is member:
                return time.monotonic() - start
            assert time.monotonic() - start < within, (
                f"{contact} {'never entered' if member else 'never left'} {group}"
            )
            time.sleep(0.02)

    # -- tracking --------------------------------------------------------------------------

    def _tracking(self) -> dict[str, str]:
        assert self.tracking_headers is not None, "no tracking key"
        return self.tracking_headers

    def new_contact(self) -> str:
        answer = self.client.post("/tracking/contacts", headers=self._tracking())
        assert answer.status_code == 200, answer.text
        contact: str = answer.json()["contact"]
        return contact

    def log(self, contact: str, *activities: dict[str, Any]) -> list[str]:
        """Log activities for the contact; their ids, each answered 202."""
        answer = self.client.post(
            "/tracking/activities",
            json={"channel": self.channel, "contact": contact, "activities": list(activities)},
            headers=self._tracking(),
        )
        assert answer.status_code == 207, answer.text
        results = answer.json()["results"]
        assert [r["status"] for r in results] == [202] * len(activities), results
        return [r["id"] for r in results]

    def data_input(self, contact: str, **fields: str) -> None:
        """A data input setting Kentico contact fields (``City="Brno"`` sets ContactCity)."""
        self.log(
            contact,
            {
                "type": "datainput",
                "value": "Form",
                "contactFields": {f"Contact{k}": v for k, v in fields.items()},
            },
        )

    def agree(self, contact: str, consent: str, agree: bool = True) -> None:
        answer = self.client.post(
            f"/tracking/contacts/{contact}/consents/{consent}",
            json={"agree": agree},
            headers=self._tracking(),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"isAgreed": agree}

    def create_consent(self, code_name: str) -> None:
        answer = self.client.post(
            "/api/consents",
            json={
                "code_name": code_name,
                "display_name": code_name,
                "texts": {"en": {"short_text": "Short", "full_text": "<p>Full</p>"}},
            },
            headers=self.headers,
        )
        assert answer.status_code == 201, answer.text

    def create_type(self, code_name: str, fields: list[dict[str, Any]] | None = None) -> None:
        answer = self.client.post(
            "/api/activity-types",
            json={"name": code_name, "code_name": code_name, "fields": fields or []},
            headers=self.headers,
        )
        assert answer.status_code == 201, answer.text


def make_groups(client: TestClient, admin_headers: dict[str, str], tracker: Any) -> Groups:
    """Groups for a test client, with the tracker's channel and key for the tracking calls."""
    return Groups(client, admin_headers, tracker.headers, str(tracker.channel.id))
