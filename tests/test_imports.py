"""The import service (waypost/services/imports.py) on SQLite and PostgreSQL: how it stops
midway, and what it counts (the command's own tests are in tests/test_import_commands.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from waypost.hub import Hub
from waypost.services import imports
from waypost.services.imports import FileRefused, ImportStopped
from waypost.store import StorageUnavailable
from waypost.store.schema import activities

if TYPE_CHECKING:
    from tests.conftest import Tracker
else:
    from conftest import Tracker


def clicks(tracker: Tracker, path: Path, n: int) -> Path:
    contact = tracker.new_contact()
    lines = [
        {"type": "click", "value": str(i), "id": f"c-{i}", "contact": contact} for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def stored(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(activities)).scalar_one())


def test_an_outage_midway_keeps_what_was_written_and_a_second_run_finishes(
    hub: Hub, tracker: Tracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK", 3)
    path = clicks(tracker, tmp_path / "a.ndjson", 8)
    submit = hub.writer.submit_and_wait
    calls = 0

    def failing(jobs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StorageUnavailable("the database went away")
        return submit(jobs)

    monkeypatch.setattr(hub.writer, "submit_and_wait", failing)
    with pytest.raises(ImportStopped) as stopped:
        hub.imports.run(path, "ndjson", tracker.channel.id)
    assert (stopped.value.line, stopped.value.summary.stored) == (4, 3)
    assert "went away" in stopped.value.reason
    assert stored(hub) == 3
    monkeypatch.setattr(hub.writer, "submit_and_wait", submit)
    summary = hub.imports.run(path, "ndjson", tracker.channel.id)
    assert (summary.lines, summary.stored, summary.duplicates, summary.without_id) == (8, 5, 3, 0)
    assert stored(hub) == 8


def test_progress_is_told_per_chunk(
    hub: Hub, tracker: Tracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK", 3)
    path = clicks(tracker, tmp_path / "a.ndjson", 7)
    told: list[int] = []
    hub.imports.run(path, "ndjson", tracker.channel.id, progress=told.append)
    assert told == [3, 3, 1]


def test_a_file_refused_names_its_lines(hub: Hub, tracker: Tracker, tmp_path: Path) -> None:
    path = clicks(tracker, tmp_path / "a.ndjson", 2)
    path.write_text(path.read_text() + "oops\n")
    with pytest.raises(FileRefused) as refused:
        hub.imports.run(path, "ndjson", tracker.channel.id)
    assert [p.line for p in refused.value.problems] == [3]
    assert stored(hub) == 0
