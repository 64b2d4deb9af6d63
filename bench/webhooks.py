"""``python -m bench.webhooks``: the webhook figures of docs/performance.md.

Waypost on a fresh SQLite database with a playbook that calls a webhook for every activity
of the benchmark's type, a live receiver and, in the second half, a dead one (it accepts
connections and never answers), each a process of its own:

1. latency: single activities paced at ``--rate`` (1,000/s) for ``--seconds``; every message
   must arrive, and the receiver notes how long after each activity's ``received_at`` its
   message came (p50, p99);
2. drain: the live endpoint is disabled while ``--backlog`` (20,000) triggering activities are
   logged in 100-activity batches, so that their messages are kept as failed; it is enabled
   and the failed range replayed, and the time until the last message arrives gives the
   drain rate.

Both again once the playbook also calls the dead endpoint: the live endpoint's figures must
not change beyond noise. Every message is counted by its ``webhook-id``: a run whose receiver
did not get each one exactly once fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import payloads
from bench.harness import BenchFailure, Harness, say
from bench.load import LoadError, wrk_path
from bench.servers import HOST, ServerError, free_port

LATENCY_P99_MS = 1000.0
DRAIN_PER_SECOND = 2000.0
# How much the dead endpoint may change the live one's figures (noise on a shared machine).
NOISE = 0.25
WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Options:
    rate: int
    seconds: float
    backlog: int
    out: Path
    keep: bool
    dispatcher: str


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks", description="Measure webhook latency and drain rate."
    )
    add = parser.add_argument
    add("--rate", type=int, default=1000, help="triggering activities per second (1000)")
    add("--seconds", type=float, default=10.0, help="seconds of paced load (10)")
    add("--backlog", type=int, default=20_000, help="messages in the drained backlog (20000)")
    add("--out", type=Path, default=Path("bench-results/webhooks.json"), help="results file")
    add("--keep", action="store_true", help="keep the temporary directory and server logs")
    add(
        "--dispatcher",
        choices=["process", "thread"],
        default="thread",
        help="the dispatcher in a thread of the server's (the default, as Waypost's own) or "
        "in a process of its own (WAYPOST_WEBHOOK_PROCESS=1)",
    )
    ns = parser.parse_args(argv)
    if not 1 <= ns.rate <= 20_000:
        parser.error("--rate must be 1 to 20000")
    if not 0 < ns.seconds <= 120:
        parser.error("--seconds must be over 0 and at most 120")
    if not 100 <= ns.backlog <= 1_000_000 or ns.backlog % 100:
        parser.error("--backlog must be a multiple of 100, 100 to 1000000")
    return Options(**vars(ns))


class Receiver:
    """``python -m bench.receiver`` in a subprocess."""

    def __init__(self, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.port = free_port()
        self._log = (workdir / f"receiver-{mode}.log").open("wb")
        # One client for all the polling: a new one loads the CA certificates each time,
        # tens of milliseconds of CPU taken from the machine being measured.
        self._client = httpx.Client(timeout=10)
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bench.receiver", "--port", str(self.port), "--mode", mode],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with httpx.Client(timeout=1) as probe:
                    if mode == "dead":
                        probe.get(self.url, timeout=0.2)
                    else:
                        probe.get(f"{self.url}/stats")
                return
            except httpx.TimeoutException:
                return  # the dead receiver accepted and did not answer: it is up
            except httpx.HTTPError:
                time.sleep(0.1)
        raise ServerError(f"the {mode} receiver did not start")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stats(self) -> dict[str, Any]:
        answer = self._client.get(f"{self.url}/stats")
        result: dict[str, Any] = answer.json()
        return result

    def reset(self) -> None:
        self._client.post(f"{self.url}/reset")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()
        self._client.close()


class Bench:
    """The servers, the playbook, and the phases."""

    def __init__(self, options: Options, harness: Harness, stack: ExitStack) -> None:
        self.options = options
        self.harness = harness
        self.waypost = harness.start_waypost(stack)
        self.live = Receiver("live", harness.workdir)
        stack.callback(self.live.stop)
        self.dead = Receiver("dead", harness.workdir)
        stack.callback(self.dead.stop)
        self.waypost.wait_ready()
        self.pools = harness.setup()
        info = self.waypost.info
        self.client = httpx.Client(
            base_url=self.waypost.url,
            headers={"Authorization": f"Bearer {info['admin_key']}"},
            timeout=60,
        )
        stack.callback(self.client.close)
        self.tracking = {"Authorization": f"Bearer {info['tracking_key']}"}
        self.live_id = self._endpoint(self.live.url)
        self.dead_id = self._endpoint(self.dead.url)
        self.playbook = self._api(
            "POST",
            "/api/playbooks",
            201,
            {
                "name": "Every loan calculation",
                "description": "The webhook benchmark's playbook.",
                "enabled": True,
                "trigger": {"event": "activity", "type": payloads.ACTIVITY_TYPE["code_name"]},
                "cadence": {"mode": "every_time"},
                "actions": [{"kind": "webhook", "endpoint": self.live_id}],
            },
        )["id"]
        self.expected = 0

    def _api(self, method: str, path: str, status: int, body: Any = None) -> dict[str, Any]:
        answer = self.client.request(method, path, json=body)
        if answer.status_code != status:
            raise BenchFailure(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        result: dict[str, Any] = answer.json() if answer.content else {}
        return result

    def _endpoint(self, url: str) -> str:
        body = {"url": f"{url}/hooks", "description": "benchmark receiver", "enabled": True}
        return str(self._api("POST", "/api/webhook-endpoints", 201, body)["id"])

    def call_dead_too(self) -> None:
        actions = [
            {"kind": "webhook", "endpoint": self.live_id},
            {"kind": "webhook", "endpoint": self.dead_id},
        ]
        self._api("PATCH", f"/api/playbooks/{self.playbook}", 200, {"actions": actions})

    def _wait_for(self, count: int) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        stats = self.live.stats()
        while stats["unique"] < count and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = self.live.stats()
        if stats["unique"] != count or stats["deliveries"] != count:
            raise BenchFailure(
                f"the live receiver got {stats['deliveries']} deliveries of {stats['unique']} "
                f"messages; {count} were triggered"
            )
        return stats

    def latency(self, label: str) -> dict[str, Any]:
        o = self.options
        say(f"{label}: single activities paced at {o.rate:,}/s for {o.seconds:g} s")
        self.live.reset()
        result = self.harness.measure(
            self.waypost, self.pools.single, 1, 64, o.seconds, 1_000_000 / o.rate
        )
        stats = self._wait_for(result.accepted)
        return {
            "activities": result.accepted,
            "rate": round(result.requests_per_second, 1),
            "ingest_p99_ms": result.p99_us / 1000,
            "p50_ms": stats["p50_ms"],
            "p99_ms": stats["p99_ms"],
            "max_ms": stats["max_ms"],
            "load_average": round(os.getloadavg()[0], 2),
        }

    def drain(self, label: str) -> dict[str, Any]:
        o = self.options
        say(f"{label}: a backlog of {o.backlog:,} messages")
        self._api("PATCH", f"/api/webhook-endpoints/{self.live_id}", 200, {"enabled": False})
        since = dt.datetime.now(dt.UTC)
        bodies = payloads.pool(
            self.waypost.info["tracking_key"],
            self.waypost.info["channel"],
            self.harness_contacts(),
            100,
            seed=3,
        ).bodies
        headers = {**self.tracking, "Content-Type": "application/json"}
        for i in range(o.backlog // 100):
            answer = self.client.post(
                payloads.PATH, content=bodies[i % len(bodies)], headers=headers
            )
            if answer.status_code != 207:
                raise BenchFailure(f"logging the backlog: {answer.status_code} {answer.text}")
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        self._api("PATCH", f"/api/webhook-endpoints/{self.live_id}", 200, {"enabled": True})
        self.live.reset()
        started = time.time()
        replay = {"since": since.isoformat(), "until": until.isoformat()}
        self._api("POST", f"/api/webhook-endpoints/{self.live_id}/replay", 200, replay)
        stats = self._wait_for(o.backlog)
        seconds = stats["last"] - started
        return {
            "messages": o.backlog,
            "seconds": round(seconds, 2),
            "per_second": o.backlog / seconds,
            "load_average": round(os.getloadavg()[0], 2),
        }

    def harness_contacts(self) -> list[str]:
        answer = self.client.get("/api/contacts", params={"limit": payloads.CONTACTS})
        return [c["id"] for c in answer.json()["data"]]


def judge(document: dict[str, Any]) -> list[dict[str, Any]]:
    one, two = document["one_endpoint"], document["with_dead_endpoint"]
    rows = []
    for name, phase in (("one endpoint", one), ("with a dead endpoint", two)):
        p99, drain = phase["latency"]["p99_ms"], phase["drain"]["per_second"]
        rows.append(
            {
                "name": f"p99 202 -> receiver, {name}",
                "goal": f"<= {LATENCY_P99_MS:,.0f} ms",
                "measured": f"{p99:,.1f} ms",
                "met": p99 <= LATENCY_P99_MS,
            }
        )
        rows.append(
            {
                "name": f"backlog drain, {name}",
                "goal": f">= {DRAIN_PER_SECOND:,.0f}/s",
                "measured": f"{drain:,.0f}/s",
                "met": drain >= DRAIN_PER_SECOND,
            }
        )
    drain_change = two["drain"]["per_second"] / one["drain"]["per_second"] - 1
    rows.append(
        {
            "name": "dead endpoint: live drain rate change",
            "goal": f"within -{NOISE:.0%}",
            "measured": f"{drain_change:+.0%}",
            "met": drain_change >= -NOISE,
        }
    )
    p99_one = max(one["latency"]["p99_ms"], 1.0)
    p99_change = two["latency"]["p99_ms"] / p99_one - 1
    rows.append(
        {
            "name": "dead endpoint: live p99 change",
            "goal": f"within +{NOISE:.0%} or <= 1 s",
            "measured": f"{p99_change:+.0%}",
            "met": p99_change <= NOISE or two["latency"]["p99_ms"] <= LATENCY_P99_MS,
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        wrk_path()
    except LoadError as exc:
        print(f"bench.webhooks: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="waypost-bench-webhooks-"))
    env = {
        "WAYPOST_WEBHOOK_ALLOW_PRIVATE": "1",
        "WAYPOST_WEBHOOK_PROCESS": "1" if options.dispatcher == "process" else "0",
    }
    harness = Harness(workdir, env=env)
    document: dict[str, Any] = {
        "benchmark": "waypost webhooks",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_before": os.getloadavg(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
    }
    failure: str | None = None
    try:
        with ExitStack() as stack:
            bench = Bench(options, harness, stack)
            document["one_endpoint"] = {
                "latency": bench.latency("one endpoint"),
                "drain": bench.drain("one endpoint"),
            }
            bench.call_dead_too()
            document["with_dead_endpoint"] = {
                "latency": bench.latency("with a dead endpoint"),
                "drain": bench.drain("with a dead endpoint"),
            }
    except (BenchFailure, LoadError, ServerError) as exc:
        failure = str(exc)
    finally:
        if options.keep or failure is not None:
            say(f"kept {workdir} (database and logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document["load_average_after"] = os.getloadavg()
    document["failure"] = failure
    rows = judge(document) if failure is None else []
    document["targets"] = rows
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(document, indent=2) + "\n")
    if failure is not None:
        print(f"\nBENCHMARK FAILED: {failure}\n(partial results in {options.out})", file=sys.stderr)
        return 1
    print("\nWaypost webhook benchmark")
    for row in rows:
        mark = "met" if row["met"] else "MISSED"
        print(f"  {row['name']:<42} {row['goal']:>18} {row['measured']:>12}  {mark}")
    print(f"Results written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
