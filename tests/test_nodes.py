"""Two `waypost serve` processes on one PostgreSQL database behave as one: a change made on one
reaches the other within a second (over Redis pub/sub, or LISTEN/NOTIFY without Redis), rate
limits are shared, and an activity sent through both is stored once (docs/operations.md,
"Several nodes").

The nodes' own cache refresh is set to a minute, so only the change feed can explain a change
seen within a second.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from waypost.hub import Hub
from waypost.services.channels import Channel
from waypost.services.keys import CreatedKey
from waypost.store.schema import activities

if TYPE_CHECKING:
    from tests.server_support import ServedWaypost
else:
    from server_support import ServedWaypost

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

ORIGIN = "https://bank.example"
# Seen within this long on the other node (the catalog's own refresh is a minute).
WITHIN = 1.0


@contextmanager
def two_nodes(
    tmp_path: Path, database_url: str, **settings: str
) -> Iterator[tuple[ServedWaypost, ServedWaypost]]:
    with ExitStack() as stack:
        nodes = [
            stack.enter_context(
                ServedWaypost(
                    tmp_path,
                    database_url,
                    name=f"node-{name}",
                    log_level="warning",
                    catalog_ttl_seconds="60",
                    **settings,
                )
            ).start()
            for name in "ab"
        ]
        yield nodes[0], nodes[1]


def until_changed(send: Callable[[], int], before: int, after: int) -> tuple[float, int]:
    """Call ``send`` until it answers ``after`` instead of ``before``: the seconds that took,
    and how many calls still got ``before``."""
    start = time.monotonic()
    still = 0
    while True:
        status = send()
        took = time.monotonic() - start
        if status == after:
            return took, still
        assert status == before, status
        still += 1
        assert took < 10, f"still {before} after {took:.1f} s"


def tracking_body(channel: Channel, contact: uuid.UUID, *activities: dict[str, Any]) -> Any:
    return {"channel": str(channel.id), "contact": str(contact), "activities": list(activities)}


@pytest.mark.parametrize("feed", ["redis", "postgresql"])
def test_a_key_disabled_on_one_node_stops_working_on_the_other_within_a_second(
    feed: str,
    database_url: str,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    channel = make_channel()
    tracking = make_key("tracking", channel.id)
    admin = {"Authorization": f"Bearer {make_key('admin').key}"}
    contact = hub.contacts.create_anonymous().contact
    settings = {"redis_url": request.getfixturevalue("redis_url")} if feed == "redis" else {}
    body = tracking_body(channel, contact, {"type": "click", "value": "cta"})
    headers = {"Authorization": f"Bearer {tracking.key}"}
    with two_nodes(tmp_path, database_url, **settings) as (a, b), httpx.Client(timeout=5) as http:

        def on_b() -> int:
            return http.post(f"{b.url}/tracking/activities", json=body, headers=headers).status_code

        assert on_b() == 207  # node B holds the key, enabled, for a minute
        answer = http.patch(
            f"{a.url}/api/keys/{tracking.id}", json={"enabled": False}, headers=admin
        )
        assert answer.status_code == 200, answer.text
        took, still_accepted = until_changed(on_b, 207, 403)
        # And back: enabled on B, usable on A.
        answer = http.patch(
            f"{b.url}/api/keys/{tracking.id}", json={"enabled": True}, headers=admin
        )
        assert answer.status_code == 200, answer.text
        took_back, _ = until_changed(
            lambda: (
                http.post(f"{a.url}/tracking/activities", json=body, headers=headers).status_code
            ),
            403,
            207,
        )
    print(f"node B accepted the disabled key {still_accepted} times, for {took * 1000:.0f} ms")
    assert took <= WITHIN, (took, still_accepted)
    assert took_back <= WITHIN, took_back


def test_a_type_created_on_one_node_is_used_on_the_other_with_its_limits_shared(
    database_url: str,
    redis_url: str,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    tmp_path: Path,
) -> None:
    channel = make_channel(kind="website", allowed_origins=[ORIGIN])
    publishable = make_key("publishable", channel.id).key
    admin = {"Authorization": f"Bearer {make_key('admin').key}"}
    contact = hub.contacts.create_anonymous().contact
    code = f"promo_{uuid.uuid4().hex[:8]}"
    body = (
        f'{{"contact": "{contact}", "cookieLevel": "visitor", '
        f'"activity": {{"type": "{code}", "value": "5000"}}}}'
    )
    created: dict[str, Any] = {}
    try:
        with (
            two_nodes(tmp_path, database_url, redis_url=redis_url) as (a, b),
            httpx.Client(timeout=5) as http,
        ):

            def log(node: ServedWaypost) -> int:
                return http.post(
                    f"{node.url}/browser/activity",
                    params={"key": publishable},
                    content=body,
                    headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
                ).status_code

            assert log(b) == 404  # node B holds the types without it, for a minute
            answer = http.post(
                f"{a.url}/api/activity-types",
                json={
                    "name": "Promo",
                    "code_name": code,
                    "client_side": True,
                    "rate_limits": {"per_contact": {"limit": 3, "window_seconds": 86400}},
                },
                headers=admin,
            )
            assert answer.status_code == 201, answer.text
            created = answer.json()
            took, _ = until_changed(lambda: log(b), 404, 202)
            # 1 stored on B; 2 more pass, alternating, then either node refuses.
            statuses = [log(node) for node in (a, b, a, b, a)]
    finally:
        if created:
            with redis.Redis.from_url(redis_url) as client:
                names = list(client.scan_iter(match=f"waypost:rl:{created['id']}:*"))
                if names:
                    client.delete(*names)
    assert took <= WITHIN, took
    assert statuses == [202, 202, 429, 429, 429]
    with hub.store.read() as conn:
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(activities)
            .where(activities.c.type_id == uuid.UUID(created["id"]))
        ).scalar_one()
    assert stored == 3


def test_activities_through_both_nodes_are_stored_once(
    database_url: str,
    redis_url: str,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    tmp_path: Path,
) -> None:
    channel = make_channel()
    headers = {"Authorization": f"Bearer {make_key('tracking', channel.id).key}"}
    contacts = [hub.contacts.create_anonymous().contact for _ in range(8)]
    failures: list[str] = []
    statuses: dict[str, list[int]] = {}
    lock = threading.Lock()

    def send(node: ServedWaypost, batches: list[tuple[uuid.UUID, list[str]]]) -> None:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            for contact, ids in batches:
                activities_ = [{"type": "click", "value": i, "id": i} for i in ids]
                answer = http.post(
                    "/tracking/activities",
                    json=tracking_body(channel, contact, *activities_),
                    headers=headers,
                )
                with lock:
                    if answer.status_code != 207:
                        failures.append(f"{answer.status_code} {answer.text}")
                        continue
                    for sent, result in zip(ids, answer.json()["results"], strict=True):
                        statuses.setdefault(sent, []).append(result["status"])

    # 10,000 activities in 100 batches, half through each node; then 400 activities sent
    # through both nodes at once, the same batches on each.
    batches = [
        (contacts[n % len(contacts)], [f"bulk-{n}-{i}" for i in range(100)]) for n in range(100)
    ]
    twice = [
        (contacts[n % len(contacts)], [f"twice-{n}-{i}" for i in range(20)]) for n in range(20)
    ]
    with two_nodes(tmp_path, database_url, redis_url=redis_url) as (a, b):
        threads = [
            threading.Thread(target=send, args=(node, batches[k::6]))
            for k, node in enumerate([a, b] * 3)
        ]
        threads += [threading.Thread(target=send, args=(node, twice)) for node in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert not failures, failures[:3]
    for _, ids in batches:
        for sent in ids:
            assert statuses[sent] == [202], sent
    for _, ids in twice:
        for sent in ids:
            assert sorted(statuses[sent]) == [202, 208], sent
    with hub.store.read() as conn:
        rows = conn.execute(
            sa.select(activities.c.client_id, sa.func.count())
            .where(activities.c.channel_id == channel.id)
            .group_by(activities.c.client_id)
        ).all()
    counts = dict(rows)  # type: ignore[var-annotated]
    assert len(counts) == 10_000 + 400
    assert set(counts.values()) == {1}
    assert set(counts) == set(statuses)
