"""The operator's endpoints: ``GET /healthz``, ``GET /readyz`` and ``GET /metrics``
(docs/operations.md). None needs a key (``/metrics`` takes ``WAYPOST_METRICS_TOKEN`` when set),
none answers data of any contact or channel, and none is rate-limited."""

from __future__ import annotations

import asyncio
import hmac
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from waypost.api.routing import error_response, json_response
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.metrics import CONTENT_TYPE, exposition
from waypost.services.readiness import Problem, Readiness

log = logging.getLogger("waypost.ops")

# How long /readyz waits for its checks; a database that does not answer by then is down.
READY_TIMEOUT_SECONDS = 3.0


class ReadinessProbe:
    """Runs the readiness checks off the event loop, one run at a time: requests that come
    while one runs share its answer, so a hung database ties up one thread, not one a probe."""

    def __init__(self, readiness: Readiness, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.readiness = readiness
        self.timeout = timeout
        self._running: asyncio.Future[list[Problem]] | None = None
        self._last: list[str] = []

    async def problems(self) -> list[Problem]:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self.readiness.problems))
        try:
            found = await asyncio.wait_for(asyncio.shield(self._running), self.timeout)
        except TimeoutError:
            found = [Problem("database", "The database did not answer in time.")]
        self._note(found)
        return found

    def _note(self, found: list[Problem]) -> None:
        # Once per change, not once a probe: probes come every few seconds.
        checks = [p.check for p in found]
        if checks != self._last:
            if found:
                log.warning("not ready: %s", "; ".join(p.message for p in found))
            elif self._last:
                log.info("ready again")
            self._last = checks


def ops_routes(hub: Hub) -> list[BaseRoute]:
    """The routes of /healthz, /readyz and /metrics for ``hub``'s process."""
    probe = ReadinessProbe(Readiness(hub.settings, hub.store, hub.writer))
    token = hub.settings.metrics_token
    expected = f"Bearer {token}".encode() if token else None

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"}, headers=NO_STORE)

    async def readyz(_: Request) -> Response:
        found = await probe.problems()
        if not found:
            return json_response({"status": "ready"}, headers=NO_STORE)
        first = found[0]
        message = " ".join(p.message for p in found)
        error = ApiError(503, "not_ready", message, first.check, {**NO_STORE, "Retry-After": "1"})
        return error_response(error)

    async def metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error_response(
                    ApiError(
                        401,
                        "unauthorized",
                        "The metrics need `Authorization: Bearer <WAYPOST_METRICS_TOKEN>`.",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                )
        hub.metrics.flush()  # this process's latest requests, counted on this loop
        body = await asyncio.to_thread(exposition, hub.metrics)
        return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


NO_STORE = {"Cache-Control": "no-store"}
