"""The storage forms of the writer's codec: recurring ids worked out once per object, and
always the same text as for a fresh object."""

from __future__ import annotations

import uuid

import pytest

from waypost.store import codec
from waypost.store.codec import Codec


def test_known_ids_are_their_hex_on_sqlite_and_themselves_on_postgresql() -> None:
    sqlite, postgres = Codec("sqlite"), Codec("postgresql")
    ids = [uuid.uuid4() for _ in range(3)]
    for value in ids * 3:
        assert sqlite.known(value) == value.hex == sqlite.ident(value)
        assert postgres.known(value) is value
    # An equal id in another object, and the same object again.
    twin = uuid.UUID(int=ids[0].int)
    assert sqlite.known(twin) == ids[0].hex
    assert sqlite.known(ids[0]) == ids[0].hex


def test_known_ids_start_again_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "KNOWN_IDS", 4)
    c = Codec("sqlite")
    ids = [uuid.uuid4() for _ in range(10)]
    for value in ids:
        assert c.known(value) == value.hex
    assert len(c._known) <= 4
    # Objects that died and whose memory was reused are never answered for.
    for _ in range(100):
        fresh = uuid.uuid4()
        assert c.known(fresh) == fresh.hex
