"""Imports of activities from a file (docs/data-lifecycle.md#import).

An import goes through the pipeline and the writer exactly as live traffic does: each
activity is checked by ``prepare`` against today's types, handed to the writer
(``WriterFront.submit_and_wait``, as replays are), stored, answered 208 when it was stored before
(its client id, or the id an exported activity keeps), or kept as a rejected activity with
source ``import``; Segment messages go through the Segment service as ``/v1/batch`` does.

It validates, then writes. A first pass reads the whole file and refuses it, naming the
lines, when any line cannot be read at all (not JSON, no contact, an id that is no UUID, an
unknown channel): then nothing is imported. The second pass writes a chunk of lines at a time
and counts what became of them. Should it stop midway (the database went away), what it wrote
stays, the summary says how far it got, and the same import run again finishes the job:
lines with ids are not stored twice.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec
import sqlalchemy as sa

from waypost.domain.conditions import EVERYTHING
from waypost.domain.suppressions import CONTACT
from waypost.errors import ApiError
from waypost.ids import utcnow
from waypost.pipeline.catalog import Catalog, ChannelInfo, Snapshot
from waypost.pipeline.prepare import Accepted, Rejected, prepare
from waypost.pipeline.writer import WriterFront
from waypost.pipeline.writer_decision import ActivityResult, Job
from waypost.services.import_lines import (
    ActivityLine,
    ImportFormat,
    LineProblem,
    MessageLine,
    activity_line,
    message_line,
    raw_lines,
)
from waypost.services.segment import SegmentService
from waypost.store import StorageUnavailable, Store, touch
from waypost.store.schema import contacts

SOURCE = "import"
CHUNK = 1_000
# Segment's own limit on one message; activity lines may be larger than one activity, as
# they carry their contact and (exported) the columns the import leaves out.
SEGMENT_LINE = 32 * 1024
MIN_LINE = 64 * 1024
# The problems a refused file lists; the count says how many more there were.
SHOWN_PROBLEMS = 10

T = TypeVar("T")
Progress = Callable[[int], None]


class ImportSummary(msgspec.Struct):
    """What an import did: lines read; activities stored, answered as stored before
    (``duplicates``), kept as rejected (by reason); messages or activities naming an erased
    contact (stored nowhere); Segment messages applied to contacts (identify, group, alias);
    contacts created (``--create-contacts``); lines without an id, which a second run of the
    same file would store again."""

    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = msgspec.field(default_factory=dict)
    erased: int = 0
    applied: int = 0
    contacts_created: int = 0
    without_id: int = 0


class FileRefused(Exception):
    """The file has lines the import cannot read: nothing was imported."""

    def __init__(self, problems: list[LineProblem], total: int) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        more = f"\n  ... and {total - len(problems)} more" if total > len(problems) else ""
        super().__init__(
            f"{total} line{'s' if total != 1 else ''} of the file cannot be imported; "
            f"nothing was imported:\n{lines}{more}"
        )
        self.problems = problems
        self.total = total


class ImportStopped(Exception):
    """The import stopped midway: ``summary`` is what it did before ``line``."""

    def __init__(self, summary: ImportSummary, line: int, reason: str) -> None:
        super().__init__(reason)
        self.summary = summary
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class CheckedFile:
    """What the first pass found: the lines to import, and those without an id."""

    lines: int
    without_id: int


class ImportService:
    """Imports files through the pipeline and the writer."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        writer: WriterFront,
        segment: SegmentService,
        max_activity_bytes: int,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.writer = writer
        self.segment = segment
        self.max_activity_bytes = max_activity_bytes

    def _limit(self, fmt: ImportFormat) -> int:
        return SEGMENT_LINE if fmt == "segment" else max(MIN_LINE, 4 * self.max_activity_bytes)

    def _channel(self, channel: uuid.UUID | None, fmt: ImportFormat) -> ChannelInfo | None:
        if channel is None:
            if fmt == "segment":
                raise ApiError(400, "missing_field", "A Segment import needs --channel.", "channel")
            return None
        found = self.catalog.get().channels.get(channel)
        if found is None:
            raise ApiError(404, "not_found", f"No channel has the id {channel}.", "channel")
        return found

    def check(self, path: Path, fmt: ImportFormat, channel: uuid.UUID | None) -> CheckedFile:
        """The first pass: :class:`FileRefused` if any line cannot be imported."""
        self._channel(channel, fmt)
        snapshot = self.catalog.get()
        problems: list[LineProblem] = []
        total = lines = without_id = 0
        with path.open("rb") as stream:
            try:
                for number, raw in raw_lines(stream, self._limit(fmt)):
                    try:
                        has_id = self._read(number, raw, fmt, channel, snapshot)
                    except LineProblem as problem:
                        total += 1
                        if len(problems) < SHOWN_PROBLEMS:
                            problems.append(problem)
                        continue
                    lines += 1
                    without_id += not has_id
            except LineProblem as problem:
                total += 1
                problems.append(problem)
        if problems:
            raise FileRefused(problems, total)
        return CheckedFile(lines, without_id)

    def _read(
        self,
        number: int,
        raw: bytes,
        fmt: ImportFormat,
        channel: uuid.UUID | None,
        snapshot: Snapshot,
    ) -> bool:
        if fmt == "segment":
            return message_line(number, raw).message.message_id is not None
        line = activity_line(number, raw)
        if channel is None:
            if line.channel is None:
                raise LineProblem(number, "no channel: give one with --channel or in the line.")
            if line.channel not in snapshot.channels:
                raise LineProblem(number, f"no channel has the id {line.channel}.")
        return line.has_id

    def run(
        self,
        path: Path,
        fmt: ImportFormat,
        channel: uuid.UUID | None = None,
        create_contacts: bool = False,
        progress: Progress | None = None,
        checked: CheckedFile | None = None,
    ) -> ImportSummary:
        """Import the file, checked first (:class:`FileRefused`) unless ``checked`` says it
        was; :class:`ImportStopped` if it stopped midway."""
        if checked is None:
            checked = self.check(path, fmt, channel)
        summary = ImportSummary(without_id=checked.without_id)
        advance = progress or (lambda _n: None)
        forced = self._channel(channel, fmt)
        first = 1
        with path.open("rb") as stream:
            try:
                for chunk in _chunks(raw_lines(stream, self._limit(fmt)), CHUNK):
                    first = chunk[0][0]
                    if fmt == "segment":
                        assert forced is not None
                        self._messages(chunk, forced, summary)
                    else:
                        self._activities(chunk, forced, create_contacts, summary)
                    summary.lines += len(chunk)
                    advance(len(chunk))
            except LineProblem as problem:
                # The file or the channels changed since the check.
                raise ImportStopped(summary, problem.line, str(problem)) from None
            except (StorageUnavailable, ApiError) as exc:
                raise ImportStopped(summary, first, str(exc)) from exc
        return summary

    def _activities(
        self,
        chunk: Sequence[tuple[int, bytes]],
        forced: ChannelInfo | None,
        create_contacts: bool,
        summary: ImportSummary,
    ) -> None:
        snapshot = self.catalog.get()
        lines = [activity_line(number, raw) for number, raw in chunk]
        if create_contacts:
            summary.contacts_created += self._create_contacts(lines, snapshot)
        now = utcnow()
        groups: dict[tuple[uuid.UUID, uuid.UUID, bool], list[Accepted | Rejected]] = {}
        for line in lines:
            channel = forced.id if forced is not None else line.channel
            if channel not in snapshot.channels:
                raise LineProblem(line.number, f"no channel has the id {channel}.")
            item = prepare(line.activity, snapshot, now, self.max_activity_bytes)
            if isinstance(item, Accepted) and line.keep_id is not None:
                item.id = line.keep_id
            key = (channel, line.contact, line.keep_id is not None)
            groups.setdefault(key, []).append(item)
        jobs = [
            Job(snapshot.channels[channel], contact, items, now, SOURCE, keep_ids=keep)
            for (channel, contact, keep), items in groups.items()
        ]
        _count(summary, self.writer.submit_and_wait(jobs))

    def _create_contacts(self, lines: list[ActivityLine], snapshot: Snapshot) -> int:
        """Contacts the lines name that do not exist, made under those ids (an erased one's
        id is not: its activities are refused)."""
        wanted = {line.contact for line in lines}
        wanted = {c for c in wanted if not snapshot.suppressed.names(CONTACT, c)}
        if not wanted:
            return 0
        with self.store.write() as conn:
            known = set(
                conn.execute(sa.select(contacts.c.id).where(contacts.c.id.in_(wanted))).scalars()
            )
            new = sorted(wanted - known, key=lambda c: c.int)
            if new:
                now = utcnow()
                conn.execute(
                    contacts.insert(),
                    [
                        {"id": c, "attributes": {}, "created_at": now, "updated_at": now}
                        for c in new
                    ],
                )
                touch(conn, new, EVERYTHING)
        return len(new)

    def _messages(
        self, chunk: Sequence[tuple[int, bytes]], channel: ChannelInfo, summary: ImportSummary
    ) -> None:
        lines: list[MessageLine] = [message_line(number, raw) for number, raw in chunk]
        snapshot = self.catalog.get()
        now = utcnow()
        messages = [(line.message, line.raw) for line in lines]
        plan = self.segment.plan(channel, snapshot, messages, None, now)
        if plan.drafts_created:
            self.catalog.invalidate()
            snapshot = self.catalog.get()
        summary.erased += plan.erased
        summary.applied += len(messages) - len(plan.activities) - len(plan.rejected) - plan.erased
        by_contact: dict[uuid.UUID | None, list[Accepted | Rejected]] = {}
        if plan.rejected:
            by_contact[None] = list(plan.rejected)
        for planned in plan.activities:
            item = planned.refused or prepare(
                planned.activity, snapshot, now, self.max_activity_bytes
            )
            by_contact.setdefault(planned.contact, []).append(item)
        jobs = [Job(channel, contact, items, now, SOURCE) for contact, items in by_contact.items()]
        _count(summary, self.writer.submit_and_wait(jobs))


def _count(summary: ImportSummary, results: list[list[ActivityResult]]) -> None:
    reasons: Counter[str] = Counter(summary.rejected)
    for job_results in results:
        for result in job_results:
            if result.status == 202:
                summary.stored += 1
            elif result.status == 208:
                summary.duplicates += 1
            elif result.error is not None and result.error.code == "contact_erased":
                summary.erased += 1
            else:
                reasons[result.error.code if result.error else str(result.status)] += 1
    summary.rejected = dict(sorted(reasons.items()))


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
