"""The metrics a Waypost process keeps, served at ``/metrics`` (docs/operations.md).

Every label takes values from a set fixed by the code: route templates, HTTP methods and
status codes, error codes, outcomes. No contact id, key, path or free text becomes a label,
so the number of series stays bounded whatever clients send.

With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, prometheus-client keeps the
values in files in that directory, and :func:`exposition` adds up those of every process, so
several worker processes serving one port answer one consistent scrape.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# What generate_latest() writes: Prometheus' classic text format, which every version of
# Prometheus reads (newer prometheus-client versions name it by a newer version number).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The methods counted by name; any other is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

# A route label for requests no route matched.
UNMATCHED = "unmatched"

# How long the counts of requests may wait in the event loop's buffer before they are added to
# the metrics (a scrape of this process adds them at once).
FLUSH_SECONDS = 1.0


class Metrics:
    """One process's metrics, registered in ``registry`` (a new one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # The process's CPU, memory and open files, read at each scrape.
        ProcessCollector(registry=r)
        self.requests = Counter(
            "waypost_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "waypost_http_request_duration_seconds",
            "Time from a request's start to the end of its answer, by method, route template "
            "and status.",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.acknowledged = Counter(
            "waypost_activities_acknowledged",
            "Activities stored by the writer (answered 202).",
            registry=r,
        )
        self.deduplicated = Counter(
            "waypost_activities_deduplicated",
            "Activities answered 208: stored earlier under the same id.",
            registry=r,
        )
        self.rejected = Counter(
            "waypost_activities_rejected",
            "Activities the writer answered with an error, by error code.",
            ["reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "waypost_writer_batch_activities",
            "Activities per writer transaction.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "waypost_writer_commit_seconds",
            "Time the writer takes to read, write and commit one transaction.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "waypost_writer_queue_depth",
            "Requests waiting for the writer when it last took a batch.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.group_update_lag = Histogram(
            "waypost_group_update_lag_seconds",
            "Time from a commit that touched contacts to their group memberships being updated.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.webhook_attempts = Counter(
            "waypost_webhook_deliveries",
            "Webhook delivery attempts, by outcome: delivered, retrying (a retry is "
            "scheduled) or failed (no retry left).",
            ["outcome"],
            registry=r,
        )
        self.webhook_lag = Histogram(
            "waypost_webhook_delivery_lag_seconds",
            "Time from a webhook message's creation to its delivery.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.purge_runs = Counter(
            "waypost_purge_runs",
            "Purges of expired data run by this process, by how they ended.",
            ["status"],
            registry=r,
        )
        self.purged = Counter(
            "waypost_purged_rows",
            "Rows deleted by purges, by kind: activities, rejected, rollups, daily_counts.",
            ["kind"],
            registry=r,
        )

        # Requests are counted on the event loop into plain lists, per (method, route, status):
        # [count, sum of seconds, one count per bucket], and added to the metrics above once a
        # second or at a scrape. prometheus-client's own observe() takes a lock per bucket and
        # value and cost more than the rest of a rejected request's handling.
        self._bounds = (*REQUEST_BUCKETS, math.inf)
        self._pending: dict[tuple[str, str, int], list[float]] = {}
        self._flush_due = False

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (on the event loop); ``route`` is a route template,
        never a raw path."""
        if method not in METHODS:
            method = "other"
        key = (method, route, status)
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = [0.0] * (2 + len(self._bounds))
        counts[0] += 1
        counts[1] += seconds
        counts[2 + bisect.bisect_left(self._bounds, seconds)] += 1
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Add the requests counted since the last flush to the metrics (on the event loop)."""
        pending, self._pending = self._pending, {}
        self._flush_due = False
        for (method, route, status), counts in pending.items():
            labels = (method, route, str(status))
            self.requests.labels(*labels).inc(counts[0])
            _add_observations(self.request_seconds.labels(*labels), counts[1], counts[2:])

    def count_rejections(self, reasons: Mapping[str, int]) -> None:
        for reason, n in reasons.items():
            self.rejected.labels(reason).inc(n)


def _add_observations(histogram: Any, total: float, per_bucket: list[float]) -> None:
    # A histogram's child keeps a value per bucket (not cumulative) and one for the sum, in
    # memory or, in multiprocess mode, in its process's file; adding to them at once is what
    # observe() does once per observation.
    histogram._sum.inc(total)
    for bucket, n in zip(histogram._buckets, per_bucket, strict=True):
        if n:
            bucket.inc(n)


def exposition(metrics: Metrics) -> bytes:
    """The text a scrape gets: ``metrics``, or in multiprocess mode every process's."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(metrics.registry)


def process_ended() -> None:
    """Drop this process's live gauges from the multiprocess directory (at shutdown)."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
