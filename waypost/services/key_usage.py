"""When each API key was last used: noted in memory on the request path, written in the
background at most once a minute per key, so authenticating stays a dictionary lookup."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid

import sqlalchemy as sa

from waypost.ids import utcnow
from waypost.store import StorageUnavailable, Store
from waypost.store.schema import api_keys

log = logging.getLogger(__name__)

FLUSH_EVERY = 60.0


class KeyUsage:
    """Last-use times of keys, waiting to be written; :meth:`flush` writes them."""

    def __init__(self, store: Store, every: float = FLUSH_EVERY) -> None:
        self.store = store
        self.every = every
        self._pending: dict[uuid.UUID, dt.datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, key_id: uuid.UUID) -> None:
        """The key just authenticated. Cheap: one dictionary write, no I/O."""
        self._pending[key_id] = utcnow()

    def flush(self) -> int:
        """Write the noted times; how many keys were written."""
        with self._lock:
            taken, self._pending = self._pending, {}
        # note() takes no lock: a use noted into the dict just swapped out is copied here in
        # one step (or, at worst, waits for the key's next use).
        pending = dict(list(taken.items()))
        if not pending:
            return 0
        stmt = (
            api_keys.update()
            .where(api_keys.c.id == sa.bindparam("key_id"))
            .values(last_used_at=sa.bindparam("used_at"))
        )
        try:
            with self.store.write() as conn:
                conn.execute(stmt, [{"key_id": k, "used_at": t} for k, t in pending.items()])
        except StorageUnavailable:
            # Kept for the next flush, unless a newer use was noted meanwhile.
            with self._lock:
                for key_id, used_at in pending.items():
                    self._pending.setdefault(key_id, used_at)
            return 0
        return len(pending)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="key-usage", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background flush, writing what is still noted."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.flush()
            except Exception:  # a failed flush must not end the thread; the next one retries
                log.exception("writing the keys' last-use times failed")
