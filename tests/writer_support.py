"""Support for the writer tests: a steady stream of jobs and how long each waited.

Imported by tests/test_pipeline_writer.py and tests/test_writer_process.py (pytest puts tests/
on sys.path; mypy knows it as tests.writer_support).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from waypost.pipeline.writer import WriterFront
from waypost.pipeline.writer_decision import Job


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
