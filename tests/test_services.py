"""The real services this suite needs: PostgreSQL and Redis, reachable (or the run fails in CI)."""

from __future__ import annotations

import psycopg
import redis


def test_postgresql_is_reachable(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_redis_is_reachable(redis_url: str) -> None:
    assert redis.Redis.from_url(redis_url).ping()
