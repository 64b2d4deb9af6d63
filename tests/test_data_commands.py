"""``waypost purge`` and ``waypost export`` through click's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from waypost.cli import main
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.store.schema import activities

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import ago
else:
    from conftest import Tracker
    from group_support import ago

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": database_url})

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    return run


def stored(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(activities)).scalar_one())


def test_purge_dry_run_prints_what_expired_and_deletes_nothing(
    invoke: Invoke, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Quote", retention_days=7)
    tracker.log([{"type": kind.code_name, "occurredAt": ago(d)} for d in (1, 8, 9)])
    result = invoke("purge", "--dry-run")
    assert "Expired now:" in result.stdout
    line = next(ln for ln in result.stdout.splitlines() if kind.code_name in ln)
    assert line.split()[-3:] == ["7", "days", "2"]
    assert "Dry run: nothing was deleted." in result.stdout
    assert stored(hub) == 3
    assert hub.retention.last_run() is None


def test_purge_deletes_and_prints_what_it_deleted(
    invoke: Invoke, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Quote", retention_days=365)
    tracker.log([{"type": kind.code_name, "occurredAt": ago(d)} for d in (1, 400, 500)])
    result = invoke("purge")
    deleted = result.stdout.split("Deleted (finished")[1]
    line = next(ln for ln in deleted.splitlines() if kind.code_name in ln)
    assert line.split()[-3:] == ["1", "year", "2"]
    assert stored(hub) == 1
    run = hub.retention.last_run()
    assert run is not None
    assert (run.trigger, run.activities) == ("command", {kind.code_name: 2})


def test_purge_while_another_purge_runs_is_a_clean_error(invoke: Invoke, hub: Hub) -> None:
    other = hub.retention
    other.lease.owner = "elsewhere:1"
    assert other.lease.acquire()
    result = invoke("purge", code=1)
    assert "A purge is running already (elsewhere:1)" in result.output
