"""Alembic migrations on SQLite and PostgreSQL: up from empty, down to base, up again."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from waypost.settings import load_settings
from waypost.store import make_engine, migrate
from waypost.store.schema import SEARCH_INDEXES, activity_types, api_keys, metadata

TABLES = {table.name for table in metadata.sorted_tables}


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    the_engine = make_engine(
        load_settings({"WAYPOST_DATABASE_URL": empty_database_url}), poolclass=sa.NullPool
    )
    yield the_engine
    the_engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def builtin_types(engine: Engine) -> dict[str, tuple[bool, bool, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                activity_types.c.code_name,
                activity_types.c.builtin,
                activity_types.c.enabled,
                activity_types.c.client_side,
            )
        ).all()
    return {row.code_name: (row.builtin, row.enabled, row.client_side) for row in rows}


def _declared(item: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
    # The search indexes are per database, made by migration 0008 alone (see SEARCH_INDEXES).
    return not (kind == "index" and name in SEARCH_INDEXES)


def differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": _declared,
            },
        )
        return list(compare_metadata(context, metadata))


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    assert table_names(engine) == set()
    assert migrate.current_revision(engine) is None
    assert not migrate.is_up_to_date(engine)

    migrate.upgrade(engine)
    assert table_names(engine) == TABLES | {"alembic_version"}
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert migrate.is_up_to_date(engine)

    migrate.downgrade(engine, "base")
    assert table_names(engine) == {"alembic_version"}
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)
    migrate.upgrade(engine)  # at head already: changes nothing
    assert table_names(engine) == TABLES | {"alembic_version"}
    assert migrate.is_up_to_date(engine)
    # The migrated schema is exactly the table definitions of waypost.store.schema.
    assert differences(engine) == []
    # The built-in types exist after migration, once each.
    assert builtin_types(engine) == {
        "pagevisit": (True, True, True),
        "click": (True, True, True),
        "datainput": (True, True, False),
    }
    with engine.connect() as conn:
        created = conn.execute(sa.select(activity_types.c.created_at)).scalars().all()
    assert len(created) == 3
    for when in created:
        assert when.tzinfo is not None
        assert abs(dt.datetime.now(dt.UTC) - when) < dt.timedelta(minutes=5)


def test_the_comparison_would_see_a_drift(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_activities_time")
    assert any("ix_activities_time" in repr(diff) for diff in differences(engine))


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    migrate.upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                id=uuid.uuid4(),
                channel_id=uuid.uuid4(),
                access="tracking",
                name="",
                prefix="wpt_abcd",
                last_four="abcd",
                key_hash="0" * 64,
                enabled=True,
                created_at=now,
            )
        )


@pytest.mark.parametrize(("synchronous", "level"), [("FULL", 2), ("NORMAL", 1)])
def test_sqlite_runs_in_wal_with_foreign_keys_on(
    tmp_path: Path, synchronous: str, level: int
) -> None:
    settings = load_settings(
        {
            "WAYPOST_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
            "WAYPOST_SQLITE_SYNCHRONOUS": synchronous,
        }
    )
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
    finally:
        engine.dispose()


def test_0014_makes_website_channels_with_a_tracking_consent_enforce_it(engine: Engine) -> None:
    from waypost.store.schema import channels

    migrate.upgrade(engine, "0013")
    now = dt.datetime.now(dt.UTC)
    made = {}
    with engine.begin() as conn:
        for kind, consent in (("website", "Tracking"), ("website", None), ("headless", "Tracking")):
            made[(kind, consent)] = channel_id = uuid.uuid4()
            conn.execute(
                channels.insert().values(
                    id=channel_id, name=f"{kind} {consent}", kind=kind, allowed_origins=[],
                    default_language="en", tracking_consent=consent, enforce_consent=False,
                    identity_secret="s", created_at=now, updated_at=now,
                )
            )  # fmt: skip
    migrate.upgrade(engine)
    with engine.connect() as conn:
        enforced = dict(conn.execute(sa.select(channels.c.id, channels.c.enforce_consent)).all())
    assert {key: enforced[value] for key, value in made.items()} == {
        ("website", "Tracking"): True,
        ("website", None): False,
        ("headless", "Tracking"): False,
    }


def test_0019_fills_the_distinct_contacts_and_the_counts_per_value(engine: Engine) -> None:
    from waypost.store.schema import (
        activities,
        activity_rollups,
        activity_type_fields,
        activity_value_counts,
        channels,
        contacts,
    )

    migrate.upgrade(engine, "0018")
    now = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC)
    people = [uuid.uuid4() for _ in range(3)]
    channel = uuid.uuid4()
    with engine.begin() as conn:
        type_id = conn.execute(sa.select(activity_types.c.id).limit(1)).scalar_one()
        conn.execute(
            activity_type_fields.insert(),
            [
                {"id": uuid.uuid4(), "type_id": type_id, "position": i, "name": name,
                 "data_type": kind, "required": False, "is_primary": False, "description": ""}
                for i, (name, kind) in enumerate(
                    [("amount", "decimal"), ("term", "integer"), ("note", "text")]
                )
            ],
        )  # fmt: skip
        conn.execute(
            channels.insert().values(
                id=channel, name="Web", kind="headless", allowed_origins=[], default_language="en",
                tracking_consent=None, enforce_consent=False, identity_secret="s",
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
        conn.execute(
            contacts.insert(),
            [{"id": p, "attributes": {}, "created_at": now, "updated_at": now} for p in people],
        )
        made = [
            (people[0], now, {"amount": "10.50", "term": 12, "note": "x"}),
            (people[0], now + dt.timedelta(hours=1), {"amount": "10.50", "term": 24}),
            (people[1], now, {"term": 12}),
            (people[2], now + dt.timedelta(hours=1), {"note": "only text"}),
        ]
        conn.execute(
            activities.insert(),
            [
                {"id": uuid.uuid4(), "type_id": type_id, "contact_id": who, "channel_id": channel,
                 "title": "t", "fields": fields, "occurred_at": at, "received_at": at}
                for who, at, fields in made
            ],
        )  # fmt: skip
        rollups = [(people[0], now.date(), 1), (people[0], dt.date(2026, 3, 3), 1)]
        rollups += [(people[1], now.date(), 1), (people[2], dt.date(2026, 3, 3), 1)]
        conn.execute(
            activity_rollups.insert(),
            [{"contact_id": p, "type_id": type_id, "day": d, "count": n} for p, d, n in rollups],
        )
        daily = sa.table(
            "activity_daily_counts", sa.column("type_id", sa.Uuid()), sa.column("day", sa.Date()),
            sa.column("count"),
        )  # fmt: skip
        conn.execute(
            daily.insert(),
            [
                {"type_id": type_id, "day": now.date(), "count": 2},
                {"type_id": type_id, "day": dt.date(2026, 3, 3), "count": 2},
            ],
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        d = sa.table("activity_daily_counts", sa.column("day", sa.Date()), sa.column("contacts"))
        assert dict(conn.execute(sa.select(d.c.day, d.c.contacts)).all()) == {
            now.date(): 2,
            dt.date(2026, 3, 3): 2,
        }
        v = activity_value_counts.c
        found = conn.execute(sa.select(v.field, v.day, v.value, v["count"])).all()
    assert sorted(tuple(row) for row in found) == [
        ("amount", now.date(), "10.50", 1),
        ("amount", dt.date(2026, 3, 3), "10.50", 1),
        ("term", now.date(), "12", 2),
        ("term", dt.date(2026, 3, 3), "24", 1),
    ]
