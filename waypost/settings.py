"""Typed settings, read from ``WAYPOST_*`` environment variables.

Every setting is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Literal

import msgspec

from waypost.clientip import parse_trusted_proxies
from waypost.domain.webhook_schedule import BadSchedule, parse_schedule

PREFIX = "WAYPOST_"
# The drivers that are optional extras of the package (docs/deployment.md): the module, the
# extra that installs it, and what needs it.
POSTGRES_DRIVER = ("psycopg", "postgres", "DATABASE_URL names a PostgreSQL database")
REDIS_DRIVER = ("redis", "redis", "REDIS_URL is set")


class SettingsError(ValueError):
    """A ``WAYPOST_*`` variable holds a value of the wrong type or out of range."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything Waypost can be configured with. Field ``x`` is variable ``WAYPOST_X``."""

    database_url: str = "sqlite:///./waypost.db"
    redis_url: str | None = None
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    max_request_bytes: int = 2_000_000
    max_activities_per_request: int = 1000
    max_activity_bytes: int = 16_384
    max_fields_per_type: int = 50
    max_draft_types: int = 100
    commit_max_batch: int = 5000
    commit_max_delay_ms: float = 0.0
    catalog_ttl_seconds: float = 2.0
    group_refresh_seconds: float = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    metrics_token: str | None = None
    session_hours: float = 12.0
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    max_connections: int = 1000
    trusted_proxies: str = ""
    new_contacts_per_ip_per_hour: int = 100
    rejected_per_ip_per_hour: int = 1000
    webhook_allow_private: bool = False
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h,10h"
    webhook_timeout_seconds: float = 15.0
    webhook_concurrency_per_endpoint: int = 4
    webhook_disable_after_days: float = 5.0
    webhook_poll_seconds: float = 1.0
    webhook_process: bool = False
    writer_process: bool = False
    rejected_retention_days: int = 30
    rollup_retention_days: int = 1095
    purge_interval_seconds: float = 3600.0
    purge_batch_size: int = 2000
    shutdown_grace_seconds: float = 25.0

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        """The address people and clients reach this server at."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


# Choices are matched whatever their case: WAYPOST_LOG_LEVEL=INFO means "info".
_CASE = {
    "sqlite_synchronous": str.upper,
    "log_level": str.lower,
    "log_format": str.lower,
    "cookie_secure": str.lower,
}

_POSITIVE = (
    "port",
    "max_request_bytes",
    "max_activities_per_request",
    "max_activity_bytes",
    "max_fields_per_type",
    "max_draft_types",
    "commit_max_batch",
    "session_hours",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "max_connections",
    "webhook_timeout_seconds",
    "webhook_concurrency_per_endpoint",
    "webhook_disable_after_days",
    "webhook_poll_seconds",
    "rejected_retention_days",
    "rollup_retention_days",
    "purge_interval_seconds",
    "purge_batch_size",
    "shutdown_grace_seconds",
)


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``), then apply ``overrides``.

    Only ``WAYPOST_*`` names are read; empty values count as unset. Values are converted to the
    declared types, so ``WAYPOST_PORT=8080`` gives the integer 8080.
    """
    source = os.environ if env is None else env
    names = set(Settings.__struct_fields__)
    raw: dict[str, object] = {}
    for key, value in source.items():
        if not key.startswith(PREFIX) or value == "":
            continue
        name = key[len(PREFIX) :].lower()
        if name in names:
            raw[name] = _CASE.get(name, str)(value)
    raw.update(overrides)
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc))) from None
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{PREFIX}{name.upper()} must be a positive number")
    if settings.port > 65535:
        raise SettingsError(f"{PREFIX}PORT must be a port number, 1 to 65535")
    if settings.commit_max_delay_ms < 0:
        raise SettingsError(f"{PREFIX}COMMIT_MAX_DELAY_MS must not be negative")
    if settings.new_contacts_per_ip_per_hour < 0:
        raise SettingsError(f"{PREFIX}NEW_CONTACTS_PER_IP_PER_HOUR must not be negative")
    if settings.rejected_per_ip_per_hour < 0:
        raise SettingsError(f"{PREFIX}REJECTED_PER_IP_PER_HOUR must not be negative")
    try:
        parse_trusted_proxies(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}TRUSTED_PROXIES: {exc}") from None
    try:
        parse_schedule(settings.webhook_retry_schedule)
    except BadSchedule as exc:
        raise SettingsError(f"{PREFIX}WEBHOOK_RETRY_SCHEDULE: {exc}") from None
    if settings.database_url.startswith("postgres"):
        _require(POSTGRES_DRIVER)
    elif settings.database_url.startswith("sqlite"):
        _require_directory(settings.database_url)
    if settings.redis_url:
        _require(REDIS_DRIVER)
    return settings


def _require(driver: tuple[str, str, str]) -> None:
    """Import an optional driver, or say which extra installs it, and where."""
    module, extra, why = driver
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise SettingsError(
            f"{PREFIX}{why}, which needs the {module} driver, and it cannot be imported "
            f"({exc}). Install it into the environment Waypost runs in, from its checkout: "
            f"pip install '.[{extra}]' (after make run: .venv/bin/pip install -e '.[{extra}]')"
        ) from None


def _require_directory(url: str) -> None:
    """A SQLite file's directory must exist: SQLite creates the file, not the directories."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SettingsError(f"{PREFIX}DATABASE_URL: {exc}") from None
    database = parsed.database
    if (
        not database
        or database == ":memory:"
        or parsed.query.get("uri")
        or parsed.query.get("mode")
    ):
        return
    directory = os.path.dirname(os.path.abspath(database))
    if not os.path.isdir(directory):
        raise SettingsError(
            f"{PREFIX}DATABASE_URL: the directory {directory} does not exist; create it first "
            "(SQLite creates the database file, not the directories above it)"
        )


def _explain(message: str) -> str:
    # msgspec says "... - at `$.port`"; name the environment variable instead.
    text, _, where = message.partition(" - at `$.")
    if where:
        return f"{PREFIX}{where.rstrip('`').upper()}: {text}"
    return message
