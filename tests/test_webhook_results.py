"""What webhook attempts come to, recorded in one transaction: attempts logged, messages
delivered, pending or failed, endpoints' failing streaks, 410 and five days disabling."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from waypost.clock import FakeClock
from waypost.services.webhook_claims import Claimed, Destination, claim, due_endpoints
from waypost.services.webhook_results import Outcome, disable, outcome_of, record
from waypost.services.webhook_sending import Answer
from waypost.store import Store

if TYPE_CHECKING:
    from tests.webhook_receiver import add_endpoint, add_messages, attempts, endpoint_row, message
else:
    from webhook_receiver import add_endpoint, add_messages, attempts, endpoint_row, message

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LEASE = NOW + dt.timedelta(seconds=35)
FIVE_DAYS = dt.timedelta(days=5)


def claimed(
    store: Store, count: int = 1, node: str = "node-a"
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    endpoint = add_endpoint(store, "https://a.example/hook", now=NOW)
    add_messages(store, endpoint.id, count, now=NOW)
    with store.write() as conn:
        [target] = [d for d in due_endpoints(conn, NOW) if d.id == endpoint.id]
        taken = claim(conn, target, node, NOW, LEASE, count)
    return endpoint.id, [m.id for m in taken]


def outcome(
    message_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    http_status: int | None = 200,
    *,
    status: str = "delivered",
    at: dt.datetime = NOW,
    error: str | None = None,
    next_attempt_at: dt.datetime | None = None,
    attempt: int = 1,
) -> Outcome:
    return Outcome(
        message_id=message_id,
        endpoint_id=endpoint_id,
        attempt=attempt,
        at=at,
        http_status=http_status,
        duration_ms=12,
        error=error,
        response="ok" if http_status else "",
        status=status,
        next_attempt_at=next_attempt_at,
    )


def write(store: Store, outcomes: list[Outcome], now: dt.datetime = NOW) -> dict[uuid.UUID, str]:
    with store.write() as conn:
        return record(conn, "node-a", outcomes, now, FIVE_DAYS)


def test_a_delivery_is_logged_and_ends_the_lease(store: Store) -> None:
    endpoint, [ident] = claimed(store)
    assert write(store, [outcome(ident, endpoint)]) == {}
    row = message(store, ident)
    assert row["status"] == "delivered"
    assert row["attempts"] == 1
    assert row["delivered_at"] == NOW
    assert row["last_status"] == 200
    assert (row["lease_owner"], row["lease_until"], row["next_attempt_at"]) == (None, None, None)
    [logged] = attempts(store, ident)
    assert (logged["attempt"], logged["http_status"], logged["duration_ms"]) == (1, 200, 12)
    assert logged["response"] == "ok"


def test_a_failure_sets_the_next_attempt_and_starts_a_streak(store: Store) -> None:
    endpoint, [ident] = claimed(store)
    later = NOW + dt.timedelta(seconds=5)
    write(
        store,
        [outcome(ident, endpoint, None, status="pending", error="timeout", next_attempt_at=later)],
    )
    row = message(store, ident)
    assert (row["status"], row["next_attempt_at"], row["last_error"]) == (
        "pending",
        later,
        "timeout",
    )
    assert row["lease_owner"] is None
    assert endpoint_row(store, endpoint)["failing_since"] == NOW
    # A later failure keeps the streak's start; a success ends it.
    write(
        store,
        [
            outcome(
                ident, endpoint, 500, status="pending", at=later, next_attempt_at=later, attempt=2
            )
        ],
    )
    assert endpoint_row(store, endpoint)["failing_since"] == NOW
    write(store, [outcome(ident, endpoint, 200, at=later, attempt=3)])
    assert endpoint_row(store, endpoint)["failing_since"] is None


def test_within_one_batch_the_last_answer_decides(store: Store) -> None:
    endpoint, [a, b] = claimed(store, 2)
    later = NOW + dt.timedelta(seconds=1)
    write(
        store,
        [
            outcome(a, endpoint, 200),
            outcome(b, endpoint, 503, status="pending", at=later, next_attempt_at=later),
        ],
    )
    assert endpoint_row(store, endpoint)["failing_since"] == later
    endpoint, [c, d] = claimed(store, 2)
    write(
        store,
        [
            outcome(c, endpoint, 503, status="pending", next_attempt_at=later),
            outcome(d, endpoint, 200, at=later),
        ],
    )
    assert endpoint_row(store, endpoint)["failing_since"] is None


def test_an_answer_after_the_lease_went_to_another_node_is_logged_only(store: Store) -> None:
    endpoint, [ident] = claimed(store, node="node-b")
    write(store, [outcome(ident, endpoint, 500, status="failed")])
    row = message(store, ident)
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("pending", 0, "node-b")
    assert len(attempts(store, ident)) == 1


def test_410_disables_the_endpoint_and_fails_its_pending_messages(store: Store) -> None:
    endpoint, [gone, *rest] = claimed(store, 3)
    later = NOW + dt.timedelta(seconds=5)
    disabled = write(store, [outcome(gone, endpoint, 410, status="pending", next_attempt_at=later)])
    assert disabled == {endpoint: "gone"}
    row = endpoint_row(store, endpoint)
    assert (row["enabled"], row["disabled_reason"]) == (False, "gone")
    for ident in [gone, *rest]:
        failed = message(store, ident)
        assert (failed["status"], failed["last_error"]) == ("failed", "endpoint_disabled")
        assert failed["next_attempt_at"] is None
        assert failed["lease_owner"] is None
    assert message(store, gone)["last_status"] == 410


def test_five_days_without_a_success_disable_the_endpoint(store: Store) -> None:
    endpoint, [ident] = claimed(store)
    write(store, [outcome(ident, endpoint, 500, status="pending", next_attempt_at=NOW)])
    almost = NOW + FIVE_DAYS - dt.timedelta(seconds=1)
    assert (
        write(
            store,
            [outcome(ident, endpoint, 500, status="pending", at=almost, next_attempt_at=almost)],
            almost,
        )
        == {}
    )
    assert endpoint_row(store, endpoint)["enabled"] is True
    # The answer above was not this node's to record any more (its lease was cleared): take
    # the message again to record a third attempt.
    with store.write() as conn:
        [target] = [d for d in due_endpoints(conn, almost) if d.id == endpoint]
        claim(conn, target, "node-a", almost, almost + dt.timedelta(seconds=35), 1)
    then = NOW + FIVE_DAYS
    disabled = write(
        store,
        [outcome(ident, endpoint, 500, status="pending", at=then, next_attempt_at=then, attempt=3)],
        then,
    )
    assert disabled == {endpoint: "failing"}
    row = endpoint_row(store, endpoint)
    assert (row["enabled"], row["disabled_reason"]) == (False, "failing")
    assert message(store, ident)["last_error"] == "endpoint_disabled"


def test_disabling_twice_changes_nothing(store: Store) -> None:
    endpoint, _ = claimed(store)
    with store.write() as conn:
        assert disable(conn, [endpoint], "gone", NOW) == [endpoint]
        assert disable(conn, [endpoint], "failing", NOW) == []
        assert disable(conn, [], "failing", NOW) == []
    assert endpoint_row(store, endpoint)["disabled_reason"] == "gone"


def test_nothing_to_record_writes_nothing(store: Store) -> None:
    assert write(store, []) == {}


def answered(http_status: int | None, retry_after: float | None = None) -> Answer:
    error = None if http_status else "timeout"
    return Answer(NOW, http_status, 5, error, "", retry_after)


def test_what_an_answer_makes_of_a_message() -> None:
    clock = FakeClock(NOW)
    schedule = (0.1, 0.2)
    target = Destination(uuid.uuid4(), "https://a.example/hook", ("whsec_a2V5",))
    first = Claimed(uuid.uuid4(), target, 1, "{}", NOW, LEASE)
    last = Claimed(uuid.uuid4(), target, 3, "{}", NOW, LEASE)
    delivered = outcome_of(first, answered(204), schedule, 0.5, clock)
    assert (delivered.status, delivered.next_attempt_at) == ("delivered", None)
    retried = outcome_of(first, answered(None), schedule, 0.5, clock)
    assert (retried.status, retried.error) == ("pending", "timeout")
    assert retried.next_attempt_at == NOW + dt.timedelta(seconds=0.1)
    later = outcome_of(first, answered(503, retry_after=30), schedule, 0.5, clock)
    assert later.next_attempt_at == NOW + dt.timedelta(seconds=30)
    failed = outcome_of(last, answered(500), schedule, 0.5, clock)
    assert (failed.status, failed.next_attempt_at, failed.attempt) == ("failed", None, 3)
