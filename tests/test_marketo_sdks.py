"""Marketo's REST client for Python (``marketorestpython`` from PyPI), unchanged, against a real
`waypost serve`.

The client has no option for its host (it builds ``https://<munchkin id>.mktorest.com``), so
the test sets the instance's ``host`` to the served Waypost, and passes a tracking key as the
access token, as docs/collectors.md tells an integration to. Nothing else is touched: the
client sends Marketo's documented body, reads Marketo's answer, raises on Marketo's errors and
retries the codes it calls transient. What arrived is read back from the admin API and the
database. The version verified is listed in docs/collectors.md.
"""

from __future__ import annotations

import importlib.metadata
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from marketorestpython.client import MarketoClient

if TYPE_CHECKING:
    from tests.sdk_support import WaypostServer, own_postgres, refuse_connections, running_server
else:
    from sdk_support import WaypostServer, own_postgres, refuse_connections, running_server

__all__ = ["own_postgres"]  # a fixture of tests/sdk_support.py this module uses

# The version docs/collectors.md says was verified.
VERIFIED = ("marketorestpython", "0.5.25")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaypostServer]:
    with running_server(tmp_path_factory.mktemp("waypost")) as running:
        yield running


def create_webinar_type(server: WaypostServer) -> int:
    """A type like Marketo's documentation's: a primary field and an additional one."""
    with server.admin() as admin:
        answer = admin.post(
            "/api/activity-types",
            json={
                "name": f"Webinar attended {uuid.uuid4().hex[:6]}",
                "fields": [
                    {"name": "webinar", "type": "text", "primary": True},
                    {"name": "url", "type": "url"},
                    {"name": "minutes", "type": "integer"},
                ],
            },
        )
    assert answer.status_code == 201, answer.text
    number: int = answer.json()["number"]
    return number


def client_for(server: WaypostServer, key: str, **options: Any) -> MarketoClient:
    """The client as an integration makes it, with a tracking key as the client secret (it
    asks /identity/oauth/token for its token, and again when the token is refused)."""
    client = MarketoClient("waypost", client_id="waypost", client_secret=key, **options)
    client.host = server.url  # the client's only address is Marketo's own
    return client


def contact_of_lead(server: WaypostServer, lead: int) -> str:
    """The contact of a lead (the external id ``marketo_lead``), from the database file."""
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT contact_id FROM contact_external_ids WHERE kind = 'marketo_lead' AND value = ?",
            (str(lead),),
        ).fetchall()
    conn.close()
    [(contact,)] = rows
    return str(uuid.UUID(contact))


def records(number: int, lead: int) -> list[dict[str, Any]]:
    """Two activities as Marketo's documentation writes them."""
    return [
        {
            "leadId": lead,
            "activityDate": "2026-09-26T06:56:35+07:00",
            "activityTypeId": number,
            "primaryAttributeValue": "Spring webinar",
            "attributes": [
                {"name": "URL", "value": "https://bank.example/webinars/spring"},
                {"name": "minutes", "value": "45"},
            ],
        },
        {
            "leadId": lead,
            "activityDate": "2026-09-27T06:56:35+07:00",
            "activityTypeId": number,
            "primaryAttributeValue": "Autumn webinar",
            "attributes": [{"apiName": "minutes", "value": 30}],
        },
    ]


def test_the_installed_client_is_the_verified_one() -> None:
    distribution, version = VERIFIED
    assert importlib.metadata.version(distribution) == version


def test_the_client_adds_custom_activities(server: WaypostServer) -> None:
    number = create_webinar_type(server)
    lead = 5000 + int(uuid.uuid4().int % 1000)
    client = client_for(server, server.tracking_key)
    result = client.execute(method="add_custom_activities", input=records(number, lead))
    assert [r["status"] for r in result] == ["added", "added"]
    contact = contact_of_lead(server, lead)
    stored = server.activities(contact)
    assert sorted(a["id"] for a in stored) == sorted(r["id"] for r in result)
    by_value = {a["value"]: a for a in stored}
    assert by_value["Spring webinar"]["fields"] == {
        "webinar": "Spring webinar",
        "url": "https://bank.example/webinars/spring",
        "minutes": 45,
    }
    assert by_value["Autumn webinar"]["occurred_at"].startswith("2026-09-26T23:56:35")
    assert by_value["Autumn webinar"]["title"].endswith("'Autumn webinar'")


def test_a_resent_call_is_stored_once(server: WaypostServer) -> None:
    number = create_webinar_type(server)
    lead = 6000 + int(uuid.uuid4().int % 1000)
    client = client_for(server, server.tracking_key)
    first = client.execute(method="add_custom_activities", input=records(number, lead))
    again = client.execute(method="add_custom_activities", input=records(number, lead))
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert len(server.activities(contact_of_lead(server, lead))) == 2
    assert server.count("SELECT count(*) FROM contact_external_ids WHERE value = ?", str(lead)) == 1


def test_records_the_type_cannot_take_are_skipped_with_reasons(server: WaypostServer) -> None:
    number = create_webinar_type(server)
    lead = 7000 + int(uuid.uuid4().int % 1000)
    bad = records(number, lead)
    bad[0]["activityTypeId"] = 999_999
    bad[1]["attributes"] = [{"name": "minutes", "value": "most of it"}]
    result = client_for(server, server.tracking_key).execute(
        method="add_custom_activities", input=bad
    )
    assert [(r["status"], r["reasons"][0]["code"]) for r in result] == [
        ("skipped", "1013"),
        ("skipped", "1001"),
    ]
    contact = uuid.UUID(contact_of_lead(server, lead)).hex
    kept = server.count(
        "SELECT count(*) FROM rejected_activities WHERE source = 'marketo' AND contact_id = ?",
        contact,
    )
    assert kept == 2


def test_a_bad_key_is_refused_and_not_retried(server: WaypostServer) -> None:
    client = client_for(server, "wpt_not_a_key", max_retry_time=5)
    with pytest.raises(KeyError, match="access_token"):
        client.execute(method="add_custom_activities", input=records(100001, 1))
    refused = r'"GET /identity/oauth/token\?\S* HTTP/1.1" 401'
    assert len(re.findall(refused, server.output())) == 1


def test_a_token_that_is_not_a_key_is_marketos_601(server: WaypostServer) -> None:
    client = MarketoClient("waypost", access_token="wpt_not_a_key", max_retry_time=5)
    client.host = server.url
    with pytest.raises(Exception, match="601") as raised:
        client.execute(method="add_custom_activities", input=records(100001, 1))
    assert "not known" in str(raised.value)
    # Not retried: one request.
    refused = r'"POST /rest/v1/activities/external.json HTTP/1.1" 401'
    assert len(re.findall(refused, server.output())) == 1


def test_a_storage_outage_is_retried_by_the_client(
    own_postgres: tuple[str, str], tmp_path: Path
) -> None:
    name, url = own_postgres
    with running_server(tmp_path, database_url=url) as server:
        number = create_webinar_type(server)
        client = client_for(server, server.tracking_key, max_retry_time=60)
        client.authenticate()  # a running integration holds its token already
        refuse_connections(name, True)
        outcome: list[Any] = []

        def send() -> None:
            try:
                outcome.append(
                    client.execute(method="add_custom_activities", input=records(number, 4242))
                )
            except Exception as exc:  # reported by the assertion below
                outcome.append(exc)

        sending = threading.Thread(target=send)
        sending.start()
        deadline = time.monotonic() + 20
        answered_503 = re.compile(r'"POST /rest/v1/activities/external.json HTTP/1.1" 503')
        while not answered_503.search(server.output()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answered_503.search(server.output()), server.output()
        refuse_connections(name, False)
        sending.join(60)
        [result] = outcome
        assert [r["status"] for r in result] == ["added", "added"]
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM activities a JOIN contact_external_ids e "
                "ON e.contact_id = a.contact_id WHERE e.kind = 'marketo_lead' AND e.value = '4242'"
            ).fetchone()
        assert stored == (2,)
