"""The writer in a process of its own, with ``WAYPOST_WRITER_PROCESS=1`` (docs/architecture.md,
"The writer's process").

In one process the event loop and the writer thread take turns on one interpreter lock: while
the writer decides and binds a batch's rows, no request is parsed or validated. Here the HTTP
side keeps parsing, authenticating and validating (:mod:`waypost.pipeline.prepare`), and a
second process, on the other core, runs the same :class:`~waypost.pipeline.writer.Writer` on a
store of its own: it reads what the rules need, decides, writes and commits.

:class:`WriterProcess` takes the place of the writer in the server's hub, with the same calls.
An event loop hands the jobs of one turn to the process in one message, or in one every
:data:`SEND_AT_ACTIVITIES` activities when the turn holds more (one pipe write for many
requests, no thread in between); the process's writer batches them as it batches
requests, and after each commit answers every job of the batch in one message, with what the
hub needs to hear of the commit: the contacts it touched (for the group updates), whether a
playbook wrote outbox messages (to wake the webhook dispatcher), and the counts for the
metrics. Requests of few activities are validated there too. Changes to cached definitions
made on this side are forwarded to the process (its catalog and playbook triggers' cache).

Durability is the writer's: a ``202`` only after the commit that holds the activity. When the
process dies (killed, even), every request waiting on it is answered ``503``, stored or not
(a retry with the activity's ``id`` is answered ``208`` if it was), and a new process is
started; until it is, requests are answered ``503`` at once. When the server's process dies,
the writer's process sees its pipe end, commits what it already took, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import functools
import gc
import itertools
import logging
import logging.config
import multiprocessing
import os
import pickle
import select
import signal
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, cast

import msgspec

from waypost.clock import SystemClock
from waypost.domain.conditions import Changes
from waypost.errors import ErrorDetail
from waypost.logs import log_config
from waypost.metrics import Metrics
from waypost.pipeline.catalog import Catalog, ChannelInfo, Snapshot, TypeInfo
from waypost.pipeline.prepare import Accepted, Rejected, prepare
from waypost.pipeline.writer import Committed, Writer, WriterFront, deliver
from waypost.pipeline.writer_decision import ActivityResult, Job, Outcome
from waypost.services.playbook_triggers import PlaybookTriggers
from waypost.settings import Settings
from waypost.store import Change, ChangeKind, StorageUnavailable, Store, make_engine
from waypost.store.engine import Touched

log = logging.getLogger("waypost.writer")

# After the process died: the pause before the next is started (a process that dies at once,
# on a database it cannot open, is not started in a tight loop).
RESTART_PAUSE = 0.2
# How long stop() waits for the process to commit what it took and exit.
EXIT_SECONDS = 60.0
LOST = (
    "The writer's process stopped before it answered; the activities of this request may or "
    "may not be stored. Send them again with their id to be answered 208 for those that are."
)
DOWN = "The writer's process is starting; try again shortly."
STOPPING = "The writer's process is stopping; try again shortly."
UNCHECKED = "The activities could not be validated; nothing of this request was stored."
# The pipe's size, for bursts sent while the writer's process commits (Linux's default is
# 64 KiB; its most, unless raised, 1 MiB).
PIPE_BYTES = 1 << 20
# How long the drainer waits at most for room in the pipe before it looks again, and a reader
# thread for answers before it looks whether it still is the reader.
POLL_MS = 100
# What one read of the answers' pipe takes at most.
READ_BYTES = 1 << 16
# How long handing the answers from the server's event loop to a thread waits for the loop.
HAND_OVER_SECONDS = 5.0
# The writer's process collects cycles after this many allocations (Python's default: 700).
GC_THRESHOLD = 50_000
# Requests of at most this many activities are validated in the writer's process: with few
# activities a request, the server's event loop is what limits the rate and the writer's
# process has time to spare; with many, it is the other way round (docs/performance.md).
VALIDATE_APART_AT_MOST = 10
# The jobs of an event loop go to the writer's process at the end of the loop's turn, or as
# soon as they hold this many activities. When a commit answers many requests at once, their
# connections' next requests arrive together and one turn parses them all: sent only at the
# turn's end, they would leave the writer's process idle while the server's parses, the two
# taking turns instead of working at once (docs/performance.md). The writer's process takes
# every message waiting in the pipe into its next transaction; a message that finds it idle
# is committed on its own, while the next ones gather in the pipe.
SEND_AT_ACTIVITIES = 8


# -- what goes through the pipes ----------------------------------------------------------
#
# Server -> writer: Jobs (every job queued so far), ChangeNote (a definition changed), Stop.
# Writer -> server: one Answer per batch committed. MessagePack (msgspec) with ids as 16 bytes;
# the channels and types a message's jobs name go once per message. A message MessagePack
# cannot carry (an integer beyond 64 bits in a flagged field's value) goes as a pickle: the
# first byte says which.

MSGPACK = b"m"
PICKLE = b"p"


class WireAccepted(msgspec.Struct, array_like=True, gc=False, tag_field="wire", tag=0):
    """An :class:`Accepted` with its type as an index into the message's types."""

    id: uuid.UUID
    type: int
    client_id: str | None
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    fields: dict[str, Any] | None
    primary_value: str | None
    flags: list[dict[str, Any]] | None
    occurred_at: dt.datetime
    # Pickled: their values are not only JSON's (a birthday is a date), and data inputs are few.
    contact_fields: bytes | None
    payload: bytes


class WireRejected(msgspec.Struct, array_like=True, gc=False, tag_field="wire", tag=1):
    status: int
    error: ErrorDetail
    payload: bytes
    type_code: str | None
    keep: bool


class WireRaw(msgspec.Struct, array_like=True, gc=False, tag_field="wire", tag=2):
    """An activity as the request sent it, validated by the writer's process."""

    data: bytes


WireItem = WireAccepted | WireRejected | WireRaw


class WireJob(msgspec.Struct, array_like=True, gc=False):
    ticket: int
    channel: int
    contact_id: uuid.UUID | None
    items: list[WireItem]
    received_at: dt.datetime
    source: str
    replay_of: uuid.UUID | None
    require_consent: bool | None
    dry_run: bool
    keep_ids: bool
    rejected_room: int | None = None


class Jobs(msgspec.Struct, array_like=True, gc=False, tag="jobs"):
    channels: list[ChannelInfo]
    types: list[TypeInfo]
    jobs: list[WireJob]


class ChangeNote(msgspec.Struct, array_like=True, tag="change"):
    kind: str
    id: uuid.UUID


class Stop(msgspec.Struct, array_like=True, tag="stop"):
    pass


class JobAnswer(msgspec.Struct, array_like=True, gc=False):
    """One job's answer: its results, whether its contact was missing, how many of its
    rejected activities were kept and refused (for want of room), or the storage's failure."""

    ticket: int
    results: list[ActivityResult] | None
    missing: bool = False
    failure: str | None = None
    kept: int = 0
    refused: int = 0


class Answer(msgspec.Struct, array_like=True, gc=False):
    """What the writer's process says after one batch: per job its answer, and what the
    commits it made did (for the metrics, the group updates and the webhook dispatcher)."""

    jobs: list[JobAnswer]
    committed: list[Committed] = []
    touched: list[tuple[list[uuid.UUID], Changes]] = []
    wake: bool = False


_encoder = msgspec.msgpack.Encoder(uuid_format="bytes")
_decode_order = msgspec.msgpack.Decoder(Jobs | ChangeNote | Stop).decode
_decode_answer = msgspec.msgpack.Decoder(Answer).decode


def _dumps(message: object) -> bytes:
    try:
        return MSGPACK + _encoder.encode(message)
    except (msgspec.EncodeError, OverflowError):
        return PICKLE + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes, decode: Callable[[memoryview], Any]) -> Any:
    if data[:1] == PICKLE:
        return pickle.loads(data[1:])  # noqa: S301 - written by the other Waypost process
    return decode(memoryview(data)[1:])


def _pickled(fields: dict[str, object] | None) -> bytes | None:
    return None if fields is None else pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)


def _unpickled(data: bytes | None) -> dict[str, object] | None:
    return None if data is None else cast(dict[str, object], pickle.loads(data))  # noqa: S301


def _jobs(batch: list[Job]) -> Jobs:
    """The message that hands ``batch`` to the writer's process."""
    channels: dict[uuid.UUID, int] = {}
    types: dict[uuid.UUID, int] = {}
    message = Jobs([], [], [])
    for job in batch:
        channel = channels.get(job.channel.id)
        if channel is None:
            channel = channels[job.channel.id] = len(message.channels)
            message.channels.append(job.channel)
        items: list[WireItem] = [WireRaw(data) for data in job.raw or ()]
        for item in job.items:
            if isinstance(item, Accepted):
                kind = types.get(item.type.id)
                if kind is None:
                    kind = types[item.type.id] = len(message.types)
                    message.types.append(item.type)
                items.append(
                    WireAccepted(
                        item.id,
                        kind,
                        item.client_id,
                        item.title,
                        item.value,
                        item.url,
                        item.referrer,
                        item.fields,
                        item.primary_value,
                        item.flags,
                        item.occurred_at,
                        _pickled(item.contact_fields),
                        item.payload,
                    )
                )
            else:
                items.append(
                    WireRejected(item.status, item.error, item.payload, item.type_code, item.keep)
                )
        message.jobs.append(
            WireJob(
                job.ticket,
                channel,
                job.contact_id,
                items,
                job.received_at,
                job.source,
                job.replay_of,
                job.require_consent,
                job.dry_run,
                job.keep_ids,
                job.rejected_room,
            )
        )
    return message


Validate = Callable[[bytes, dt.datetime], Accepted | Rejected]


def _not_here(_raw: bytes, _received_at: dt.datetime) -> Accepted | Rejected:
    raise ValueError("an activity to validate, and nothing to validate it with")


def _unwire(
    message: Jobs, validate: Validate = _not_here, failed: list[JobAnswer] | None = None
) -> list[Job]:
    """The jobs of a message, as the writer takes them; ``validate`` validates the activities
    that come as the request sent them. A job whose validation failed (the catalog could not
    be read) is not taken: its answer, a failure, goes to ``failed``."""
    jobs = []
    types = message.types
    for wire in message.jobs:
        try:
            items = _items(wire, types, validate)
        except Exception as exc:
            if failed is None:
                raise
            if not isinstance(exc, StorageUnavailable):
                log.exception("the writer process could not validate a request's activities")
            failure = str(exc) if isinstance(exc, StorageUnavailable) else UNCHECKED
            failed.append(JobAnswer(wire.ticket, None, failure=failure))
            continue
        jobs.append(
            Job(
                message.channels[wire.channel],
                wire.contact_id,
                items,
                wire.received_at,
                wire.source,
                replay_of=wire.replay_of,
                require_consent=wire.require_consent,
                dry_run=wire.dry_run,
                keep_ids=wire.keep_ids,
                ticket=wire.ticket,
                rejected_room=wire.rejected_room,
            )
        )
    return jobs


def _items(wire: WireJob, types: list[TypeInfo], validate: Validate) -> list[Accepted | Rejected]:
    return [
        validate(item.data, wire.received_at)
        if isinstance(item, WireRaw)
        else Accepted(
            item.id,
            types[item.type],
            item.client_id,
            item.title,
            item.value,
            item.url,
            item.referrer,
            item.fields,
            item.primary_value,
            item.flags,
            item.occurred_at,
            _unpickled(item.contact_fields),
            item.payload,
        )
        if isinstance(item, WireAccepted)
        else Rejected(item.status, item.error, item.payload, item.type_code, item.keep)
        for item in wire.items
    ]


# -- the server's side --------------------------------------------------------------------


def _frame(data: bytes) -> bytes:
    """``data`` framed as :meth:`multiprocessing.connection.Connection.send_bytes` frames it
    (the writer's process reads with ``recv_bytes``)."""
    if len(data) > 0x7FFFFFFF:
        return struct.pack("!iQ", -1, len(data)) + data
    return struct.pack("!i", len(data)) + data


def _unframe(buffer: bytearray) -> list[bytes]:
    """The whole frames at the start of ``buffer``, taken out of it (the rest waits for more)."""
    frames = []
    start, end = 0, len(buffer)
    while end - start >= 4:
        (size,) = struct.unpack_from("!i", buffer, start)
        head = 4
        if size == -1:
            if end - start < 12:
                break
            (size,) = struct.unpack_from("!Q", buffer, start + 4)
            head = 12
        if end - start < head + size:
            break
        frames.append(bytes(buffer[start + head : start + head + size]))
        start += head + size
    del buffer[:start]
    return frames


def _alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass
class _Link:
    """One writer process and the two ends of its pipes this side holds.

    Messages are written by whoever sends them (an event loop, a thread of a replay), without
    blocking: the pipe holds PIPE_BYTES. What does not fit waits in ``backlog`` for the
    ``drainer`` thread, which writes it as the process reads; later messages queue behind it,
    so they reach the process in the order they were sent.

    Answers are read by the server's event loop (``loop``, woken by the pipe itself) or, with
    no loop to read them, by a ``receiver`` thread; whoever reads the pipe's end (the process
    is gone) ends the link."""

    process: BaseProcess
    jobs: Connection
    answers: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    dead: bool = False
    # Set by the process's first message, once its store is open.
    ready: bool = False
    closed: bool = False
    backlog: bytearray = field(default_factory=bytearray)
    drainer: threading.Thread | None = None
    # Who reads the answers: the loop whose thread does, else the thread that does.
    loop: asyncio.AbstractEventLoop | None = None
    receiver: threading.Thread | None = None
    # Handing the reading over is one caller at a time.
    switch_lock: threading.Lock = field(default_factory=threading.Lock)
    read_lock: threading.Lock = field(default_factory=threading.Lock)
    unread: bytearray = field(default_factory=bytearray)
    # The answers' pipe has ended (read by one reader, who ends the link).
    eof: bool = False
    # Set once every job of the process is answered.
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.fd = self.jobs.fileno()
        # Room for bursts: a writer process busy committing leaves them in the pipe.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self.fd, False)
        self.waiting = threading.Condition(self.send_lock)
        self.answers_fd = self.answers.fileno()
        # Room for the answers too, should the loop that reads them be busy for a while.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.answers_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self.answers_fd, False)

    def read(self, handle: Callable[[bytes], None]) -> bool:
        """Hand each whole answer the pipe holds now to ``handle`` (without waiting), and say
        whether this call read the pipe's end: then the caller ends the link. One reader at a
        time, answers handled included: the link ends after every answer read is handled."""
        with self.read_lock:
            if self.eof or self.closed:
                return False
            ended = False
            while True:
                try:
                    data = os.read(self.answers_fd, READ_BYTES)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.eof = ended = True
                    break
                self.unread += data
                if len(data) < READ_BYTES:
                    break
            for frame in _unframe(self.unread):
                handle(frame)
            return ended

    def send(self, message: object) -> None:
        """Write ``message``, or queue what the pipe cannot take now; OSError once the
        process is gone."""
        self.send_data(_dumps(message))

    def send_data(self, data: bytes) -> None:
        """As :meth:`send`, for a message already encoded."""
        frame = _frame(data)
        with self.send_lock:
            if self.closed:
                raise BrokenPipeError("the writer process is gone")
            if not self.backlog:
                try:
                    written = os.write(self.fd, frame)
                except BlockingIOError:
                    written = 0
                if written == len(frame):
                    return
                frame = frame[written:]
            self.backlog += frame
            self.waiting.notify()

    def drain(self) -> None:
        """The drainer thread: write the backlog as the pipe makes room, until closed."""
        try:
            self._drain()
        except Exception:
            # What it could not write, the process would wait for mid-message: stop it, and
            # its receiver answers every job it had.
            log.exception("the messages to the writer process could not be written")
            self.process.kill()

    def _drain(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        while True:
            with self.send_lock:
                while not self.backlog and not self.closed:
                    self.waiting.wait()
                if self.closed:
                    return
            # Not under the lock: senders queue behind the backlog meanwhile.
            poller.poll(POLL_MS)
            with self.send_lock:
                if self.closed:
                    return
                try:
                    written = os.write(self.fd, self.backlog)
                except BlockingIOError:
                    continue
                except OSError:
                    # The process is gone: the receiver answers every job it had.
                    self.backlog.clear()
                    return
                del self.backlog[:written]

    def close(self) -> None:
        """Close this side's ends (never while a message is being written or an answer read)."""
        with self.send_lock:
            self.closed = True
            self.backlog.clear()
            self.waiting.notify_all()
            self.jobs.close()
        with self.read_lock:
            self.answers.close()


class WriterProcess(WriterFront):
    """The hub's writer when it runs in a process of its own: the same calls as
    :class:`Writer` (both are a :class:`WriterFront`), with no writer thread on this side.
    The jobs an event loop submits in one turn are sent at the end of that turn in one
    message, or earlier each time :data:`SEND_AT_ACTIVITIES` activities wait; those of a
    thread off the loop (``submit_and_wait``), by that thread."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(store, settings.commit_max_batch, metrics)
        self.settings = settings
        self.wake = wake
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._pending: dict[int, Job] = {}
        # Jobs submitted on event loops, not sent yet; the loops whose turn ends with a send.
        self._outbox: list[Job] = []
        self._outbox_activities = 0
        self._flushing: set[asyncio.AbstractEventLoop] = set()
        self._tickets = itertools.count(1)
        # stop() was called: a process that ends is not started again until start().
        self._stopped = False
        # stop() is running: only the jobs it sends itself go to the process.
        self._stop_running = False
        # The server's event loop, whose thread reads the answers while it runs.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.restarts = 0
        store.changes.subscribe(self._forward)

    async def submit_raw(
        self,
        channel: ChannelInfo,
        contact_id: uuid.UUID,
        raw: Sequence[bytes],
        snapshot: Snapshot,
        received_at: dt.datetime,
        max_bytes: int,
    ) -> list[ActivityResult]:
        """As :meth:`WriterFront.submit_raw`; a request of few activities is validated in the
        writer's process, against its own catalog (kept as current as this side's: every
        change this side hears of reaches it before the jobs sent after it) and with the
        settings' ``max_activity_bytes``, not ``snapshot`` and ``max_bytes``. A catalog it
        cannot read fails that request alone (503)."""
        if len(raw) > VALIDATE_APART_AT_MOST:
            return await super().submit_raw(
                channel, contact_id, raw, snapshot, received_at, max_bytes
            )
        return await self.submit_job(Job(channel, contact_id, [], received_at, raw=raw))

    @property
    def pid(self) -> int | None:
        """The writer process's id while it runs."""
        link = self._link
        return link.process.pid if link is not None else None

    @property
    def running(self) -> bool:
        """Whether jobs are taken: the process runs and has said it is ready."""
        link = self._link
        return link is not None and link.ready and not link.dead

    def start(self) -> None:
        if self._link is not None:
            return
        with self._lock:
            # A job submitted while stop() runs is answered (503), and starts no process.
            if self._link is None and not self._stop_running:
                self._stopped = False
                self._spawn()

    def _enqueue(self, jobs: Sequence[Job]) -> None:
        """Jobs of an event loop wait for the end of its turn, then go in one message, unless
        :data:`SEND_AT_ACTIVITIES` activities are waiting before it ends; jobs of a thread off
        the loop go at once."""
        self.start()
        loop = jobs[0].loop if jobs else None
        if loop is None:
            self._commit(list(jobs))
            return
        with self._lock:
            self._outbox += jobs
            self._outbox_activities += sum(len(job.raw or job.items) for job in jobs)
            if self._outbox_activities >= SEND_AT_ACTIVITIES:
                batch = self._take_outbox()
            elif loop in self._flushing:
                return
            else:
                self._flushing.add(loop)
                batch = []
        if batch:
            self._commit(batch)
        else:
            loop.call_soon(self._flush, loop)

    def _take_outbox(self) -> list[Job]:
        """The jobs waiting to be sent, taken (with the lock held)."""
        batch, self._outbox, self._outbox_activities = self._outbox, [], 0
        return batch

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._flushing.discard(loop)
            batch = self._take_outbox()
        if batch:
            self._commit(batch)

    def answer_on(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Read the process's answers on ``loop``'s thread from now on, woken by the pipe
        itself: no thread in between, and each loop's jobs answered without another wake-up.
        None reads them on a thread of their own (as before the server's start, after its end,
        and while stopping, which may block that loop's thread)."""
        with self._lock:
            self._loop = loop
            link = self._link
        if link is not None:
            self._read_on(link, loop)

    def stop(self) -> None:
        """Send what is waiting, let the process commit it and exit, answer every job."""
        with self._lock:
            self._stopped = self._stop_running = True
            waiting = self._take_outbox()
        try:
            if waiting:
                self._commit(waiting, last=True)
            # stop() may run on the loop's thread, which then reads nothing until it returns.
            self.answer_on(None)
            with self._lock:
                link = self._link
            if link is None:
                return
            # Gone already: its reader answers what it had.
            with contextlib.suppress(OSError):
                link.send(Stop())
            # The link ends once its reader has read the last answer and the process exited.
            if not link.finished.wait(EXIT_SECONDS):
                log.warning("the writer process did not stop in time; killing it")
                link.process.kill()
                link.finished.wait()
            with self._lock:
                if self._link is link:
                    self._link = None
        finally:
            self._stop_running = False

    # -- the process ----------------------------------------------------------------------

    def _spawn(self) -> None:
        """Start a writer process (with the lock held)."""
        context = multiprocessing.get_context("spawn")
        jobs_out, jobs_in = context.Pipe(duplex=False)
        answers_out, answers_in = context.Pipe(duplex=False)
        process = context.Process(
            target=serve,
            args=(self.settings, jobs_out, answers_in),
            name="waypost-writer",
            daemon=True,
        )
        process.start()
        jobs_out.close()
        answers_in.close()
        link = _Link(process, jobs_in, answers_out)
        link.drainer = threading.Thread(target=link.drain, name="waypost-writer-jobs", daemon=True)
        self._link = link
        link.drainer.start()
        self._read_on(link, self._loop)

    def _commit(self, batch: list[Job], last: bool = False) -> None:
        """Hand ``batch`` to the process; while it stops, only the ``last`` jobs, sent before
        it is told to stop (the others are answered 503 at once)."""
        for job in batch:
            job.ticket = next(self._tickets)
        try:
            data = _dumps(_jobs(batch))
        except Exception:
            log.exception("a message to the writer process could not be made")
            deliver(batch, [StorageUnavailable(LOST)] * len(batch))
            return
        failure: StorageUnavailable | None = None
        with self._lock:
            link = self._link
            if link is None or link.dead or (self._stop_running and not last):
                failure = StorageUnavailable(STOPPING if self._stop_running else DOWN)
            else:
                # Sent under the lock (a send never blocks): stop() cannot tell the process to
                # stop between the jobs being taken and their message being sent.
                for job in batch:
                    self._pending[job.ticket] = job
                try:
                    link.send_data(data)
                except OSError:
                    # Whoever takes a job from the pending ones answers it: this thread now,
                    # or the receiver once the process is gone; never both, never neither.
                    for job in batch:
                        self._pending.pop(job.ticket, None)
                    failure = StorageUnavailable(LOST)
                self.metrics.queue_depth.set(len(self._pending))
        if failure is not None:
            deliver(batch, [failure] * len(batch))

    def _forward(self, change: Change) -> None:
        """A change feed's subscriber: the process's caches hear of it too."""
        link = self._link
        if link is None or link.dead:
            return  # a process started later reads everything afresh
        with contextlib.suppress(OSError):
            link.send(ChangeNote(change.kind, change.id))

    # -- reading the answers ---------------------------------------------------------------

    def _read_on(self, link: _Link, loop: asyncio.AbstractEventLoop | None) -> None:
        """Have ``link``'s answers read on ``loop``'s thread, or by a thread of their own."""
        with link.switch_lock:
            if link.eof:
                return
            old = link.loop
            if old is loop and (old is not None or _alive(link.receiver)):
                return
            # From here the loop's reader, should it still be called, reads nothing.
            link.loop = None
            if old is not None:
                self._unwatch(link, old)
            if loop is not None:
                link.loop = loop
                if _running_loop() is loop:
                    self._watch(link, loop)
                    return
                try:
                    loop.call_soon_threadsafe(self._watch, link, loop)
                    return
                except RuntimeError:
                    link.loop = None  # closed: read on a thread
            # A reader thread still running sees it is not the reader any more and stops.
            link.receiver = threading.Thread(
                target=self._receive, args=(link,), name="waypost-writer-answers", daemon=True
            )
            link.receiver.start()

    def _watch(self, link: _Link, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``'s thread: read ``link``'s answers whenever its pipe has some."""
        if link.loop is loop and not link.eof and not link.closed:
            loop.add_reader(link.answers_fd, self._readable, link, loop)

    def _unwatch(self, link: _Link, loop: asyncio.AbstractEventLoop) -> None:
        """Stop ``loop`` reading ``link``'s answers; returns once it has (or cannot any more)."""
        if loop.is_closed():
            return
        if _running_loop() is loop or not loop.is_running():
            loop.remove_reader(link.answers_fd)
            return
        removed = threading.Event()

        def remove() -> None:
            loop.remove_reader(link.answers_fd)
            removed.set()

        try:
            loop.call_soon_threadsafe(remove)
        except RuntimeError:
            return  # closed meanwhile
        if not removed.wait(HAND_OVER_SECONDS):
            log.warning("the event loop did not hand over the writer process's answers in time")

    def _readable(self, link: _Link, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``'s thread, when ``link``'s answers' pipe has something to read."""
        if link.loop is not loop or link.eof or link.closed:
            # Not the reader any more, or another reader read the end.
            loop.remove_reader(link.answers_fd)
            return
        if link.read(functools.partial(self._received, link, here=loop)):
            # The process is gone: reaping it and starting the next may wait; not here.
            loop.remove_reader(link.answers_fd)
            link.loop = None
            threading.Thread(
                target=self._ended, args=(link,), name="waypost-writer-ended", daemon=True
            ).start()

    def _receive(self, link: _Link) -> None:
        """A reader thread: read the answers as they come, while it is ``link``'s reader."""
        me = threading.current_thread()
        poller = select.poll()
        poller.register(link.answers_fd, select.POLLIN)
        received = functools.partial(self._received, link, here=None)
        while link.receiver is me and link.loop is None:
            if link.read(received):
                self._ended(link)
                return
            if link.eof or link.closed:
                return
            poller.poll(POLL_MS)

    def _received(
        self, link: _Link, data: bytes, *, here: asyncio.AbstractEventLoop | None
    ) -> None:
        link.ready = True
        try:
            answer = _loads(data, _decode_answer)
        except Exception:
            # Its reader answers every job 503 once it is gone.
            log.exception("an answer of the writer process could not be read; stopping it")
            link.process.kill()
            return
        self._answer(answer, here)

    def _ended(self, link: _Link) -> None:
        """The process is gone: answer the rest 503 and start another (unless stopping)."""
        link.process.join()
        # No loop reads it any more (it may have been handed one meanwhile), and whatever
        # another reader took from the pipe is answered before the rest is called lost.
        with link.switch_lock:
            loop, link.loop = link.loop, None
        if loop is not None:
            self._unwatch(link, loop)
        with link.read_lock:
            pass
        with self._lock:
            link.dead = True
            lost = list(self._pending.values())
            self._pending.clear()
            stopping = self._stopped
        link.close()
        if lost:
            log.error(
                "the writer process ended (exit code %s) with %d requests unanswered",
                link.process.exitcode,
                len(lost),
            )
            deliver(lost, [StorageUnavailable(LOST)] * len(lost))
        link.finished.set()
        if stopping:
            return
        if not lost:
            log.error("the writer process ended (exit code %s)", link.process.exitcode)
        time.sleep(RESTART_PAUSE)
        with self._lock:
            if not self._stopped and self._link is link:
                self.restarts += 1
                self._spawn()

    def _answer(self, answer: Answer, here: asyncio.AbstractEventLoop | None) -> None:
        jobs: list[Job] = []
        outcomes: list[Outcome] = []
        with self._lock:
            for one in answer.jobs:
                job = self._pending.pop(one.ticket, None)
                if job is None:
                    continue
                jobs.append(job)
                if one.results is None:
                    outcomes.append(StorageUnavailable(one.failure or LOST))
                else:
                    job.results, job.missing_contact = one.results, one.missing
                    job.rejected_kept, job.rejected_refused = one.kept, one.refused
                    outcomes.append(one.results)
        try:
            for committed in answer.committed:
                committed.record(self.metrics)
            # A batch stored is one whose jobs have results (a failed one's have none).
            if any(one.results is not None for one in answer.jobs):
                self.batches += 1
            # As in the writer's own process: the group updates hear of the commit before the
            # requests are answered, and the dispatcher is woken for what playbooks wrote.
            if answer.touched and self.store.on_commit is not None:
                self.store.on_commit([(frozenset(ids), what) for ids, what in answer.touched])
            if answer.wake and self.wake is not None:
                self.wake()
        except Exception:
            # The commit happened: its requests are answered whatever failed here.
            log.exception("after a commit of the writer process")
        finally:
            deliver(jobs, outcomes, here)


# -- the writer's process -----------------------------------------------------------------


class _ProcessWriter(Writer):
    """The writer of the writer's process, run on its main thread (no thread of its own):
    stores each batch it is given and answers it through the pipe."""

    def __init__(self, store: Store, settings: Settings, answers: Connection) -> None:
        # The process's writer waits up to commit_max_delay_ms for more, as the writer in the
        # server's process does.
        super().__init__(store, settings.commit_max_batch, settings.commit_max_delay_ms / 1000)
        self.answers = answers
        self._committed: list[Committed] = []
        self._touched: Touched = []
        self._wake = False

    def touched(self, touched: Touched) -> None:
        """The store's ``on_commit`` listener."""
        self._touched.extend(touched)

    def woken(self) -> None:
        """The playbook triggers' ``wake``: a commit wrote outbox messages."""
        self._wake = True

    def _observe(self, committed: Committed) -> None:
        self._committed.append(committed)

    def commit(self, batch: list[Job]) -> None:
        """Store ``batch`` and answer each of its jobs, in one message."""
        outcomes = self._outcomes(batch)
        jobs = [
            JobAnswer(job.ticket, None, failure=str(outcome))
            if isinstance(outcome, BaseException)
            else JobAnswer(
                job.ticket,
                outcome,
                job.missing_contact,
                kept=job.rejected_kept,
                refused=job.rejected_refused,
            )
            for job, outcome in zip(batch, outcomes, strict=True)
        ]
        touched = [(list(ids), what) for ids, what in self._touched]
        answer = Answer(jobs, self._committed, touched, self._wake)
        self._committed, self._touched, self._wake = [], [], False
        # When the server's process is gone, nobody waits for these answers.
        with contextlib.suppress(OSError):
            self.answers.send_bytes(_dumps(answer))


def serve(settings: Settings, jobs: Connection, answers: Connection) -> None:
    """The process: a writer on a store of its own, fed and stopped through ``jobs``."""
    # Ctrl+C and SIGTERM reach the whole process group: the server's process decides when
    # this one stops, after the requests it is still answering.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    # Each batch makes thousands of short-lived objects that reference counting frees (rows,
    # field dicts, results), not cycles: with the default threshold the collector walked them
    # every 700 allocations. Set aside what start-up made, and collect less often: about 6%
    # less CPU a batch (docs/performance.md).
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    store = Store(make_engine(settings))
    writer = _ProcessWriter(store, settings, answers)
    catalog = Catalog(store, settings.catalog_ttl_seconds)
    store.changes.subscribe(catalog.changed)
    max_bytes = settings.max_activity_bytes

    def validate(raw: bytes, received_at: dt.datetime) -> Accepted | Rejected:
        return prepare(raw, catalog.get(), received_at, max_bytes)

    triggers = PlaybookTriggers(
        store, SystemClock(), wake=writer.woken, ttl=settings.catalog_ttl_seconds
    )
    store.in_transaction.append(triggers.handle)
    store.changes.subscribe(triggers.changed)
    store.on_commit = writer.touched
    writer.listened_types = triggers.activity_types
    # Read now, not by the first request; a database that cannot be read now is read again
    # by the first request (which fails alone if it still cannot be).
    with contextlib.suppress(Exception):
        catalog.get()
    # Ready: the first answer, of no job.
    with contextlib.suppress(OSError):
        answers.send_bytes(_dumps(Answer([])))
    # One thread reads, decodes and commits: no second thread to take turns with on this
    # process's interpreter lock. It takes every job the pipe holds (up to a batch), waiting
    # for more until commit_max_delay_ms after the batch's first, as the writer's own thread
    # does.
    delay = writer.max_delay
    batch: list[Job] = []
    size = 0
    deadline = 0.0
    running = True
    try:
        while running:
            if not batch or (
                size < writer.max_batch and jobs.poll(max(0.0, deadline - time.monotonic()))
            ):
                try:
                    message = _loads(jobs.recv_bytes(), _decode_order)
                except (EOFError, OSError):
                    break  # the server's process is gone
                if isinstance(message, Jobs):
                    failed: list[JobAnswer] = []
                    taken = _unwire(message, validate, failed)
                    if failed:
                        with contextlib.suppress(OSError):
                            answers.send_bytes(_dumps(Answer(failed)))
                    if taken and not batch:
                        deadline = time.monotonic() + delay
                    batch += taken
                    size += sum(len(job.items) for job in taken)
                elif isinstance(message, ChangeNote):
                    store.changes.publish(cast(ChangeKind, message.kind), message.id)
                else:
                    running = False
                continue
            writer.commit(batch)
            batch, size = [], 0
    finally:
        # Commits what it took (each job answered, if anyone still listens), then exits.
        if batch:
            writer.commit(batch)
        writer.release_connection()
        store.dispose()
        answers.close()
