"""``python -m bench.scale``: contact groups and the activity log on 1M contacts and 10M
activities (docs/performance.md).

It builds a migrated SQLite database with the same schema Waypost uses, loads the contacts,
the activities and their daily rollups (the bulk load drops the activity indexes and builds
them again afterwards, as any bulk load would), then times, through Waypost's own code:

- the full computation of the group "at least 3 loan calculator usages in the last 30 days and
  no data input in the last 7 days" (GroupService.create: the set query and the membership
  written), and the set query alone, cold and warm;
- the incremental update after one loan calculation: one contact at a time
  (GroupService.update_contacts right after the activity and its rollup are stored), and per
  activity when the contacts of a 100-activity commit are updated together;
- one contact's activity log, ``GET /api/contacts/{id}/activities`` through the ASGI app
  (everything but the socket), for random contacts: p50 and p99.

The database is kept under bench-results/ and reused while its parameters are the same, since
loading 10M activities takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

from waypost.app import create_app
from waypost.domain.conditions import Changes, parse_condition
from waypost.hub import Hub
from waypost.ids import new_id
from waypost.services.group_sql import load_context, members_select
from waypost.services.groups import GroupCreate, GroupService
from waypost.services.keys import KeyCreate
from waypost.settings import Settings, load_settings
from waypost.store import Store, make_engine, migrate

CONDITION = {
    "all": [
        {"activity": {"type": "custom_loan_calculator", "at_least": 3, "within_days": 30}},
        {"not": {"activity": {"type": "datainput", "within_days": 7}}},
    ]
}
TYPES = [
    # code name, share of activities
    ("pagevisit", 0.45),
    ("click", 0.20),
    ("custom_loan_calculator", 0.25),
    ("datainput", 0.10),
]
DAYS = 60
ACTIVITY_INDEXES = (
    "ix_activities_contact_time",
    "ix_activities_time",
    "ix_activities_type_time",
    "ix_activities_type_primary",
    "uq_activities_channel_client_id",
)


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(
        f"\r{label}: [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} ({rate:,.0f}/s)"
    )
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def build(path: Path, contacts: int, activities: int, seed: int) -> None:
    """A fresh database with ``contacts`` contacts and about ``activities`` activities."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})
    engine = make_engine(settings)
    migrate.upgrade(engine)
    engine.dispose()

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    type_ids = dict(con.execute("SELECT code_name, id FROM activity_types").fetchall())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    channel = new_id().hex
    con.execute(
        "INSERT INTO channels (id, name, kind, allowed_origins, default_language, "
        "enforce_consent, identity_secret, created_at, updated_at) "
        "VALUES (?, 'Bench', 'headless', '[]', 'en', 0, 'x', ?, ?)",
        (channel, str(now), str(now)),
    )
    custom = new_id().hex
    con.execute(
        "INSERT INTO activity_types (id, code_name, name, description, enabled, client_side, "
        "builtin, aliases, unknown_fields, number, created_at, updated_at) VALUES "
        "(?, 'custom_loan_calculator', 'Loan calculator usage', '', 1, 1, 0, '[]', 'reject', "
        "100001, ?, ?)",
        (custom, str(now), str(now)),
    )
    type_ids["custom_loan_calculator"] = custom
    for name in ACTIVITY_INDEXES:
        con.execute(f"DROP INDEX IF EXISTS {name}")

    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    codes = [code for code, _ in TYPES]
    weights = [share for _, share in TYPES]
    per_contact = activities / contacts
    stamp = now.isoformat(" ", "microseconds")
    started = time.perf_counter()
    chunk = 100_000
    contact_ids = [new_id().hex for _ in range(contacts)]
    for first in range(0, contacts, chunk):
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO contacts (id, attributes, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [(c, "{}", stamp, stamp) for c in contact_ids[first : first + chunk]],
        )
        con.execute("COMMIT")
    # Arrival order, as the writer stores them: each contact's activities are spread over the
    # whole period, and rows (and their time-ordered ids) follow the clock.
    slots = [
        index
        for index in range(contacts)
        for _ in range(max(0, round(rng.gauss(per_contact, per_contact / 3))))
    ]
    rng.shuffle(slots)
    span = DAYS * 86_400 * 1_000_000
    offsets = sorted(rng.randrange(span) for _ in range(len(slots)))
    origin = now - dt.timedelta(microseconds=span)
    epoch_ms = int(origin.replace(tzinfo=dt.UTC).timestamp() * 1000)
    made = 0
    for first in range(0, len(slots), chunk):
        activity_rows = []
        picks = rng.choices(codes, weights, k=min(chunk, len(slots) - first))
        for n, code in enumerate(picks):
            offset = offsets[first + n]
            text = (origin + dt.timedelta(microseconds=offset)).isoformat(" ", "microseconds")
            activity_rows.append(
                (
                    _uuid7(epoch_ms + offset // 1000, rng), type_ids[code],
                    contact_ids[slots[first + n]], channel, f"{code} '1'", "1",
                    "https://bank.example/" if code == "pagevisit" else None, text, text,
                )
            )  # fmt: skip
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO activities (id, type_id, contact_id, channel_id, title, value, url, "
            "occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            activity_rows,
        )
        con.execute("COMMIT")
        made += len(activity_rows)
        progress("activities", made, len(slots), started)
    sys.stderr.write(f"{made:,} activities; their rollups...\n")
    con.execute("BEGIN")
    con.execute(
        "INSERT INTO activity_rollups (contact_id, type_id, day, count) "
        "SELECT contact_id, type_id, substr(occurred_at, 1, 10), count(*) FROM activities "
        "GROUP BY contact_id, type_id, substr(occurred_at, 1, 10)"
    )
    con.execute(
        "INSERT INTO activity_daily_counts (type_id, day, count, contacts) "
        "SELECT type_id, day, sum(count), count(*) FROM activity_rollups GROUP BY type_id, day"
    )
    con.execute("COMMIT")
    sys.stderr.write(f"{made:,} activities; building the activity indexes...\n")
    engine = make_engine(settings)
    with engine.begin() as conn:
        from waypost.store.schema import activities as table

        for index in table.indexes:
            index.create(conn, checkfirst=True)
    engine.dispose()
    con.execute("ANALYZE")
    con.close()


def _uuid7(millis: int, rng: random.Random) -> str:
    """A UUIDv7 of the given millisecond, as the writer's ids are."""
    bits = rng.getrandbits(74)
    value = (millis << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62)
    value |= bits & (2**62 - 1)
    return uuid.UUID(int=value).hex


def measure(path: Path, samples: int, batch: int) -> dict[str, float]:
    settings = load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{path}"})
    engine = make_engine(settings)
    migrate.upgrade(engine)  # a database kept from an older schema
    store = Store(engine)
    groups = GroupService(store)
    condition = parse_condition(CONDITION)
    today = dt.datetime.now(dt.UTC).date()

    with store.read() as conn:
        ctx = load_context(conn, today, None)
        counted = sa.select(sa.func.count()).select_from(members_select(condition, ctx).subquery())
        query_seconds = []
        for _ in range(2):  # cold (pages not yet in SQLite's cache), then warm
            started = time.perf_counter()
            members = conn.execute(counted).scalar_one()
            query_seconds.append(time.perf_counter() - started)
        loan = ctx.types["custom_loan_calculator"].id
        channel = conn.execute(sa.text("SELECT id FROM channels LIMIT 1")).scalar_one()
        contact_ids = [
            uuid.UUID(hex=raw)
            for raw in conn.execute(
                sa.text("SELECT id FROM contacts ORDER BY random() LIMIT :n"),
                {"n": samples + batch * 20},
            ).scalars()
        ]
    assert loan is not None
    with store.write() as conn:
        conn.exec_driver_sql("DELETE FROM contact_groups")
    started = time.perf_counter()
    group = groups.create(GroupCreate(name="Loan shoppers", condition=CONDITION))
    create_seconds = time.perf_counter() - started

    # One loan calculation per contact, stored as the writer stores it (the activity and its
    # rollup), then the group update for that contact alone, timed.
    changes = Changes(types=frozenset({loan}))
    single = []
    entered = 0
    for contact in contact_ids[:samples]:
        _log_activity(store, [contact], loan, channel)
        started = time.perf_counter()
        entered += groups.update_contacts([contact], changes)
        single.append(time.perf_counter() - started)
    # The same, for the contacts of a group commit at once (as the background updater takes
    # them), per activity.
    batched = []
    rest = contact_ids[samples:]
    for first in range(0, len(rest), batch):
        chunk = rest[first : first + batch]
        _log_activity(store, chunk, loan, channel)
        started = time.perf_counter()
        entered += groups.update_contacts(chunk, changes)
        batched.append((time.perf_counter() - started) / len(chunk))
    log = asyncio.run(_activity_log(settings, store, contact_ids[:samples]))
    store.dispose()
    return {
        "members": float(members),
        "group_member_count": float(group.member_count),
        "full_query_cold_seconds": query_seconds[0],
        "full_query_seconds": query_seconds[1],
        "full_computation_seconds": create_seconds,
        "incremental_ms_mean": statistics.fmean(single) * 1000,
        "incremental_ms_p99": sorted(single)[int(len(single) * 0.99) - 1] * 1000,
        "incremental_batched_ms_mean": statistics.fmean(batched) * 1000,
        "incremental_changes": float(entered),
        "activity_log_ms_p50": statistics.median(log) * 1000,
        "activity_log_ms_p99": sorted(log)[int(len(log) * 0.99) - 1] * 1000,
    }


async def _activity_log(settings: Settings, store: Store, contacts: list[uuid.UUID]) -> list[float]:
    """Seconds per ``GET /api/contacts/{id}/activities``, through the whole ASGI app."""
    hub = Hub(settings, store)
    key = hub.keys.create(KeyCreate(access="admin", name="bench.scale")).key
    app = create_app(settings, hub=hub)
    headers = {"Authorization": f"Bearer {key}"}
    timings = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for warm in contacts[:20]:
            (
                await client.get(f"/api/contacts/{warm}/activities", headers=headers)
            ).raise_for_status()
        for contact in contacts:
            started = time.perf_counter()
            answer = await client.get(f"/api/contacts/{contact}/activities", headers=headers)
            timings.append(time.perf_counter() - started)
            answer.raise_for_status()
            if not answer.json()["data"]:
                raise SystemExit(f"contact {contact} has no activities: the log was not read")
    return timings


def _log_activity(
    store: Store, contacts: list[uuid.UUID], type_id: uuid.UUID, channel: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    stamp = now.replace(tzinfo=None).isoformat(" ", "microseconds")
    with store.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO activities (id, type_id, contact_id, channel_id, title, value, "
            "occurred_at, received_at) VALUES (?, ?, ?, ?, 'Loan calculator usage', '1', ?, ?)",
            [(new_id().hex, type_id.hex, c.hex, channel, stamp, stamp) for c in contacts],
        )
        created = 0
        for c in contacts:  # RETURNING needs one statement per row here: count 1 is a new row
            created += (
                conn.exec_driver_sql(
                    "INSERT INTO activity_rollups (contact_id, type_id, day, count) "
                    "VALUES (?, ?, ?, 1) ON CONFLICT (contact_id, type_id, day) "
                    "DO UPDATE SET count = count + 1 RETURNING count",
                    (c.hex, type_id.hex, str(now.date())),
                ).scalar_one()
                == 1
            )
        conn.exec_driver_sql(
            "INSERT INTO activity_daily_counts (type_id, day, count, contacts) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (type_id, day) "
            "DO UPDATE SET count = count + excluded.count, contacts = contacts + excluded.contacts",
            (type_id.hex, str(now.date()), len(contacts), created),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100, help="Contacts per batched update.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--rebuild", action="store_true", help="Build the database again.")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"scale-{args.contacts}-{args.activities}.db"
    if args.rebuild or not path.exists():
        build(path, args.contacts, args.activities, seed=7)
    results = measure(path, args.samples, args.batch)
    results.update(contacts=args.contacts, activities=args.activities)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2))
    print(f"SQLite, {args.contacts:,} contacts, {args.activities:,} activities")
    print(f"  group members: {int(results['members']):,}")
    full, target = results["full_computation_seconds"], 2.5
    print(f"  group query alone:     {results['full_query_cold_seconds']:.2f} s cold, "
          f"{results['full_query_seconds']:.2f} s warm")  # fmt: skip
    print(f"  full computation:      {full:.2f} s (target <= {target} s: "
          f"{'met' if full <= target else 'MISSED'})")  # fmt: skip
    inc = results["incremental_ms_mean"]
    print(f"  incremental update:    {inc:.3f} ms mean, {results['incremental_ms_p99']:.3f} ms p99 "
          f"(target <= 1 ms: {'met' if inc <= 1 else 'MISSED'})")  # fmt: skip
    print(f"  incremental, batches of {args.batch}: "
          f"{results['incremental_batched_ms_mean']:.3f} ms per activity")  # fmt: skip
    p99 = results["activity_log_ms_p99"]
    print(f"  one contact's activity log: {results['activity_log_ms_p50']:.2f} ms p50, "
          f"{p99:.2f} ms p99 (target <= 5 ms: {'met' if p99 <= 5 else 'MISSED'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
