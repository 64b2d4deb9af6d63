"""A webhook receiver for the benchmark, in a process of its own: ``python -m bench.receiver
--port P --mode live|dead``.

``live`` answers every POST ``200`` at once, on keep-alive connections, and notes for each
message its ``webhook-id`` and how long after the triggering activity's ``received_at`` it
arrived (the activity was acknowledged a little after that time, so the figure errs long).
``GET /stats`` answers what it noted; ``POST /reset`` forgets it. ``dead`` accepts connections
and never answers, as a hung receiver does: the worst a dead endpoint can do to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from typing import Any

import httptools

HOST = "127.0.0.1"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Notes:
    """What the live receiver saw."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ids: set[str] = set()
        self.deliveries = 0
        self.latencies_ms: list[float] = []
        self.first: float | None = None
        self.last: float | None = None

    def note(self, webhook_id: str, body: bytes) -> None:
        now = time.time()
        self.deliveries += 1
        self.ids.add(webhook_id)
        self.first = self.first if self.first is not None else now
        self.last = now
        try:
            received = json.loads(body)["data"]["activity"]["received_at"]
            at = dt.datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            return
        self.latencies_ms.append((now - at) * 1000)

    def stats(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            if not latencies:
                return None
            return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)

        return {
            "deliveries": self.deliveries,
            "unique": len(self.ids),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(latencies[-1], 2) if latencies else None,
            "first": self.first,
            "last": self.last,
        }


class Live(asyncio.Protocol):
    """One keep-alive connection of the live receiver, parsed with httptools."""

    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have write().
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        body = b"".join(self.body)
        answer = OK
        if self.url == b"/stats":
            payload = json.dumps(self.notes.stats()).encode()
            answer = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
        elif self.url == b"/reset":
            self.notes.reset()
        elif method == b"POST":
            self.notes.note(self.headers.get(b"webhook-id", b"").decode(), body)
        self.transport.write(answer)
        self.headers, self.body, self.url = {}, [], b""


class Dead(asyncio.Protocol):
    """Reads what it is sent and never answers."""

    def data_received(self, data: bytes) -> None:
        pass


async def serve(port: int, mode: str) -> None:
    loop = asyncio.get_running_loop()
    notes = Notes()
    factory: Any = (lambda: Live(notes)) if mode == "live" else Dead
    server = await loop.create_server(factory, HOST, port, backlog=1024)
    print(f"BENCH-RECEIVER {json.dumps({'port': port, 'mode': mode})}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["live", "dead"], default="live")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.mode))


if __name__ == "__main__":
    main()
