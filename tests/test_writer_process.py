"""The writer in a process of its own (``WAYPOST_WRITER_PROCESS``), on both databases: the same
answers as the writer of the server's process, the group updates and the metrics of the server
hear of its commits, the playbooks it runs hear of definitions changed on the server's side,
and when it is killed the requests waiting on it are answered 503, a new one is started, and
nothing answered 202 is missing."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import signal
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import msgspec
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

import waypost.pipeline.writer as writer_module
import waypost.services.writer_process as writer_process
from waypost.app import create_app
from waypost.errors import ErrorDetail
from waypost.hub import Hub
from waypost.ids import utcnow
from waypost.pipeline.prepare import Accepted, Rejected, prepare
from waypost.pipeline.writer_decision import Job
from waypost.services.activity_types import ActivityType
from waypost.services.writer_process import (
    PICKLE,
    VALIDATE_APART_AT_MOST,
    ChangeNote,
    JobAnswer,
    Jobs,
    WireRaw,
    WriterProcess,
    _decode_order,
    _dumps,
    _jobs,
    _Link,
    _loads,
    _unframe,
    _unwire,
)
from waypost.settings import Settings
from waypost.store import StorageUnavailable
from waypost.store.engine import Touched
from waypost.store.schema import activities, rejected_activities

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker, check_error
    from tests.playbook_support import LOANS, Playbooks, insert_endpoint, loan_trigger, runs
    from tests.writer_support import check_a_stream_waits_at_most_the_delay, started
else:
    from conftest import check_error
    from playbook_support import LOANS, Playbooks, insert_endpoint, loan_trigger, runs
    from writer_support import check_a_stream_waits_at_most_the_delay, started


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A long cache life: a playbook made after the process started is seen only because the
    # change reached the process, not because its cache ran out.
    return make_settings(writer_process=True, catalog_ttl_seconds=3600)


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    the_hub = Hub(settings)
    assert isinstance(the_hub.writer, WriterProcess)
    yield the_hub
    the_hub.close()


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[{"name": "amount", "type": "decimal", "primary": True}],
    )


def process(hub: Hub) -> WriterProcess:
    assert isinstance(hub.writer, WriterProcess)
    return hub.writer


def count(hub: Hub, table: sa.Table) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def loan(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": LOANS, "value": f"v{n}", "fields": {"amount": f"{n}.50"}, **extra}


def test_jobs_cross_the_pipe_as_they_were(hub: Hub, tracker: Tracker, loans: ActivityType) -> None:
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    now = utcnow()
    raws = [
        b'{"type": "custom_loan_calculator", "value": "a", "fields": {"amount": "5.5"}, '
        b'"id": "c1", "url": "https://b.example/x", "occurredAt": "2026-01-02T03:04:05+02:00"}',
        b'{"type": "datainput", "value": "f", "contactFields": {"ContactFirstName": "Ann", '
        b'"ContactBirthday": "1990-12-31"}}',
        b'{"type": "nope"}',
        b"{}",
    ]
    items = [prepare(raw, snapshot, now, 16_384) for raw in raws]
    assert [type(i) for i in items] == [Accepted, Accepted, Rejected, Rejected]
    job = Job(
        channel, uuid.uuid4(), items, now, source="import", keep_ids=True, ticket=7, rejected_room=3
    )
    [back] = _unwire(_loads(_dumps(_jobs([job])), _decode_order))
    assert back.items == job.items
    assert back.rejected_room == 3
    assert isinstance(back.items[1], Accepted)
    assert back.items[1].contact_fields == {"first_name": "Ann", "birthday": dt.date(1990, 12, 31)}
    assert (back.channel, back.contact_id, back.received_at) == (channel, job.contact_id, now)
    assert (back.source, back.keep_ids, back.ticket, back.dry_run) == ("import", True, 7, False)
    note = ChangeNote("activity_type", uuid.uuid4())
    assert _loads(_dumps(note), _decode_order) == note
    assert isinstance(_loads(_dumps(_jobs([])), _decode_order), Jobs)
    # What MessagePack cannot hold (a flagged value beyond 64 bits) goes as a pickle.
    flagged = [{"field": "n", "code": "unknown_field", "message": "m", "value": 2**70}]
    assert isinstance(items[0], Accepted)
    items[0].flags = flagged
    data = _dumps(_jobs([job]))
    assert data[:1] == PICKLE
    [back] = _unwire(_loads(data, _decode_order))
    assert back.items == job.items


def test_activities_to_validate_cross_the_pipe_as_sent(hub: Hub, tracker: Tracker) -> None:
    channel = hub.catalog.get().channels[tracker.channel.id]
    now = utcnow()
    sent = [b'{"type": "click", "value": "a"}', b"{not json"]
    job = Job(channel, uuid.uuid4(), [], now, raw=sent, ticket=3)
    message = _loads(_dumps(_jobs([job])), _decode_order)
    assert [item for wire in message.jobs for item in wire.items] == [WireRaw(r) for r in sent]
    seen: list[tuple[bytes, dt.datetime]] = []
    rejected = Rejected(400, ErrorDetail("invalid_json", "m"), b"", None, True)

    def validate(raw: bytes, received_at: dt.datetime) -> Rejected:
        seen.append((raw, received_at))
        return rejected

    [back] = _unwire(message, validate)
    assert seen == [(sent[0], now), (sent[1], now)]
    assert back.items == [rejected, rejected]
    assert (back.ticket, back.raw) == (3, None)
    # Only the writer's process validates: elsewhere such a message is refused.
    with pytest.raises(ValueError, match="nothing to validate it with"):
        _unwire(message)


def test_requests_of_few_activities_are_validated_in_the_writer_process(
    client: TestClient,
    hub: Hub,
    tracker: Tracker,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    validated_here: list[bytes] = []
    here = prepare

    def counted(raw: bytes, *args: Any) -> Accepted | Rejected:
        validated_here.append(raw)
        return here(raw, *args)

    monkeypatch.setattr(writer_module, "prepare", counted)
    contact = tracker.new_contact()
    assert [r["status"] for r in tracker.log([loan(1)], contact)] == [404]  # no such type yet
    # A type made after the process read its catalog (kept for an hour): it hears of it.
    created = client.post(
        "/api/activity-types",
        json={
            "name": "Loan calculator usage",
            "code_name": LOANS,
            "fields": [{"name": "amount", "type": "decimal", "primary": True}],
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    few = [loan(n) for n in range(VALIDATE_APART_AT_MOST - 1)] + [loan(0, fields={"amount": "x"})]
    results = tracker.log(few, contact)
    assert [r["status"] for r in results] == [202] * (len(few) - 1) + [400]
    assert results[-1]["error"]["code"] == "invalid_field"
    assert validated_here == []
    # More activities than that: validated on the server's side, answered the same.
    many = [loan(n) for n in range(VALIDATE_APART_AT_MOST + 1)]
    assert [r["status"] for r in tracker.log(many, contact)] == [202] * len(many)
    assert len(validated_here) == len(many)
    assert count(hub, activities) == len(few) - 1 + len(many)
    assert count(hub, rejected_activities) == 2  # the unknown type, the amount "x"


def test_the_writer_process_stores_and_answers_as_the_writer_does(
    client: TestClient,
    hub: Hub,
    tracker: Tracker,
    loans: ActivityType,
    admin_headers: dict[str, str],
) -> None:
    touched: Touched = []
    heard = hub.store.on_commit
    assert heard is not None

    def on_commit(notes: Touched) -> None:
        touched.extend(notes)
        heard(notes)

    hub.store.on_commit = on_commit
    contact = tracker.new_contact()
    sent = [loan(1, id="a1"), loan(2, id="a2"), {"type": LOANS, "fields": {"amount": "x"}}]
    first = tracker.log(sent, contact)
    assert [r["status"] for r in first] == [202, 202, 400]
    assert process(hub).pid is not None
    assert process(hub).pid != os.getpid()
    again = tracker.log(sent[:2], contact)
    assert [(r["status"], r["id"]) for r in again] == [(208, first[0]["id"]), (208, first[1]["id"])]
    assert count(hub, activities) == 2
    assert count(hub, rejected_activities) == 1
    # Unknown contact: 404 for the request, as with the writer in the server's process.
    check_error(tracker.post([loan(3)], str(uuid.uuid4())), 404, "contact_not_found", "contact")
    # The server's metrics and group updates heard of the commits.
    assert hub.metrics.acknowledged._value.get() == 2
    assert hub.metrics.deduplicated._value.get() == 2
    assert hub.writer.batches >= 2
    assert uuid.UUID(contact) in {c for ids, _ in touched for c in ids}
    log = client.get(f"/api/contacts/{contact}/activities", headers=admin_headers)
    assert log.status_code == 200, log.text
    assert {a["id"] for a in log.json()["data"]} == {first[0]["id"], first[1]["id"]}


def test_a_playbook_made_after_the_start_fires_in_the_writer_process(
    client: TestClient,
    hub: Hub,
    tracker: Tracker,
    loans: ActivityType,
    admin_headers: dict[str, str],
) -> None:
    woken: list[bool] = []
    process(hub).wake = lambda: woken.append(True)
    contact = tracker.new_contact()
    # The process has read its playbooks (none) and keeps them for an hour...
    assert [r["status"] for r in tracker.log([loan(1)], contact)] == [202]
    assert runs(hub) == []
    # ...but hears of the new one at once.
    book = Playbooks(client, admin_headers).create(loan_trigger(), insert_endpoint(hub))
    [stored] = tracker.log([loan(2)], contact)
    [run] = runs(hub)
    assert (run["playbook_id"], run["subject"]) == (uuid.UUID(book["id"]), stored["id"])
    # The webhook dispatcher was told that a message is due.
    assert woken == [True]


def test_killing_the_writer_process_answers_503_then_stores_again(
    client: TestClient, hub: Hub, tracker: Tracker, loans: ActivityType
) -> None:
    contact = tracker.new_contact()
    tracker.log([loan(0)], contact)
    first_pid = process(hub).pid
    assert first_pid is not None
    first = process(hub)._link
    assert first is not None
    serving = first.loop
    assert serving is not None, "the server's loop reads the answers"
    acknowledged: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def send(n: int) -> None:
        i = 0
        while not stop.is_set():
            answer = tracker.post([loan(i, id=f"t{n}-{i}")], contact)
            i += 1
            with lock:
                statuses.append(answer.status_code)
                if answer.status_code == 207:
                    acknowledged.extend(
                        r["id"] for r in answer.json()["results"] if r["status"] == 202
                    )

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (hub.writer.running and process(hub).pid not in (None, first_pid)):
            assert time.monotonic() < deadline, "no new writer process"
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert 503 in statuses, "no request was waiting on the killed process"
    assert statuses[-1] == 207 or 207 in statuses[-8:]
    assert process(hub).restarts == 1
    second = process(hub)._link
    assert second is not None
    assert second is not first
    assert second.loop is serving
    assert first.loop is None
    assert first.finished.is_set()
    assert reader_threads() == []
    with hub.store.read() as conn:
        stored = {str(i) for i in conn.execute(sa.select(activities.c.id)).scalars()}
    assert set(acknowledged) <= stored
    assert [r["status"] for r in tracker.log([loan(99)], contact)] == [202]


def test_a_pages_job_keeps_its_rejected_activities_within_its_room(
    hub: Hub, tracker: Tracker
) -> None:
    """The room of a page's job crosses the pipe, and what the writer's process kept and
    refused of its rejected activities comes back with the answer."""
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    contact = uuid.UUID(tracker.new_contact())
    now = utcnow()
    raws = [b'{"type": "nope"}', b'{"type": "click", "value": "x"}', b"{}", b'{"type": "no"}']
    items = [prepare(raw, snapshot, now, 999) for raw in raws]
    job = Job(channel, contact, items, now, "browser", rejected_room=2)
    [results] = hub.writer.submit_and_wait([job])
    assert [r.status for r in results] == [404, 202, 400, 429]
    assert results[3].error is not None
    assert results[3].error.code == "rate_limited"
    assert (job.rejected_kept, job.rejected_refused) == (2, 1)
    assert count(hub, rejected_activities) == 2
    # What the writer rejects itself counts too: an unknown contact's.
    missing = Job(channel, uuid.uuid4(), items[1:2], now, "browser", rejected_room=0)
    [[result]] = hub.writer.submit_and_wait([missing])
    assert result.status == 429
    assert (missing.missing_contact, missing.rejected_kept, missing.rejected_refused) == (
        True,
        0,
        1,
    )
    assert count(hub, rejected_activities) == 2


def test_stopping_answers_every_job_in_flight(hub: Hub, tracker: Tracker) -> None:
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    contact = uuid.UUID(tracker.new_contact())
    started(hub.writer)
    outcomes: list[Any] = []
    lock = threading.Lock()
    # Once stop() begins, no new job: one submitted after it returned would start a new
    # writer process (start() after stop() is allowed), which is not what is tested here.
    stopping = threading.Event()
    submitted: list[int] = []

    def submit(n: int) -> None:
        for i in range(30):
            if stopping.is_set():
                return
            with lock:
                submitted.append(n)
            now = dt.datetime.now(dt.UTC)
            raw = f'{{"type": "click", "value": "x", "id": "s{n}-{i}"}}'.encode()
            job = Job(channel, contact, [prepare(raw, snapshot, now, 999)], now)
            try:
                [[result]] = hub.writer.submit_and_wait([job])
                outcome: Any = result.id
            except StorageUnavailable:
                outcome = "503"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    stopping.set()
    hub.writer.stop()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a job was never answered"
    assert len(outcomes) == len(submitted)
    acknowledged = {str(o) for o in outcomes if o != "503"}
    assert acknowledged, "nothing was stored before the stop"
    with hub.store.read() as conn:
        stored = {str(i) for i in conn.execute(sa.select(activities.c.id)).scalars()}
    assert acknowledged <= stored
    assert not hub.writer.running


def test_a_steady_stream_waits_at_most_the_delay_after_its_first_job(
    hub: Hub, tracker: Tracker, settings: Settings
) -> None:
    """WAYPOST_COMMIT_MAX_DELAY_MS bounds how long the process's transaction waits for more
    after its first job, as the writer thread's does."""
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    contact = uuid.UUID(tracker.new_contact())
    writer = WriterProcess(msgspec.structs.replace(settings, commit_max_delay_ms=300), hub.store)
    try:
        started(writer)
        sent = check_a_stream_waits_at_most_the_delay(writer, snapshot, channel, contact)
    finally:
        writer.stop()
    assert count(hub, activities) == sent


def read_only(database_url: str) -> str:
    """The same database, opened so that no transaction can write."""
    if database_url.startswith("sqlite:///"):
        return f"sqlite:///file:{database_url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    joint = "&" if "?" in database_url else "?"
    return f"{database_url}{joint}options=-c%20default_transaction_read_only%3Don"


def test_a_database_the_writer_process_cannot_write_answers_503_and_never_202(
    settings: Settings, tracker: Tracker, hub: Hub, expect_error: ErrorCheck
) -> None:
    contact = tracker.new_contact()
    outage = msgspec.structs.replace(settings, database_url=read_only(settings.database_url))
    outage_hub = Hub(outage)
    try:
        assert isinstance(outage_hub.writer, WriterProcess)
        with TestClient(create_app(outage, hub=outage_hub)) as impatient:
            body = {
                "channel": str(tracker.channel.id),
                "contact": contact,
                "activities": [{"type": "click", "value": "x", "id": "ro-1"}],
            }
            for _ in range(2):
                answer = impatient.post("/tracking/activities", json=body, headers=tracker.headers)
                expect_error(answer, 503, "storage_unavailable")
            # The process stays up: an outage is not a crash.
            assert outage_hub.writer.running
            assert isinstance(outage_hub.writer, WriterProcess)
            assert outage_hub.writer.restarts == 0
    finally:
        outage_hub.close()
    assert count(hub, activities) == 0
    # The same request, on the database that can be written, is stored.
    assert [
        r["status"] for r in tracker.log([{"type": "click", "value": "x", "id": "ro-1"}], contact)
    ] == [202]


def test_messages_the_pipe_cannot_take_now_follow_in_order() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    answers, _ = multiprocessing.Pipe(duplex=False)
    link = _Link(cast(Any, None), writer, answers)
    link.drainer = threading.Thread(target=link.drain, daemon=True)
    link.drainer.start()
    sent = [ChangeNote(f"kind-{n}-" + "x" * 20_000, uuid.uuid4()) for n in range(200)]
    try:
        # 4 MB into a pipe of at most 1 MiB that nobody reads yet: never blocks the sender.
        for note in sent:
            link.send(note)
        assert link.backlog, "everything fit in the pipe"
        got = [_loads(reader.recv_bytes(), _decode_order) for _ in sent]
        assert got == sent
    finally:
        link.close()
        link.drainer.join(5)
    assert not link.drainer.is_alive()
    with pytest.raises(BrokenPipeError):
        link.send(sent[0])


def test_a_request_the_writer_process_cannot_validate_fails_alone(
    hub: Hub, tracker: Tracker
) -> None:
    channel = hub.catalog.get().channels[tracker.channel.id]
    now = utcnow()
    raw = Job(channel, uuid.uuid4(), [], now, raw=[b'{"type": "click"}'], ticket=1)
    rejected = Rejected(400, ErrorDetail("invalid_json", "m"), b"", None, True)
    ready = Job(channel, uuid.uuid4(), [rejected], now, ticket=2)
    message = _loads(_dumps(_jobs([raw, ready])), _decode_order)

    def validate(_raw: bytes, _at: dt.datetime) -> Rejected:
        raise StorageUnavailable("the catalog could not be read")

    failed: list[JobAnswer] = []
    [taken] = _unwire(message, validate, failed)
    assert taken.ticket == 2
    assert failed == [JobAnswer(1, None, failure="the catalog could not be read")]


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Each message sent to the writer's process: its jobs' numbers of activities."""
    sent: list[list[int]] = []
    made = writer_process._jobs

    def spied(batch: list[Job]) -> Jobs:
        sent.append([len(job.raw or job.items) for job in batch])
        return made(batch)

    monkeypatch.setattr(writer_process, "_jobs", spied)
    return sent


CLICK = b'{"type": "click", "value": "x"}'


def in_one_turn(hub: Hub, tracker: Tracker, requests: list[int]) -> list[list[Any]]:
    """Submit one request of that many clicks per entry of ``requests``, each for a new
    contact, all in one turn of one event loop; their results."""
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    contacts = [uuid.UUID(tracker.new_contact()) for _ in requests]

    async def send() -> list[list[Any]]:
        now = utcnow()
        return await asyncio.gather(
            *(
                hub.writer.submit_raw(channel, contact, [CLICK] * n, snapshot, now, 999)
                for contact, n in zip(contacts, requests, strict=True)
            )
        )

    return asyncio.run(send())


def test_the_jobs_of_one_loop_turn_go_in_one_message(
    hub: Hub, tracker: Tracker, messages: list[list[int]]
) -> None:
    results = in_one_turn(hub, tracker, [1] * 5)
    assert [[r.status for r in one] for one in results] == [[202]] * 5
    assert messages == [[1] * 5]


def test_a_turn_of_many_jobs_sends_them_as_they_add_up(
    hub: Hub, tracker: Tracker, messages: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One turn's jobs go once SEND_AT_ACTIVITIES activities wait, not all at the turn's end:
    # the writer's process commits the first while the loop still parses the rest.
    monkeypatch.setattr(writer_process, "SEND_AT_ACTIVITIES", 8)
    before = count(hub, activities)
    # The request of 12 is prepared on the loop (more than VALIDATE_APART_AT_MOST).
    results = in_one_turn(hub, tracker, [1] * 19 + [12] + [1] * 2)
    assert [[r.status for r in one] for one in results] == [[202]] * 19 + [[202] * 12] + [[202]] * 2
    # The prepared job's 12 activities count: it goes at once; the turn's end sends the rest.
    assert messages == [[1] * 8, [1] * 8, [1, 1, 1, 12], [1, 1]]
    assert count(hub, activities) == before + 33


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "waypost-writer-answers" and t.is_alive()]


def test_answers_are_read_whole_however_the_pipe_splits_them() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    link = _Link(cast(Any, None), cast(Any, writer), reader)
    # Sent as the writer's process sends them: small frames, and one larger than a read.
    sent = [b"m" + bytes([n]) * (n * 7) for n in range(40)] + [b"p" + b"x" * 300_000]
    got: list[bytes] = []

    def send() -> None:
        for data in sent:
            writer.send_bytes(data)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        while len(got) < len(sent):
            before = len(got)
            assert not link.read(got.append)
            if len(got) == before:
                time.sleep(0.001)
    finally:
        sender.join(5)
    assert got == sent
    writer.close()
    assert link.read(got.append), "the end of the pipe is read once"
    assert not link.read(got.append)
    assert got == sent
    link.close()
    # A frame of more than 2 GiB has a 12-byte header; a frame comes out only once whole.
    buffer = bytearray()
    whole = struct.pack("!iQ", -1, 5) + b"hello" + struct.pack("!i", 3) + b"abc"
    out: list[bytes] = []
    for byte in whole:
        buffer.append(byte)
        out += _unframe(buffer)
    assert out == [b"hello", b"abc"]
    assert buffer == bytearray()


def test_the_servers_event_loop_reads_the_answers_itself(
    client: TestClient, hub: Hub, tracker: Tracker
) -> None:
    contact = tracker.new_contact()
    writer = process(hub)
    link = writer._link
    assert link is not None
    loop = link.loop
    assert loop is not None, "the answers are not read on the loop"
    assert loop.is_running()
    assert reader_threads() == []
    assert [r["status"] for r in tracker.log([{"type": "click", "value": "a"}], contact)] == [202]
    # Handed to a thread from another thread while the loop runs (as a stop from elsewhere
    # does), and back: no answer is lost either way.
    writer.answer_on(None)
    assert link.loop is None
    assert [t.name for t in reader_threads()] == ["waypost-writer-answers"]
    assert [r["status"] for r in tracker.log([{"type": "click", "value": "b"}], contact)] == [202]
    writer.answer_on(loop)
    assert [r["status"] for r in tracker.log([{"type": "click", "value": "c"}], contact)] == [202]
    deadline = time.monotonic() + 5
    while reader_threads():
        assert time.monotonic() < deadline, "the reader thread did not stop"
        time.sleep(0.02)
    assert link.loop is loop
    # Jobs of threads off the loop are answered through the loop's reading too.
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    now = utcnow()
    job = Job(
        channel,
        uuid.UUID(contact),
        [prepare(b'{"type": "click", "value": "d"}', snapshot, now, 999)],
        now,
    )
    [[result]] = writer.submit_and_wait([job])
    assert result.status == 202


def test_after_the_server_ends_the_answers_are_read_on_a_thread(
    settings: Settings, hub: Hub, tracker: Tracker
) -> None:
    with TestClient(create_app(settings, hub=hub)):
        link = process(hub)._link
        assert link is not None
        assert link.loop is not None
    # The lifespan is over and its loop with it: a thread reads now.
    assert link.loop is None
    assert len(reader_threads()) == 1
    snapshot = hub.catalog.get()
    channel = snapshot.channels[tracker.channel.id]
    contact = uuid.UUID(tracker.new_contact())
    now = utcnow()
    job = Job(
        channel, contact, [prepare(b'{"type": "click", "value": "d"}', snapshot, now, 999)], now
    )
    [[result]] = hub.writer.submit_and_wait([job])
    assert result.status == 202
    hub.writer.stop()
    assert link.finished.is_set()
    assert reader_threads() == []


def test_an_answer_a_reader_took_is_handled_before_the_rest_is_called_lost(
    hub: Hub, tracker: Tracker
) -> None:
    writer = process(hub)
    writer.answer_on(None)  # read by a thread, not by the test server's loop
    link = writer._link
    assert link is not None
    assert link.loop is None
    channel = hub.catalog.get().channels[tracker.channel.id]
    outcomes: list[Any] = []
    job = Job(channel, uuid.uuid4(), [], utcnow(), ticket=10**9)
    job.done, job.loop = outcomes.append, None
    with writer._lock:
        writer._pending[job.ticket] = job
        writer._stopped = True  # no new process after this one
    # A reader holds the pipe, and the answer it took, when the process dies.
    link.read_lock.acquire()
    link.process.kill()
    ender = threading.Thread(target=writer._ended, args=(link,))
    ender.start()
    try:
        time.sleep(0.3)
        assert outcomes == [], "the job was called lost while a reader held its answer"
        writer._received(
            link, _dumps(writer_process.Answer([JobAnswer(job.ticket, [])])), here=None
        )
    finally:
        link.read_lock.release()
    ender.join(10)
    assert outcomes == [[]]
    assert link.finished.wait(10)
