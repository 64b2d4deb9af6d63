"""The bare ASGI baseline: read the whole body, answer a fixed 207.

Its answer has the shape and size of Waypost's answer to the same request (one result per
activity), so the load generator does the same work parsing either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A fixed id of the same length as a real one, so the answer is as long as Waypost's.
FIXED_ID = "019b0000-0000-7000-8000-000000000000"


def fixed_body(results: int) -> bytes:
    """The 207 body for ``results`` activities, as Waypost encodes it."""
    one = '{"status":202,"id":"' + FIXED_ID + '"}'
    return ('{"results":[' + ",".join([one] * results) + "]}").encode()


class BaselineApp:
    """Reads the request body to its end, then answers 207 with a body fixed at start-up."""

    def __init__(self, results: int) -> None:
        self.body = fixed_body(results)
        self.received = 0
        self.start = {
            "type": "http.response.start",
            "status": 207,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
            ],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        self.received = len(b"".join(chunks))
        await send(self.start)
        await send({"type": "http.response.body", "body": self.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
