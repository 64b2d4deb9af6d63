"""load_settings: typed settings from WAYPOST_* variables, callable with a dict."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from waypost.cli import main
from waypost.settings import Settings, SettingsError, load_settings


def test_defaults_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///./waypost.db"
    assert settings.redis_url is None
    assert settings.sqlite_synchronous == "FULL"
    assert settings.max_request_bytes == 2_000_000
    assert settings.max_activities_per_request == 1000
    assert settings.max_activity_bytes == 16_384
    assert settings.max_fields_per_type == 50
    assert settings.log_format == "text"
    assert settings.metrics_token is None
    assert settings.is_sqlite


def test_reads_only_from_the_given_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYPOST_PORT", "9999")
    assert load_settings({}).port == 8000
    assert load_settings().port == 9999


def test_values_are_converted_to_their_declared_types() -> None:
    settings = load_settings(
        {
            "WAYPOST_PORT": "8080",
            "WAYPOST_COMMIT_MAX_DELAY_MS": "2.5",
            "WAYPOST_MAX_FIELDS_PER_TYPE": "7",
            "WAYPOST_DATABASE_URL": "postgresql+psycopg://db/waypost",
            "WAYPOST_REDIS_URL": "redis://cache:6379/0",
            "WAYPOST_SQLITE_SYNCHRONOUS": "NORMAL",
            "WAYPOST_LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 8080
    assert isinstance(settings.port, int)
    assert settings.commit_max_delay_ms == 2.5
    assert settings.max_fields_per_type == 7
    assert settings.database_url == "postgresql+psycopg://db/waypost"
    assert not settings.is_sqlite
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.log_level == "debug"


def test_choices_are_matched_whatever_their_case() -> None:
    settings = load_settings(
        {
            "WAYPOST_SQLITE_SYNCHRONOUS": "normal",
            "WAYPOST_LOG_LEVEL": "INFO",
            "WAYPOST_LOG_FORMAT": "JSON",
        }
    )
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.log_level == "info"
    assert settings.log_format == "json"


def test_empty_values_count_as_unset() -> None:
    settings = load_settings({"WAYPOST_PORT": "", "WAYPOST_REDIS_URL": ""})
    assert settings.port == 8000
    assert settings.redis_url is None


def test_unknown_and_foreign_variables_are_ignored() -> None:
    settings = load_settings(
        {"WAYPOST_REQUIRE_SERVICES": "1", "PORT": "1", "waypost_port": "2", "HOME": "/root"}
    )
    assert settings == Settings()


def test_keyword_overrides_win_over_the_environment() -> None:
    settings = load_settings({"WAYPOST_PORT": "8080"}, port=9090, host="::1")
    assert settings.port == 9090
    assert settings.host == "::1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WAYPOST_PORT", "eighty"),
        ("WAYPOST_PORT", "0"),
        ("WAYPOST_PORT", "70000"),
        ("WAYPOST_MAX_REQUEST_BYTES", "-1"),
        ("WAYPOST_MAX_FIELDS_PER_TYPE", "0"),
        ("WAYPOST_MAX_DRAFT_TYPES", "0"),
        ("WAYPOST_COMMIT_MAX_DELAY_MS", "-0.5"),
        ("WAYPOST_COMMIT_MAX_DELAY_MS", "soon"),
        ("WAYPOST_SQLITE_SYNCHRONOUS", "OFF"),
        ("WAYPOST_LOG_LEVEL", "verbose"),
        ("WAYPOST_LOG_FORMAT", "logfmt"),
        ("WAYPOST_HEADER_TIMEOUT_SECONDS", "0"),
        ("WAYPOST_BODY_TIMEOUT_SECONDS", "-1"),
        ("WAYPOST_MAX_CONNECTIONS", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_a_bad_override_names_its_variable_too() -> None:
    with pytest.raises(SettingsError, match="WAYPOST_PORT"):
        load_settings({}, port="not a port")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"WAYPOST_HOST": "0.0.0.0", "WAYPOST_PORT": "9000"}, "http://127.0.0.1:9000"),  # noqa: S104
        ({"WAYPOST_HOST": "example.internal"}, "http://example.internal:8000"),
        ({"WAYPOST_PUBLIC_URL": "https://track.example.com/"}, "https://track.example.com"),
    ],
)
def test_base_url(env: dict[str, str], expected: str) -> None:
    assert load_settings(env).base_url == expected


def test_a_sqlite_file_in_a_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(
        SettingsError, match=r"WAYPOST_DATABASE_URL: the directory .* does not exist"
    ):
        load_settings({"WAYPOST_DATABASE_URL": f"sqlite:///{missing}/waypost.db"})
    # The file need not exist; its directory must. Memory and URI forms are not files here.
    for url in (f"sqlite:///{tmp_path}/waypost.db", "sqlite://", "sqlite:///:memory:"):
        assert load_settings({"WAYPOST_DATABASE_URL": url}).database_url == url


def test_the_command_says_which_directory_is_missing_without_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nowhere/waypost.db"
    result = CliRunner(env={"WAYPOST_DATABASE_URL": url}).invoke(main, ["migrate"])
    assert result.exit_code == 1, result.output
    assert f"the directory {tmp_path}/nowhere does not exist; create it first" in result.output
    assert "Traceback" not in result.output
    assert "Usage:" not in result.output
    assert not (tmp_path / "nowhere").exists()
