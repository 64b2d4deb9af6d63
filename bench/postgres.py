"""PostgreSQL for the benchmarks: a database of their own on the local server, emptied first."""

from __future__ import annotations

import psycopg
from psycopg import sql


def conninfo(url: str) -> str:
    """A libpq URL from Waypost's SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def reset_database(url: str) -> None:
    """Drop and create the database ``url`` names (on the same server), so that Waypost starts
    on an empty one."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo(url))
    name = str(info.pop("dbname", ""))
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to reset the database {name!r}: name a database of its own")
    admin = psycopg.conninfo.make_conninfo("", **{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def count_activities(url: str) -> int:
    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute("SELECT COUNT(*) FROM activities").fetchone()
    return int(row[0]) if row else 0
