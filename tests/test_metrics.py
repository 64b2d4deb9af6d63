"""GET /metrics (waypost/metrics.py, waypost/ops.py) on SQLite and PostgreSQL: scraped after
real traffic and parsed with prometheus-client's own parser, the counts are what the database
holds; labels are route templates; the token; several processes adding up their counts."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from waypost.app import create_app
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.settings import Settings
from waypost.store.schema import activities, rejected_activities, webhook_messages

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker
    from tests.group_support import ago
    from tests.sdk_support import WaypostServer
    from tests.webhook_receiver import add_endpoint, add_messages, eventually, receiving
else:
    from conftest import ErrorCheck, Tracker
    from group_support import ago
    from sdk_support import WaypostServer
    from webhook_receiver import add_endpoint, add_messages, eventually, receiving

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels, as prometheus-client's parser reads it."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client: TestClient | httpx.Client, headers: Mapping[str, str] | None = None) -> Samples:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``name``'s samples by the value of ``label``."""
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


def database_counts(hub: Hub) -> tuple[int, dict[str, int]]:
    """Activities stored, and rejected activities by reason, as the database holds them."""
    with hub.store.read() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(activities)).scalar_one()
        reasons = conn.execute(
            sa.select(rejected_activities.c.reason, sa.func.count()).group_by(
                rejected_activities.c.reason
            )
        ).all()
    return int(stored), {reason: int(n) for reason, n in reasons}


def test_the_counts_after_traffic_are_what_the_database_holds(
    hub: Hub, client: TestClient, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    order = make_type(name="Order", fields=[{"name": "amount", "type": "decimal"}])
    answers: Counter[int] = Counter()
    contact = tracker.new_contact()
    for n in range(12):
        batch = [
            {"type": "pagevisit", "url": f"https://a.example/{n}", "id": f"visit-{n % 5}"},
            {"type": order.code_name, "value": "v", "fields": {"amount": "12.5"}},
            {"type": "pagevisit"},  # no url: missing_field
            {"type": "no_such_type", "value": "v"},
            {"type": order.code_name, "value": "v", "fields": {"amount": True}},
        ]
        answers.update(r["status"] for r in tracker.log(batch, contact))
    client.get("/api/contacts/" + str(uuid.uuid4()))  # a path with an id: a template label
    client.get("/no/such/path/" + tracker.key)
    assert hub.group_updates.wait_idle()

    samples = scrape(client)
    stored, reasons = database_counts(hub)
    assert stored == answers[202] == 5 + 12
    assert value(samples, "waypost_activities_acknowledged_total") == stored
    assert value(samples, "waypost_activities_deduplicated_total") == answers[208] == 12 - 5
    assert labelled(samples, "waypost_activities_rejected_total", "reason") == reasons
    assert set(reasons) == {"missing_field", "activity_type_not_found", "field_type_mismatch"}
    assert sum(reasons.values()) == 3 * 12

    # One writer transaction per request here, each counted once in both histograms.
    batches = value(samples, "waypost_writer_batch_activities_count")
    assert batches >= 12
    assert value(samples, "waypost_writer_commit_seconds_count") == batches
    assert value(samples, "waypost_writer_batch_activities_sum") == stored + 3 * 12
    assert value(samples, "waypost_writer_queue_depth") >= 0
    assert value(samples, "waypost_group_update_lag_seconds_count") >= 1

    # Requests by route template and status, never by the path as sent.
    requests = "waypost_http_requests_total"
    assert value(samples, requests, method="POST", route="/tracking/activities", status="207") == 12
    assert value(samples, requests, method="POST", route="/tracking/contacts", status="200") == 1
    assert value(samples, requests, method="GET", route="/api/contacts/{contact_id}", status="401")
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    seconds = "waypost_http_request_duration_seconds_count"
    assert value(samples, seconds, method="POST", route="/tracking/activities", status="207") == 12
    routes = {dict(labels).get("route") for _, labels in samples}
    assert not [r for r in routes if r and (tracker.key in r or contact in r or "/no/" in r)]

    # The scrape before is counted once the next one comes.
    again = scrape(client)
    assert value(again, requests, method="GET", route="/metrics", status="200") == 1


def test_webhook_deliveries_are_counted_by_outcome_with_their_lag(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        webhook_allow_private=True, webhook_retry_schedule="0.1s", webhook_poll_seconds=0.2
    )
    hub = Hub(settings)
    try:
        with receiving() as receiver, TestClient(create_app(settings, hub=hub)) as client:
            live = add_endpoint(hub.store, receiver.url)
            # Nothing listens there: refused, retried once, then failed.
            dead = add_endpoint(hub.store, "http://127.0.0.1:9/hook")
            add_messages(hub.store, live.id, 4, wake=hub.wake_webhooks)
            add_messages(hub.store, dead.id, 2, wake=hub.wake_webhooks)
            receiver.wait_for(4)

            def settled() -> bool:
                with hub.store.read() as conn:
                    statuses = conn.execute(sa.select(webhook_messages.c.status)).scalars()
                    return Counter(statuses) == {"delivered": 4, "failed": 2}

            eventually(settled)
            samples = scrape(client)
    finally:
        hub.close()
    outcomes = labelled(samples, "waypost_webhook_deliveries_total", "outcome")
    assert outcomes == {"delivered": 4, "retrying": 2, "failed": 2}
    assert value(samples, "waypost_webhook_delivery_lag_seconds_count") == 4
    assert 0 < value(samples, "waypost_webhook_delivery_lag_seconds_sum") < 4 * 10


def test_purges_are_counted_with_what_they_deleted(
    hub: Hub, client: TestClient, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    short = make_type(name="Short", retention_days=10)
    tracker.log(
        [{"type": short.code_name, "value": "v", "occurredAt": ago(d)} for d in (5, 20, 30)]
    )
    run = hub.retention.purge()
    assert run is not None
    assert run.activities_deleted == 2
    samples = scrape(client)
    assert labelled(samples, "waypost_purge_runs_total", "status") == {"finished": 1}
    purged = labelled(samples, "waypost_purged_rows_total", "kind")
    assert purged["activities"] == run.activities_deleted
    assert purged["rejected"] == run.rejected_deleted
    assert purged["rollups"] == run.rollups_deleted


def test_the_token_guards_the_metrics_when_set(
    make_settings: Callable[..., Settings], expect_error: ErrorCheck
) -> None:
    settings = make_settings(metrics_token="s3cret-metrics-token")
    hub = Hub(settings)
    try:
        with TestClient(create_app(settings, hub=hub)) as client:
            expect_error(client.get("/metrics"), 401, "unauthorized")
            wrong = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            expect_error(wrong, 401, "unauthorized")
            samples = scrape(client, {"Authorization": "Bearer s3cret-metrics-token"})
            assert value(samples, "process_open_fds") > 0
            # Health checks stay open.
            assert client.get("/healthz").status_code == 200
    finally:
        hub.close()


@pytest.mark.slow
def test_several_processes_answer_one_sum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two processes serving one database, as workers do, with one multiprocess directory:
    # a scrape of either counts what both did.
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    first = WaypostServer(tmp_path).start()
    try:
        second = WaypostServer(tmp_path)
        second.admin_key = first.admin_key
        second.start()
        try:
            sent = {first: 7, second: 5}
            for server, n in sent.items():
                headers = {"Authorization": f"Bearer {first.tracking_key}"}
                with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
                    contact = http.post("/tracking/contacts").json()["contact"]
                    for i in range(n):
                        body = {
                            "channel": first.channel,
                            "contact": contact,
                            "activities": [{"type": "pagevisit", "url": f"https://a.example/{i}"}],
                        }
                        assert http.post("/tracking/activities", json=body).status_code == 207
            stored = first.count("SELECT count(*) FROM activities")
            assert stored == 12
            for server in (first, second):
                with httpx.Client(base_url=server.url, timeout=10) as http:
                    route = {"method": "POST", "route": "/tracking/activities", "status": "207"}

                    def counted(http: httpx.Client = http, route: dict[str, str] = route) -> bool:
                        # Each process adds its requests to its file within a second.
                        samples = scrape(http)
                        return value(samples, "waypost_http_requests_total", **route) == 12

                    eventually(counted, timeout=10, every=0.2)
                    samples = scrape(http)
                assert value(samples, "waypost_activities_acknowledged_total") == stored
        finally:
            second.stop()
    finally:
        first.stop()
