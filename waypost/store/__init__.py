"""Storage: the tables, the engine for SQLite or PostgreSQL, migrations and the Store seam."""

from waypost.errors import StorageUnavailable
from waypost.store.changes import Change, ChangeFeed, ChangeKind, LocalChangeFeed, announce
from waypost.store.engine import Store, after_commit, emit, make_engine, touch

__all__ = [
    "Change",
    "ChangeFeed",
    "ChangeKind",
    "LocalChangeFeed",
    "StorageUnavailable",
    "Store",
    "after_commit",
    "announce",
    "emit",
    "make_engine",
    "touch",
]
