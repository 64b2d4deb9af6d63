"""Support for the writer tests: a steady stream of jobs, and how long each waited.

Imported by tests/test_pipeline_writer.py and tests/test_writer_process.py (pytest puts tests/
on sys.path; mypy knows it as tests.writer_support).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo, Snapshot
from waypost.pipeline.prepare import prepare
from waypost.pipeline.writer import WriterFront
from waypost.pipeline.writer_decision import Job


def started(writer: WriterFront, timeout: float = 30.0) -> None:
    """Start ``writer`` and wait until it takes jobs (a writer's process has said it is
    ready), so that what a test times next does not include its start."""
    writer.start()
    deadline = time.monotonic() + timeout
    while not writer.running:
        assert time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.01)


def waits_of_a_stream(
    writer: WriterFront, make_job: Callable[[], Job], seconds: float, every: float
) -> list[tuple[int, float]]:
    """Hand ``writer`` one job every ``every`` seconds for ``seconds``, each from a thread of
    its own (``submit_and_wait``); each job's first status and how long it waited for it."""
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one(job: Job) -> None:
        started = time.monotonic()
        [results] = writer.submit_and_wait([job])
        with lock:
            answers.append((results[0].status, time.monotonic() - started))

    threads: list[threading.Thread] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        thread = threading.Thread(target=one, args=(make_job(),))
        thread.start()
        threads.append(thread)
        time.sleep(every)
    for thread in threads:
        thread.join()
    return answers


def check_a_stream_waits_at_most_the_delay(
    writer: WriterFront, snapshot: Snapshot, channel: ChannelInfo, contact: uuid.UUID
) -> int:
    """A click every 50 ms for 2 s through ``writer``, whose delay is 0.3 s: each is stored,
    none waits for the stream to pause, and they go in several transactions. How many."""

    def job() -> Job:
        now = utcnow()
        raw = b'{"type": "click", "value": "x"}'
        return Job(channel, contact, [prepare(raw, snapshot, now, 16_384)], now)

    before = writer.batches
    answers = waits_of_a_stream(writer, job, seconds=2.0, every=0.05)
    assert {status for status, _ in answers} == {202}
    # Waiting for a gap of 0.3 s instead, all of them went in one transaction after 2 s.
    longest = max(wait for _, wait in answers)
    assert longest < 1.2, f"a job waited {longest:.2f} s of {len(answers)}"
    assert writer.batches - before >= 3, writer.batches - before
    return len(answers)
