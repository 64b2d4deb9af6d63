"""Storage: the tables, the engine for SQLite or PostgreSQL, migrations and the Store seam."""

from waypost.store.engine import StorageUnavailable, Store, make_engine, touch

__all__ = ["StorageUnavailable", "Store", "make_engine", "touch"]
