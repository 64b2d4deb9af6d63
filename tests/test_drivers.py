"""The PostgreSQL and Redis drivers are optional extras (docs/deployment.md): without them a
node on SQLite runs, and a URL that needs a missing driver is refused with the command that
installs it, never with a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from waypost.cli import main
from waypost.settings import SettingsError, load_settings

POSTGRES = "postgresql+psycopg://127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("module", "env", "extra"),
    [
        ("psycopg", {"WAYPOST_DATABASE_URL": POSTGRES}, "postgres"),
        ("psycopg", {"WAYPOST_DATABASE_URL": "postgres://db.example/waypost"}, "postgres"),
        ("redis", {"WAYPOST_REDIS_URL": "redis://127.0.0.1:6379/0"}, "redis"),
    ],
)
def test_a_url_whose_driver_cannot_be_imported_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, env: dict[str, str], extra: str
) -> None:
    # None in sys.modules makes every import of the module fail, as when it is not installed.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    message = str(raised.value)
    assert f"pip install '.[{extra}]'" in message
    assert f".venv/bin/pip install -e '.[{extra}]'" in message
    assert next(iter(env)) in message


def test_the_drivers_are_not_needed_for_what_does_not_use_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "redis", None)
    assert load_settings({"WAYPOST_DATABASE_URL": "sqlite:///x.db"}).redis_url is None


def test_the_command_says_what_to_install_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    runner = CliRunner(env={"WAYPOST_DATABASE_URL": POSTGRES})
    result = runner.invoke(main, ["migrate"])
    assert result.exit_code == 1, result.output
    assert "pip install '.[postgres]'" in result.output
    # A setting, not a mistyped command: no usage text.
    assert "Usage:" not in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_node_on_sqlite_serves_without_either_driver(tmp_path: Path) -> None:
    """In a fresh interpreter where importing psycopg or redis fails, as in an install without
    the extras: migrate, bootstrap, and store an activity through the API."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["psycopg"] = None
        sys.modules["redis"] = None
        from starlette.testclient import TestClient
        from waypost.app import create_app
        from waypost.bootstrap import bootstrap
        from waypost.hub import Hub
        from waypost.settings import load_settings
        from waypost.store import migrate

        settings = load_settings({{"WAYPOST_DATABASE_URL": "sqlite:///{tmp_path}/w.db"}})
        hub = Hub(settings)
        migrate.upgrade(hub.store.engine)
        first = bootstrap(hub)
        headers = {{"Authorization": "Bearer " + first.tracking_key.key}}
        with TestClient(create_app(settings, hub=hub)) as client:
            contact = client.post("/tracking/contacts", headers=headers).json()["contact"]
            body = {{"channel": str(first.headless.id), "contact": contact,
                    "activities": [{{"type": "click", "value": "a"}}]}}
            answer = client.post("/tracking/activities", json=body, headers=headers)
        hub.close()
        print(answer.json()["results"][0]["status"])
        print(sorted(m for m in ("psycopg", "redis") if sys.modules.get(m) is not None))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["202", "[]"]
