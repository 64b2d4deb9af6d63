"""Background delivery: a bounded queue, batches by count, bytes and time, and retries.

One daemon thread per client takes batches from the queue in order, splits each batch by
contact (the tracking API takes one contact per request) and posts them. Every activity carries
an ``id``, so a request repeated after a lost answer is stored once: Waypost answers 208 for
the activities it has already.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from waypost_sdk.models import DROP_REASONS, Dropped, DropReason, Stats
from waypost_sdk.options import ENVELOPE_BYTES, ClientOptions, batch_body

log = logging.getLogger("waypost_sdk")

MAX_RETRY_AFTER = 300.0
# Drops while the queue is full are logged once, then at most every this many seconds.
DROP_LOG_INTERVAL = 10.0


@dataclass(slots=True)
class Pending:
    """An activity waiting in the queue, already encoded."""

    contact: str
    body: bytes
    type: str
    id: str
    enqueued_at: float


@dataclass(slots=True)
class _Counters:
    enqueued: int = 0
    delivered: int = 0
    duplicates: int = 0
    requests: int = 0
    retries: int = 0


_live: weakref.WeakSet[Delivery] = weakref.WeakSet()


def _after_fork() -> None:
    for delivery in list(_live):
        delivery.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Delivery:
    """The queue and the thread that empties it."""

    def __init__(
        self,
        http_factory: Callable[[], httpx.Client],
        channel: str,
        options: ClientOptions,
        on_drop: Callable[[Dropped], None] | None,
    ) -> None:
        self._factory = http_factory
        self._channel = channel
        self._options = options
        self._on_drop = on_drop
        self.http = http_factory()
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[Pending] = deque()
        self._pending_bytes = ENVELOPE_BYTES
        self._taken = 0  # activities taken into a batch, in queue order
        self._done = 0  # activities of finished batches
        self._flush_upto = 0
        self._closing = False
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._counters = _Counters()
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._gzip = self._options.gzip
        self._unlogged_drops = 0
        self._drop_logged_at = -DROP_LOG_INTERVAL

    def after_fork(self) -> None:
        """In a forked child: the parent delivers what it had queued; start afresh here."""
        self.http = self._factory()
        self._reset()

    # -- the caller's side -------------------------------------------------------------------

    def enqueue(self, item: Pending) -> bool:
        """Queue ``item`` without waiting; ``False`` (and a drop report) if it cannot be."""
        options = self._options
        with self._cond:
            if self._closing or not self._start():
                reason: DropReason = "closed"
            elif len(self._pending) >= options.max_queue_size:
                reason = "queue_full"
            else:
                self._pending.append(item)
                self._pending_bytes += len(item.body) + 1
                self._counters.enqueued += 1
                count = len(self._pending)
                if (
                    count == 1
                    or count >= options.max_batch_size
                    or self._pending_bytes >= options.max_request_bytes
                ):
                    self._cond.notify_all()
                return True
            self._dropped[reason] += 1
            now = time.monotonic()
            self._unlogged_drops += 1
            if now - self._drop_logged_at >= DROP_LOG_INTERVAL:
                count, self._unlogged_drops, self._drop_logged_at = self._unlogged_drops, 0, now
            else:
                count = 0
        if count:
            why = (
                f"the queue holds max_queue_size={options.max_queue_size} activities"
                if reason == "queue_full"
                else "the client is closed, or the interpreter is shutting down"
            )
            log.warning("Dropped %s (%s): %s", activities(count), reason, sentence(why))
        self._report([item], reason, None, None, "")
        return False

    def drop_now(self, item: Pending, reason: DropReason, message: str) -> None:
        """Count and report an activity refused before it was queued."""
        with self._cond:
            self._dropped[reason] += 1
        self._report([item], reason, None, None, message)

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything queued before the call is delivered or dropped."""
        if threading.current_thread() is self._thread:
            return False  # an on_drop callback cannot wait for the thread it runs on
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._taken + len(self._pending)
            if self._done >= target:
                return True
            self._flush_upto = max(self._flush_upto, target)
            if not self._start():
                return False
            self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float | None) -> bool:
        """Refuse new activities, deliver the queued ones, stop the thread and the connections.

        What is still unsent when ``timeout`` runs out is dropped as ``shutdown``.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        delivered = self.flush(timeout)
        if not delivered:
            self._abort.set()
            with self._cond:
                self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # After an abort the thread stops once its current request ends.
            thread.join(None if delivered else self._options.timeout + 1)
        self.http.close()
        _live.discard(self)
        return delivered

    @property
    def closed(self) -> bool:
        return self._closing

    def stats(self) -> Stats:
        with self._cond:
            c = self._counters
            pending = c.enqueued - self._done
            return Stats(
                enqueued=c.enqueued,
                pending=pending,
                delivered=c.delivered,
                duplicates=c.duplicates,
                requests=c.requests,
                retries=c.retries,
                dropped=dict(self._dropped),
            )

    def _start(self) -> bool:
        # Called with the lock held; the thread starts with the first activity, not before.
        if self._thread is not None and self._thread.is_alive():
            return True
        thread = threading.Thread(target=self._run, name="waypost-sdk", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: nothing could ever send the activity
            return False
        self._thread = thread
        return True

    # -- the thread's side -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch, abandoned = self._next_batch()
            if abandoned:
                self._finish(abandoned, "shutdown", None, None, "not sent before shutdown")
                log.warning("Dropped %d unsent activities at shutdown", len(abandoned))
                self._mark_done(len(abandoned))
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                self._mark_done(len(batch))

    def _mark_done(self, count: int) -> None:
        with self._cond:
            self._done += count
            self._cond.notify_all()

    def _next_batch(self) -> tuple[list[Pending] | None, list[Pending]]:
        """The next batch once it is full, due, or asked for; ``None`` when the thread ends."""
        options = self._options
        with self._cond:
            while True:
                if self._abort.is_set():
                    abandoned = list(self._pending)
                    self._pending.clear()
                    self._taken += len(abandoned)
                    return None, abandoned
                if self._pending:
                    if (
                        self._closing
                        or self._flush_upto > self._taken
                        or len(self._pending) >= options.max_batch_size
                        or self._pending_bytes >= options.max_request_bytes
                    ):
                        break
                    wait = self._pending[0].enqueued_at + options.flush_interval - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                elif self._closing:
                    return None, []
                else:
                    self._cond.wait()
            batch: list[Pending] = []
            size = ENVELOPE_BYTES
            while self._pending and len(batch) < options.max_batch_size:
                item = self._pending[0]
                if batch and size + len(item.body) + 1 > options.max_request_bytes:
                    break
                self._pending.popleft()
                size += len(item.body) + 1
                self._pending_bytes -= len(item.body) + 1
                batch.append(item)
            self._taken += len(batch)
            return batch, []

    def _deliver(self, batch: list[Pending]) -> None:
        by_contact: dict[str, list[Pending]] = {}
        for item in batch:
            by_contact.setdefault(item.contact, []).append(item)
        for contact, items in by_contact.items():
            try:
                self._send(contact, items)
            except Exception:
                log.exception("Unexpected error sending %d activities; dropped", len(items))
                self._finish(items, "failed", None, None, "unexpected error in the client")

    def _send(self, contact: str, items: list[Pending]) -> None:
        """Post one contact's activities, retrying until delivered or given up."""
        options = self._options
        body = batch_body(self._channel, contact, [item.body for item in items])
        attempt = 0
        while True:
            if self._abort.is_set():
                log.warning("Dropped %d unsent activities at shutdown", len(items))
                self._finish(items, "shutdown", None, None, "not sent before shutdown")
                return
            retry_after: float | None = None
            try:
                response = self._post(body)
            except httpx.TransportError as exc:
                status, error_code, why = None, "network_error", f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self._results(contact, items, response)
                    return
                if status == 413 and len(items) > 1:
                    # The server's limits are lower than ours: halve until the parts fit.
                    half = len(items) // 2
                    self._send(contact, items[:half])
                    self._send(contact, items[half:])
                    return
                error_code, why = error_of(response)
                if status != 429 and status < 500:
                    log.error("%s", refusal(len(items), contact, status, error_code, why))
                    self._finish(items, "failed", status, error_code, why)
                    return
                retry_after = retry_after_of(response)
            attempt += 1
            if attempt > options.max_retries:
                log.error(
                    "Gave up on %s of contact %s after %d attempts: %s",
                    activities(len(items)),
                    contact,
                    attempt,
                    sentence(why),
                )
                self._finish(items, "failed", status, error_code, why)
                return
            delay = backoff(options, attempt, retry_after)
            with self._cond:
                self._counters.retries += 1
            log.info(
                "Could not deliver %d activities (%s); retry %d of %d in %.2f s",
                len(items),
                why,
                attempt,
                options.max_retries,
                delay,
            )
            self._abort.wait(delay)

    def _post(self, body: bytes) -> httpx.Response:
        compressed = self._gzip and len(body) >= self._options.gzip_threshold
        response = self._request(gzip.compress(body, 6) if compressed else body, compressed)
        if compressed and response.status_code in (400, 415):
            # A server that cannot read gzip: ask again uncompressed, and if that is taken,
            # stop compressing.
            plain = self._request(body, False)
            if plain.status_code not in (400, 415):
                self._gzip = False
                log.warning(
                    "Waypost refused a gzip body (%d); sending uncompressed bodies from now on",
                    response.status_code,
                )
            return plain
        return response

    def _request(self, content: bytes, compressed: bool) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if compressed:
            headers["Content-Encoding"] = "gzip"
        with self._cond:
            self._counters.requests += 1
        return self.http.post("tracking/activities", content=content, headers=headers)

    def _results(self, contact: str, items: list[Pending], response: httpx.Response) -> None:
        try:
            results = response.json()["results"]
            if not isinstance(results, list) or len(results) != len(items):
                raise TypeError("not one result per activity")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "Waypost answered %d without the expected results (%s); counting the %d "
                "activities as delivered",
                response.status_code,
                exc,
                len(items),
            )
            results = [{"status": 202}] * len(items)
        delivered = duplicates = 0
        for item, result in zip(items, results, strict=True):
            status = result.get("status") if isinstance(result, dict) else None
            if status in (202, 208):
                delivered += 1
                duplicates += status == 208
                continue
            error = result.get("error") if isinstance(result, dict) else None
            error = error if isinstance(error, dict) else {}
            error_code = str(error.get("code", "unknown"))
            message = str(error.get("message", ""))
            log.warning(
                "Waypost rejected activity %s (%s) of contact %s: %s %s: %s",
                item.id,
                item.type,
                contact,
                status,
                error_code,
                message,
            )
            known = status if isinstance(status, int) else None
            self._finish([item], "rejected", known, error_code, message)
        with self._cond:
            self._counters.delivered += delivered
            self._counters.duplicates += duplicates

    def _finish(
        self,
        items: list[Pending],
        reason: DropReason,
        status: int | None,
        error_code: str | None,
        message: str,
    ) -> None:
        with self._cond:
            self._dropped[reason] += len(items)
        self._report(items, reason, status, error_code, message)

    def _report(
        self,
        items: list[Pending],
        reason: DropReason,
        status: int | None,
        error_code: str | None,
        message: str,
    ) -> None:
        if self._on_drop is None:
            return
        for item in items:
            try:
                activity: dict[str, Any] = json.loads(item.body)
                self._on_drop(Dropped(reason, item.contact, activity, status, error_code, message))
            except Exception:
                log.exception("The on_drop callback failed")


def error_of(response: httpx.Response) -> tuple[str, str]:
    """Waypost's error code and message, or the status line when the body is not Waypost's."""
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return "http_error", f"HTTP {response.status_code} {response.reason_phrase}".strip()


def retry_after_of(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def backoff(options: ClientOptions, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a ``Retry-After`` is waited for instead."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    ceiling = min(options.backoff_max, options.backoff_base * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def activities(count: int) -> str:
    return "1 activity" if count == 1 else f"{count} activities"


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def refusal(count: int, contact: str, status: int, error_code: str, why: str) -> str:
    """The log line of a batch the server refused for good (a 4xx other than 429)."""
    return (
        f"Waypost refused {activities(count)} of contact {contact} ({status} {error_code}): "
        f"{sentence(why)} {'It is' if count == 1 else 'They are'} dropped, as sending "
        f"{'it' if count == 1 else 'them'} again cannot succeed; fix the cause and log "
        f"{'it' if count == 1 else 'them'} again."
    )
