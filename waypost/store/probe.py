"""The database as a readiness check sees it: a new connection for each look, so that a
database that went away is seen to be gone, even while the pool still holds connections to it.
"""

from __future__ import annotations

from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from waypost.settings import Settings
from waypost.store.engine import make_engine, normalise_url, outage_guard
from waypost.store.migrate import current_revision

# How long a look may wait for the database to answer a new connection.
CONNECT_TIMEOUT_SECONDS = 2


def probe_engine(settings: Settings) -> Engine | None:
    """An engine without a pool on ``settings``' database; None for an in-memory SQLite
    database, which only the process's own engine reaches. A SQLite file is opened read-write
    but never created: a file that vanished is an outage, not a new, empty database."""
    url = make_url(normalise_url(settings.database_url))
    if url.get_backend_name() != "sqlite":
        return make_engine(
            settings,
            poolclass=sa.NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
    path = url.database
    if not path or path == ":memory:":
        return None
    if url.query:
        # A URL with options of its own (a URI filename) is taken as given.
        return make_engine(settings, poolclass=sa.NullPool)
    probe = url.set(database=f"file:{quote(path)}", query={"mode": "rw", "uri": "true"})
    return sa.create_engine(
        probe,
        poolclass=sa.NullPool,
        connect_args={"check_same_thread": False, "timeout": CONNECT_TIMEOUT_SECONDS},
    )


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: none). Raises StorageUnavailable when the
    database cannot be reached."""
    with outage_guard():
        return current_revision(engine)
