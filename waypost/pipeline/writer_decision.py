"""What the writer does with a batch of jobs, decided from what it read: no I/O.

Per item the decision is one of: store it (202, an activity row, its rollup and field
violations), answer a retry with the activity stored earlier (208), or keep it as a rejected
activity (its error; a rejected row, unless it is a replay, whose rejected row only records the
outcome, or a job past its room for rejected rows, whose rejected activity is answered 429 and
not kept). The writer reads what the rules need in the batch's transaction (:class:`Reads`),
decides, then writes the rows (:mod:`waypost.pipeline.writer_rows`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import msgspec

from waypost.domain.value_counts import counted_values
from waypost.errors import ApiError, ErrorDetail
from waypost.pipeline.catalog import ChannelInfo
from waypost.pipeline.prepare import Accepted, Rejected, erased
from waypost.pipeline.writer_rows import (
    BatchRows,
    DataInput,
    Listened,
    activity_row,
    rejected_row,
    replay_mark,
)
from waypost.records.consents import ConsentState, consent_required
from waypost.records.contacts import contact_not_found
from waypost.store.codec import Codec

# field_violations.field: the most characters of a flagged field's name a count is kept by.
MAX_VIOLATION_FIELD = 200
# The answer to a rejected activity past its job's room (Job.rejected_room): a page's address
# had as many rejected activities kept in the last hour as it may, so this one is not kept.
OVER_REJECTED_ROOM = ApiError(
    429,
    "rate_limited",
    "Too many rejected activities from this address in the last hour: this one was refused "
    "and not kept. Fix what gets them rejected, or send it again later.",
)


class ActivityResult(msgspec.Struct, omit_defaults=True):
    """What happened to one activity: 202 stored, 208 already stored, or an error."""

    status: int
    id: uuid.UUID | None = None
    error: ErrorDetail | None = None


Outcome = list[ActivityResult] | BaseException


def _ignore(_: Outcome) -> None:
    return None


@dataclass
class Job:
    """One request's items, for one channel and contact.

    ``contact_id`` None: items that belong to no contact (every one a :class:`Rejected`).
    """

    channel: ChannelInfo
    contact_id: uuid.UUID | None
    items: Sequence[Accepted | Rejected]
    received_at: dt.datetime
    source: str = "tracking"
    # The rejected activity this job replays (its one item keeps that id when stored).
    replay_of: uuid.UUID | None = None
    # Refuse activities of contacts without a current agreement to the channel's tracking
    # consent; None: as the channel's enforce_consent says.
    require_consent: bool | None = None
    # Decide, answer, but write nothing (a replay's dry run).
    dry_run: bool = False
    # Store each activity under the id it has (an import of exported activities): one stored
    # under that id already is answered 208, as a retry with a client id is.
    keep_ids: bool = False
    # Set by the writer's submit methods: called with the outcome once committed, in
    # ``loop`` when one is set (the writer wakes each loop once per commit for all of its jobs).
    done: Callable[[Outcome], None] = _ignore
    loop: asyncio.AbstractEventLoop | None = None
    # Its number while a writer process (waypost/services/writer_process.py) stores it.
    ticket: int = 0
    # Activities not validated yet, as the request sent them (``items`` is empty): the writer's
    # process validates them against its own catalog (WriterFront.submit_raw).
    raw: Sequence[bytes] | None = None
    # The most rejected activities this job may keep (what its page's address has left of its
    # hourly cap, waypost/transports/rejected_cap.py); those past it are answered 429
    # (OVER_REJECTED_ROOM) and not kept. None: no such cap (a server's request, a replay).
    rejected_room: int | None = None
    # Filled by the writer.
    results: list[ActivityResult] = field(default_factory=list)
    missing_contact: bool = False
    # Of its rejected activities, those kept as rows and those refused for want of room.
    rejected_kept: int = 0
    rejected_refused: int = 0


ClientIds = dict[tuple[uuid.UUID, str], uuid.UUID]


@dataclass
class Reads:
    """What the writer read for a batch, in its transaction."""

    # Each job's contact id -> the contact to store under (following merges); absent: none.
    contacts: dict[uuid.UUID, uuid.UUID]
    # (tracking consent, contact) -> the contact's current state for that consent.
    consents: dict[tuple[uuid.UUID, uuid.UUID], ConsentState]
    # (channel, client id) -> the activity stored under it, for 208 answers.
    client_ids: ClientIds
    # The replayed items' ids already stored (by a replay racing this one), and the ids of
    # the items of ``keep_ids`` jobs already stored.
    replays: set[uuid.UUID]
    # The jobs' contacts that do not exist because they were erased (the ids are suppressed).
    erased: set[uuid.UUID] = field(default_factory=set)


@dataclass
class Decision:
    """The rows to write, and per job (in batch order) its results, whether its contact
    was missing, and how many of its rejected activities were kept and refused (for want of
    room)."""

    rows: BatchRows
    results: list[list[ActivityResult]] = field(default_factory=list)
    missing: list[bool] = field(default_factory=list)
    kept: list[tuple[int, int]] = field(default_factory=list)


def decide(
    batch: Sequence[Job],
    reads: Reads,
    c: Codec,
    listened: AbstractSet[uuid.UUID] = frozenset(),
) -> Decision:
    """Decide every item of ``batch`` (not empty), in order. ``reads`` is left as it was.
    Stored activities of the types in ``listened`` (those a playbook listens to) are noted
    for the events the rows emit."""
    decision = Decision(BatchRows(latest=batch[-1].received_at))
    # Activities stored earlier in the batch answer later retries with 208 as well.
    seen = dict(reads.client_ids)
    stored_ids = set(reads.replays)
    for job in batch:
        contact = reads.contacts.get(job.contact_id) if job.contact_id is not None else None
        missing = job.contact_id is not None and contact is None
        if missing and job.contact_id in reads.erased:
            # Nothing of an erased contact is stored, not even as a rejected activity.
            decision.results.append([_erased(item) for item in job.items])
            decision.rows.rejections["contact_erased"] += len(job.items)
            decision.missing.append(False)
            decision.kept.append((0, 0))
            continue
        consent_id = job.channel.tracking_consent_id
        state = (
            reads.consents.get((consent_id, contact))
            if consent_id is not None and contact is not None
            else None
        )
        tally = _Tally(job.rejected_room)
        decision.results.append(
            _decide_job(
                c, decision.rows, job, contact, missing, state, seen, stored_ids, listened, tally
            )
        )
        decision.missing.append(missing)
        decision.kept.append((tally.kept, tally.refused))
    return decision


@dataclass
class _Tally:
    """One job's rejected activities kept so far, within its room (None: no limit), and those
    refused for want of it."""

    room: int | None
    kept: int = 0
    refused: int = 0

    def keeps(self) -> bool:
        """Whether one more may be kept: counted as kept if so, as refused if not."""
        if self.room is not None and self.kept >= self.room:
            self.refused += 1
            return False
        self.kept += 1
        return True


def _decide_job(
    c: Codec,
    rows: BatchRows,
    job: Job,
    contact: uuid.UUID | None,
    missing: bool,
    state: ConsentState | None,
    seen: ClientIds,
    stored_ids: set[uuid.UUID],
    listened: AbstractSet[uuid.UUID],
    tally: _Tally,
) -> list[ActivityResult]:
    channel = job.channel
    unagreed = (
        channel.enforce_consent if job.require_consent is None else job.require_consent
    ) and not (state is not None and state.agreed)
    results: list[ActivityResult] = []
    for item in job.items:
        if missing or (
            unagreed
            and isinstance(item, Accepted)
            # A retry of an activity stored before a revocation is still a 208.
            and (channel.id, item.client_id) not in seen
        ):
            item = _refused(job, item, missing)
        if isinstance(item, Rejected):
            if job.replay_of is not None:
                mark = replay_mark(c, job.received_at, item.error.code, None, job.replay_of)
                rows.replay_marks.append(mark)
            elif item.keep:
                if not tally.keeps():
                    results.append(
                        ActivityResult(OVER_REJECTED_ROOM.status, error=OVER_REJECTED_ROOM.detail)
                    )
                    rows.rejections[OVER_REJECTED_ROOM.code] += 1
                    continue
                rows.rejected.append(
                    rejected_row(
                        c, item, channel.id, contact or job.contact_id, job.source, job.received_at
                    )
                )
            results.append(ActivityResult(item.status, error=item.error))
            rows.rejections[item.error.code] += 1
            continue
        assert contact is not None, "a job without a contact holds rejected items only"
        # Replays store under the rejected activity's id, imports under the exported id: one
        # stored already (by a replay racing this one, an earlier import, or earlier in this
        # batch) is a duplicate, not a second row.
        keeps_id = job.replay_of is not None or job.keep_ids
        earlier = item.id if keeps_id and item.id in stored_ids else None
        if earlier is None and item.client_id is not None:
            key = (channel.id, item.client_id)
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = item.id
        if earlier is not None:
            if job.replay_of is not None:
                mark = replay_mark(c, job.received_at, "duplicate", earlier, job.replay_of)
                rows.replay_marks.append(mark)
            results.append(ActivityResult(208, earlier))
            rows.duplicates += 1
            continue
        if keeps_id:
            stored_ids.add(item.id)
        row = len(rows.activities)
        agreed, version = _store(c, rows, job, item, contact, state)
        if listened and item.type.id in listened:
            rows.listened.append(
                Listened(row, item, contact, channel.id, job.received_at, agreed, version)
            )
        results.append(ActivityResult(202, item.id))
    return results


def _erased(item: Accepted | Rejected) -> ActivityResult:
    type_code = item.type.code_name if isinstance(item, Accepted) else item.type_code
    refused = erased(item.payload, type_code)
    return ActivityResult(refused.status, error=refused.error)


def _refused(job: Job, item: Accepted | Rejected, missing: bool) -> Rejected:
    """The rejection of an item whose contact is missing or has not agreed to the consent."""
    if missing:
        error = contact_not_found(job.contact_id)
        type_code = item.type.code_name if isinstance(item, Accepted) else item.type_code
        return Rejected(404, error.detail, item.payload, type_code)
    assert isinstance(item, Accepted)
    error = consent_required(job.channel.tracking_consent)
    return Rejected(403, error.detail, item.payload, item.type.code_name)


def _store(
    c: Codec,
    rows: BatchRows,
    job: Job,
    item: Accepted,
    contact: uuid.UUID,
    state: ConsentState | None,
) -> tuple[bool | None, int | None]:
    """Add the item's rows; answer the consent state stored with it (agreed, version)."""
    channel = job.channel
    if state is not None:
        agreed: bool | None = state.agreed
    else:
        agreed = False if channel.tracking_consent_id is not None else None
    version = state.version if state is not None else None
    day = item.occurred_at.astimezone(dt.UTC).date()
    if item.contact_fields:
        # The row's contact and its rollup wait for the contact fields to be applied.
        rows.data_inputs.append(
            DataInput(len(rows.activities), contact, item.contact_fields, item.type.id, day)
        )
    else:
        rows.rollups[(contact, item.type.id, day)] += 1
        rows.touched.add(contact)
    rows.activities.append(
        activity_row(c, item, contact, channel.id, job.received_at, agreed, version)
    )
    if item.type.counted and item.fields:
        for name, value in counted_values(item.type.counted, item.fields):
            rows.values[(item.type.id, name, day, value)] += 1
    for violation in item.flags or ():
        # Counted under the name cut to the column's width: an unknown field is named by the
        # client, and one name over it failed the whole batch on PostgreSQL (its flag, in the
        # activity's JSON, keeps the name whole).
        name = str(violation["field"])[:MAX_VIOLATION_FIELD]
        rows.violations[(item.type.id, name, str(violation["code"]))] += 1
    rows.touched_types.add(item.type.id)
    if job.replay_of is not None:
        rows.replay_marks.append(replay_mark(c, job.received_at, "stored", item.id, job.replay_of))
    return agreed, version
