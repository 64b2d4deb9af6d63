"""Dispatch of the ingest routes: each transport built once with the hub, and a request's
path found by one dict lookup (the hot path) or by its transport's path table.

The routes themselves, and what the OpenAPI document says of them, are the table in
waypost/transports/routes.py.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from waypost.transports.frame import Endpoint, Methods, PathTable, Transport
from waypost.transports.routes import INGEST_ROUTES, IngestRoute

if TYPE_CHECKING:
    from waypost.hub import Hub

T = TypeVar("T", bound=Transport)


class IngestRouter:
    """The ingest routes of one app: each transport built once with the hub, and its
    endpoints found by exact path (a dict lookup, the hot path) or, for paths with values
    or a trailing slash, by the transport's :class:`~waypost.transports.frame.PathTable`."""

    def __init__(self, hub: Hub, routes: Sequence[IngestRoute] = INGEST_ROUTES) -> None:
        self.transports: dict[type[Transport], Transport] = {}
        by_path: dict[str, tuple[Transport, dict[str, Endpoint]]] = {}
        for route in routes:
            transport = self.transports.get(route.transport)
            if transport is None:
                transport = self.transports[route.transport] = route.transport(hub)
            endpoint: Endpoint = types.MethodType(route.endpoint, transport)
            for path in (route.path, *route.aliases):
                owner, methods = by_path.setdefault(path, (transport, {}))
                if owner is not transport or route.method in methods:
                    raise ValueError(f"{route.method} {path} is in the ingest table twice")
                methods[route.method] = endpoint
        self.served = {
            (method, path) for path, (_, methods) in by_path.items() for method in methods
        }
        # Exact paths only: a path with values is matched by its transport.
        self.exact: dict[str, tuple[Transport, Methods]] = {
            path: found for path, found in by_path.items() if "{" not in path
        }
        # Every path under a transport's prefixes is its own: unknown ones answer its 404.
        self.prefixes: dict[str, Transport] = {}
        for path, (transport, _) in by_path.items():
            prefix = _prefix(path)
            if prefix is not None and self.prefixes.setdefault(prefix, transport) is not transport:
                raise ValueError(f"{prefix} belongs to two transports")
        self.under = tuple(self.prefixes)
        for transport in self.transports.values():
            templates: dict[tuple[str, ...], Methods] = {}
            for path, (owner, methods) in by_path.items():
                prefix = _prefix(path)
                if owner is transport and prefix is not None:
                    templates.setdefault(tuple(path[len(prefix) :].split("/")), methods)
            mine = tuple(p for p, t in self.prefixes.items() if t is transport)
            transport.paths = PathTable(mine, tuple(templates.items()))

    def transport(self, kind: type[T]) -> T:
        """The app's transport of class ``kind``."""
        found = self.transports[kind]
        assert isinstance(found, kind)
        return found

    def find(self, path: str) -> tuple[Transport, Methods | None] | None:
        """The transport of ``path`` and, when matched exactly, its endpoints."""
        exact = self.exact.get(path)
        if exact is not None:
            return exact
        if path.startswith(self.under):
            for prefix, transport in self.prefixes.items():
                if path.startswith(prefix):
                    return transport, None
        return None


def _prefix(path: str) -> str | None:
    """``/tracking/contacts`` -> ``/tracking/``: the first segment, which names the transport.
    None for a path of one segment (Snowplow's ``/i``, PostHog's ``/e``): matched exactly only,
    it claims no other path."""
    end = path.find("/", 1)
    return None if end < 0 else path[: end + 1]
