"""Statements run through the driver's executemany write what SQLAlchemy's own execute
writes, on both databases."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from waypost.store import Store
from waypost.store.prepared import Prepared
from waypost.store.schema import channels

T0 = dt.datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=dt.UTC)


def _rows(store: Store) -> list[tuple[object, ...]]:
    c = channels
    with store.read() as conn:
        found = conn.execute(
            sa.select(
                c.c.id, c.c.name, c.c.kind, c.c.created_at, c.c.allowed_origins, c.c.enforce_consent
            ).order_by(c.c.name)
        )
        return [tuple(row) for row in found]


def _channel(name: str, at: dt.datetime) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "name": name,
        "kind": "headless",
        "allowed_origins": ["https://shop.example"],
        "default_language": "en",
        "tracking_consent": None,
        "enforce_consent": True,
        "identity_secret": "not a secret",
        "unknown_events": "reject",
        "created_at": at,
        "updated_at": at,
    }


def test_an_insert_writes_what_sqlalchemy_writes(store: Store) -> None:
    # The same rows, once through SQLAlchemy, once through the driver: UUIDs, aware
    # datetimes (another zone than UTC too) and booleans converted alike.
    other_zone = T0.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    ours = [_channel("a-prepared", T0), _channel("b-prepared", other_zone)]
    theirs = [{**row, "id": uuid.uuid4(), "name": f"{row['name']}-core"} for row in ours]
    with store.write() as conn:
        Prepared(sa.insert(channels)).executemany(conn, ours)
        conn.execute(sa.insert(channels), theirs)
    rows = _rows(store)
    assert [(r[1], r[3]) for r in rows] == [
        ("a-prepared", T0),
        ("a-prepared-core", T0),
        ("b-prepared", T0),
        ("b-prepared-core", T0),
    ]
    assert {r[0] for r in rows} == {row["id"] for row in ours + theirs}
    assert {(str(r[4]), r[5]) for r in rows} == {("['https://shop.example']", True)}


def test_an_update_takes_its_parameters_by_name_and_keeps_fixed_values(store: Store) -> None:
    first, second = _channel("first", T0), _channel("second", T0)
    with store.write() as conn:
        conn.execute(sa.insert(channels), [first, second])
    later = T0 + dt.timedelta(days=1)
    rename = Prepared(
        channels.update()
        .where(channels.c.id == sa.bindparam("b_id"))
        .values(name=sa.bindparam("b_name"), kind="website", created_at=sa.bindparam("b_at"))
    )
    with store.write() as conn:
        rename.executemany(
            conn,
            [
                {"b_id": first["id"], "b_name": "renamed", "b_at": later},
                {"b_id": uuid.uuid4(), "b_name": "nobody", "b_at": later},
            ],
        )
        rename.executemany(conn, [])
    assert [r[1:4] for r in _rows(store)] == [
        ("renamed", "website", later),
        ("second", "headless", T0),
    ]
