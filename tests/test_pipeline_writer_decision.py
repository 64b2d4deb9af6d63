"""The writer's decision step on plain in-memory inputs: no database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from waypost.errors import ErrorDetail
from waypost.ids import new_id
from waypost.pipeline.catalog import ChannelInfo, TypeInfo
from waypost.pipeline.prepare import Accepted, Rejected
from waypost.pipeline.writer_decision import (
    OVER_REJECTED_ROOM,
    ActivityResult,
    Job,
    Reads,
    decide,
)
from waypost.pipeline.writer_rows import ACTIVITY_COLUMNS, REJECTED_COLUMNS
from waypost.records.consents import ConsentState
from waypost.store.codec import Codec

# PostgreSQL's codec keeps Python values as they are, so rows read plainly.
CODEC = Codec("postgresql")
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
CLICK = TypeInfo(new_id(), "click", "Click", True, True, (), "reject", None, None)
CONSENT = new_id()
ANN, BOB = new_id(), new_id()


def channel(*, consent: bool = False, enforce: bool = False) -> ChannelInfo:
    return ChannelInfo(
        id=new_id(),
        kind="website",
        default_language="en",
        allowed_origins=frozenset(),
        tracking_consent="TrackingConsent" if consent else None,
        tracking_consent_id=CONSENT if consent else None,
        enforce_consent=enforce,
        identity_secret="s",
    )


WEB = channel()


def click(client_id: str | None = None, **changes: Any) -> Accepted:
    item = Accepted(
        id=new_id(),
        type=CLICK,
        client_id=client_id,
        title="Click",
        value="v",
        url=None,
        referrer=None,
        fields=None,
        primary_value=None,
        flags=None,
        occurred_at=dt.datetime(2026, 2, 28, 23, 30, tzinfo=dt.timezone(-dt.timedelta(hours=2))),
        contact_fields=None,
        payload=b'{"type": "click", "value": "v"}',
    )
    for name, value in changes.items():
        setattr(item, name, value)
    return item


BAD = Rejected(400, ErrorDetail("missing_field", "Send a value.", "value"), b"{}", "click")


def reads(**given: Any) -> Reads:
    values: dict[str, Any] = {
        "contacts": {ANN: ANN, BOB: BOB},
        "consents": {},
        "client_ids": {},
        "replays": set(),
    }
    values.update(given)
    return Reads(**values)


def job(*items: Accepted | Rejected, contact: uuid.UUID | None = ANN, **options: Any) -> Job:
    return Job(options.pop("channel", WEB), contact, list(items), NOW, **options)


def column(row: tuple[object, ...], name: str, columns: tuple[str, ...] = ACTIVITY_COLUMNS) -> Any:
    return row[columns.index(name)]


def test_a_violation_of_a_long_field_name_is_counted_under_the_columns_width() -> None:
    """A client names unknown fields: one longer than field_violations.field (200 characters)
    is counted under its first 200, so that it cannot fail the batch's transaction."""
    name = "y" * 5000
    item = click(flags=[{"field": name, "code": "unknown_field"}])
    decision = decide([job(item)], reads(), CODEC)
    assert decision.results == [[ActivityResult(202, item.id)]]
    assert decision.rows.violations == {(CLICK.id, "y" * 200, "unknown_field"): 1}


def test_accepted_items_are_stored_and_counted_per_utc_day() -> None:
    first, second = click(), click(flags=[{"field": "extra", "code": "unknown_field"}])
    decision = decide([job(first, second, BAD)], reads(), CODEC)
    assert decision.results == [
        [
            ActivityResult(202, first.id),
            ActivityResult(202, second.id),
            ActivityResult(400, None, BAD.error),
        ]
    ]
    assert decision.missing == [False]
    rows = decision.rows
    assert [column(r, "id") for r in rows.activities] == [first.id, second.id]
    assert {column(r, "contact_id") for r in rows.activities} == {ANN}
    # 23:30 at -02:00 is the next UTC day.
    assert rows.rollups == {(ANN, CLICK.id, dt.date(2026, 3, 1)): 2}
    assert rows.violations == {(CLICK.id, "extra", "unknown_field"): 1}
    assert rows.touched == {ANN}
    assert rows.touched_types == {CLICK.id}
    [rejected] = rows.rejected
    assert column(rejected, "reason", REJECTED_COLUMNS) == "missing_field"
    assert column(rejected, "contact_id", REJECTED_COLUMNS) == ANN
    assert column(rejected, "source", REJECTED_COLUMNS) == "tracking"
    assert rows.replay_marks == []


def test_a_merged_contact_stores_under_the_one_it_was_merged_into() -> None:
    decision = decide([job(click(), contact=BOB)], reads(contacts={BOB: ANN}), CODEC)
    assert [column(r, "contact_id") for r in decision.rows.activities] == [ANN]
    assert decision.rows.touched == {ANN}


def test_client_ids_stored_before_or_earlier_in_the_batch_are_208() -> None:
    stored = new_id()
    first, again, other = click("c-1"), click("c-1"), click("c-2")
    decision = decide(
        [job(other), job(first, again, contact=BOB)],
        reads(client_ids={(WEB.id, "c-2"): stored}),
        CODEC,
    )
    assert decision.results == [
        [ActivityResult(208, stored)],
        [ActivityResult(202, first.id), ActivityResult(208, first.id)],
    ]
    assert [column(r, "id") for r in decision.rows.activities] == [first.id]


def test_decide_leaves_the_reads_as_they_were() -> None:
    given = reads()
    decide([job(click("c-1"))], given, CODEC)
    assert given.client_ids == {}


def test_a_missing_contact_rejects_every_item_with_404() -> None:
    missing = new_id()
    decision = decide([job(click(), BAD, contact=missing), job(click())], reads(), CODEC)
    assert decision.missing == [True, False]
    assert [r.status for r in decision.results[0]] == [404, 404]
    assert {r.error.code for r in decision.results[0] if r.error} == {"contact_not_found"}
    assert [column(r, "type_code", REJECTED_COLUMNS) for r in decision.rows.rejected] == [
        "click",
        "click",
    ]
    assert {column(r, "contact_id", REJECTED_COLUMNS) for r in decision.rows.rejected} == {missing}
    assert len(decision.rows.activities) == 1


def test_rejected_items_of_no_contact_are_kept_under_none() -> None:
    decision = decide([job(BAD, contact=None, source="segment")], reads(), CODEC)
    assert decision.missing == [False]
    [row] = decision.rows.rejected
    assert column(row, "contact_id", REJECTED_COLUMNS) is None
    assert column(row, "source", REJECTED_COLUMNS) == "segment"
    assert column(row, "payload", REJECTED_COLUMNS) == "{}"


def test_an_enforced_consent_refuses_contacts_without_an_agreement() -> None:
    enforced = channel(consent=True, enforce=True)
    earlier = new_id()
    retry, fresh = click("kept"), click()
    decision = decide(
        [job(retry, fresh, channel=enforced), job(click(), contact=BOB, channel=enforced)],
        reads(
            consents={
                (CONSENT, BOB): ConsentState(True, 3),
                (CONSENT, ANN): ConsentState(False, 3),
            },
            client_ids={(enforced.id, "kept"): earlier},
        ),
        CODEC,
    )
    # A retry of an activity stored before the revocation is still a 208.
    assert [r.status for r in decision.results[0]] == [208, 403]
    assert decision.results[0][1].error is not None
    assert decision.results[0][1].error.code == "consent_required"
    [stored] = decision.rows.activities
    assert (column(stored, "consent_agreed"), column(stored, "consent_version")) == (True, 3)


def test_a_recorded_consent_without_an_agreement_stores_false() -> None:
    recorded = channel(consent=True)
    decision = decide([job(click(), channel=recorded)], reads(), CODEC)
    [stored] = decision.rows.activities
    assert (column(stored, "consent_agreed"), column(stored, "consent_version")) == (False, None)
    plain = decide([job(click())], reads(), CODEC)
    assert column(plain.rows.activities[0], "consent_agreed") is None


def test_a_browser_job_requires_consent_whatever_the_channel_enforces() -> None:
    recorded = channel(consent=True)
    decision = decide([job(click(), channel=recorded, require_consent=True)], reads(), CODEC)
    assert [r.status for r in decision.results[0]] == [403]


def test_data_inputs_wait_for_their_contact_before_they_are_counted() -> None:
    item = click(contact_fields={"email": "a@x.example"})
    decision = decide([job(item)], reads(), CODEC)
    rows = decision.rows
    [data] = rows.data_inputs
    assert (data.row, data.contact, data.fields) == (0, ANN, {"email": "a@x.example"})
    assert (data.type_id, data.day) == (CLICK.id, dt.date(2026, 3, 1))
    assert rows.rollups == {}
    assert rows.touched == set()
    assert rows.touched_types == {CLICK.id}


def test_replays_mark_their_rejected_activity_with_the_outcome() -> None:
    stored, again, refused = click(), click(), BAD
    marks = [new_id(), new_id(), new_id()]
    decision = decide(
        [
            job(stored, replay_of=marks[0]),
            job(again, replay_of=marks[1]),
            job(refused, replay_of=marks[2]),
        ],
        reads(replays={again.id}),
        CODEC,
    )
    assert [[r.status for r in results] for results in decision.results] == [[202], [208], [400]]
    assert decision.rows.replay_marks == [
        (NOW, "stored", stored.id, marks[0]),
        (NOW, "duplicate", again.id, marks[1]),
        (NOW, "missing_field", None, marks[2]),
    ]
    # A replay that stays rejected keeps its one rejected row: no second one.
    assert decision.rows.rejected == []
    assert [column(r, "id") for r in decision.rows.activities] == [stored.id]


def test_the_items_of_an_erased_contact_are_refused_and_written_nowhere() -> None:
    gone = new_id()
    items = (click(), BAD)
    decision = decide([job(*items, contact=gone), job(click())], reads(erased={gone}), CODEC)
    [erased, stored] = decision.results
    assert [(r.status, r.error and r.error.code) for r in erased] == [
        (403, "contact_erased"),
        (403, "contact_erased"),
    ]
    assert stored[0].status == 202
    # Not a missing contact (a 404 of the whole request): answered per item.
    assert decision.missing == [False, False]
    assert decision.rows.rejected == []
    assert len(decision.rows.activities) == 1


def test_a_missing_contact_that_was_not_erased_is_still_a_404() -> None:
    gone = new_id()
    decision = decide([job(click(), contact=gone)], reads(), CODEC)
    assert decision.missing == [True]
    assert decision.results[0][0].status == 404
    assert len(decision.rows.rejected) == 1


def test_a_rejected_item_not_to_keep_is_answered_and_not_written() -> None:
    quiet = Rejected(403, ErrorDetail("contact_erased", "Erased."), b"{}", "datainput", keep=False)
    decision = decide([job(quiet, BAD)], reads(), CODEC)
    assert [r.status for r in decision.results[0]] == [403, 400]
    assert [column(r, "reason", REJECTED_COLUMNS) for r in decision.rows.rejected] == [
        "missing_field"
    ]


def test_jobs_that_keep_ids_answer_208_for_an_id_stored_before_or_earlier_in_the_batch() -> None:
    known, new = click(), click()
    again = click(id=new.id)
    decision = decide(
        [job(known, new, keep_ids=True), job(again, keep_ids=True)],
        reads(replays={known.id}),
        CODEC,
    )
    assert decision.results == [
        [ActivityResult(208, known.id), ActivityResult(202, new.id)],
        [ActivityResult(208, new.id)],
    ]
    assert [column(r, "id") for r in decision.rows.activities] == [new.id]


# -- the room of a page's job for rejected activities -----------------------------------------


def test_a_job_keeps_rejected_items_within_its_room_and_refuses_the_rest_with_429() -> None:
    """A page's job may keep as many rejected activities as its address has left of its hourly
    cap; past that, each is answered 429 and written nowhere. Accepted items are stored."""
    quiet = Rejected(403, ErrorDetail("contact_erased", "Erased."), b"{}", "datainput", keep=False)
    stored = click()
    capped = job(BAD, quiet, stored, BAD, BAD, rejected_room=1)
    free = job(BAD, BAD, contact=BOB)
    decision = decide([capped, free], reads(), CODEC)
    over = ActivityResult(429, None, OVER_REJECTED_ROOM.detail)
    assert decision.results[0] == [
        ActivityResult(400, None, BAD.error),
        ActivityResult(403, None, quiet.error),
        ActivityResult(202, stored.id),
        over,
        over,
    ]
    assert OVER_REJECTED_ROOM.status == 429
    assert OVER_REJECTED_ROOM.code == "rate_limited"
    # The job without a room (None: a server's) keeps all of its own.
    assert [r.status for r in decision.results[1]] == [400, 400]
    assert decision.kept == [(1, 2), (2, 0)]
    assert [column(r, "contact_id", REJECTED_COLUMNS) for r in decision.rows.rejected] == [
        ANN,
        BOB,
        BOB,
    ]
    assert [column(r, "id") for r in decision.rows.activities] == [stored.id]
    assert decision.rows.rejections == {
        "missing_field": 3,
        "contact_erased": 1,
        "rate_limited": 2,
    }


def test_the_room_holds_for_what_the_writer_itself_rejects() -> None:
    """A missing contact or a consent not agreed to is known only here: those rejections
    count against the room as any other."""
    gone = new_id()
    missing = job(click(), click(), BAD, contact=gone, rejected_room=2)
    unagreed = job(
        click(), click(), channel=channel(consent=True), require_consent=True, rejected_room=0
    )
    decision = decide([missing, unagreed], reads(), CODEC)
    assert [r.status for r in decision.results[0]] == [404, 404, 429]
    assert decision.missing == [True, False]
    assert [r.status for r in decision.results[1]] == [429, 429]
    assert decision.kept == [(2, 1), (0, 2)]
    assert len(decision.rows.rejected) == 2
    assert decision.rows.activities == []


def test_a_room_is_read_not_used_up_so_a_job_decided_again_decides_alike() -> None:
    capped = job(BAD, BAD, BAD, rejected_room=2)
    first = decide([capped], reads(), CODEC)
    again = decide([capped], reads(), CODEC)
    assert first.results == again.results
    assert first.kept == again.kept == [(2, 1)]
    assert capped.rejected_room == 2
