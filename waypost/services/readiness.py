"""Whether this process is ready to take traffic: the database reachable, its schema at this
version's migration, the writer running (``GET /readyz``, docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from waypost.pipeline.writer import WriterFront
from waypost.settings import Settings
from waypost.store import StorageUnavailable, Store
from waypost.store.migrate import head_revision
from waypost.store.probe import probe_engine, schema_revision


@dataclass(frozen=True)
class Problem:
    """A check that failed: ``database``, ``migrations`` or ``writer``, and why."""

    check: str
    message: str


class Readiness:
    """The readiness checks of one process. :meth:`problems` blocks (it connects to the
    database): call it off the event loop."""

    def __init__(self, settings: Settings, store: Store, writer: WriterFront) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.head = head_revision()
        self._engine: Engine | None = None

    def problems(self) -> list[Problem]:
        """What keeps this process from being ready; empty when it is."""
        found: list[Problem] = []
        try:
            revision = schema_revision(self._probe())
        except StorageUnavailable:
            found.append(Problem("database", "The database cannot be reached."))
        else:
            if revision != self.head:
                found.append(
                    Problem(
                        "migrations",
                        f"The database's schema is at revision {revision or 'none'}; this "
                        f"version of Waypost needs {self.head}. Run `waypost migrate`.",
                    )
                )
        if not self.writer.running:
            found.append(Problem("writer", "The writer is not running."))
        return found

    def _probe(self) -> Engine:
        if self._engine is None:
            self._engine = probe_engine(self.settings) or self.store.engine
        return self._engine
