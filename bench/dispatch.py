"""``python -m bench.dispatch``: what one webhook delivery costs the dispatcher, apart from
ingest and the rest of the server (docs/performance.md, "Webhook delivery").

``--messages`` (20,000) messages are written straight into the outbox of a fresh SQLite
database for the benchmark's live receiver (``python -m bench.receiver``, a process of its
own), and, with ``--dead``, as many for a receiver that never answers. One hub's dispatcher
sends them; the figures are the wall time until the live receiver has them all, and the CPU
time this process (and, with ``WAYPOST_WEBHOOK_PROCESS=1``, the dispatcher's process)
spent meanwhile: CPU seconds per delivery move much less than wall figures with the
machine's other load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from bench.harness import say
from bench.webhooks import Receiver
from waypost.hub import Hub
from waypost.ids import new_id
from waypost.records.outbox import OutboxMessage, enqueue
from waypost.services.webhook_endpoints import WebhookEndpointCreate
from waypost.settings import load_settings
from waypost.store import migrate

BODY_BYTES = 700


def _body(i: int) -> str:
    now = dt.datetime.now(dt.UTC).isoformat()
    data = {"activity": {"id": str(new_id()), "received_at": now, "value": "x" * BODY_BYTES}}
    return json.dumps({"type": "activity.performed", "timestamp": now, "n": i, "data": data})


def _cpu(hub: Hub) -> float:
    # This process's threads, and the dispatcher's process when it has one.
    me = resource.getrusage(resource.RUSAGE_SELF)
    used = me.ru_utime + me.ru_stime
    pid = hub.webhook_process.pid if hub.webhook_process is not None else None
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--dead", action="store_true", help="as many for a dead endpoint too")
    ns = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="waypost-bench-dispatch-"))
    live = Receiver("live", workdir)
    dead = Receiver("dead", workdir) if ns.dead else None
    env = {
        **os.environ,
        "WAYPOST_DATABASE_URL": f"sqlite:///{workdir / 'waypost.db'}",
        "WAYPOST_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    hub = Hub(load_settings(env))
    try:
        migrate.upgrade(hub.store.engine)
        targets = [live] + ([dead] if dead is not None else [])
        endpoints = [
            hub.webhook_endpoints.create(WebhookEndpointCreate(url=f"{r.url}/hooks")).id
            for r in targets
        ]
        now = dt.datetime.now(dt.UTC)
        for start in range(0, ns.messages, 1000):
            with hub.store.write() as conn:
                enqueue(
                    conn,
                    [
                        OutboxMessage(new_id(), endpoint, "activity.performed", _body(i), now)
                        for i in range(start, min(ns.messages, start + 1000))
                        for endpoint in endpoints
                    ],
                )
        live.reset()
        hub.start_webhooks()
        cpu, started = _cpu(hub), time.perf_counter()
        got = 0
        while got < ns.messages and time.perf_counter() - started < 300:
            time.sleep(0.25)
            got = live.stats()["unique"]
        wall = time.perf_counter() - started
        used = _cpu(hub) - cpu
        hub.close()
        stats = live.stats()
        say(
            f"{stats['unique']:,} of {ns.messages:,} delivered ({stats['deliveries']:,} calls) "
            f"in {wall:.2f} s: {stats['unique'] / wall:,.0f}/s; "
            f"CPU {used:.2f} s, {used / max(1, stats['unique']) * 1e6:,.0f} us per delivery; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        return 0 if stats["unique"] == ns.messages == stats["deliveries"] else 1
    finally:
        live.stop()
        if dead is not None:
            dead.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
