"""Templates and static files of the admin UI.

Templates are Jinja2, autoescaped, with undefined names an error (a typo fails a test instead of
rendering nothing). Static files are served by Waypost itself under ``/admin/static`` with a
content hash in their URL, so they can be cached and still change on upgrade.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from waypost.admin.listing import export_links
from waypost.domain.retention import retention_text

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent.parent / "static" / "admin"
STATIC_PATH = "/admin/static"

# Pages hold data that is not public (and, once, a new key): no cache keeps them, no other
# site frames them, and only Waypost's own scripts and styles run in them.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def format_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_timestamp(value: dt.datetime | None) -> str:
    """To the second, for logs whose order matters within a minute."""
    if value is None:
        return "never"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(value: dt.datetime) -> str:
    """For ``<time datetime>``: machine-readable, UTC."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def format_number(value: int | None) -> str:
    return "0" if value is None else f"{value:,}"


def format_field_value(value: object) -> str:
    """An activity field's value as the API writes it and filters take it: ``true``, not
    Python's ``True``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def error_for(error: object, name: str) -> str:
    """The message of a service error when it names the field ``name`` (or a part of it)."""
    field = getattr(error, "field", None)
    if not field:
        return ""
    if field == name or field.startswith((name + "[", name + ".")):
        return str(getattr(error, "message", ""))
    return ""


class Renderer:
    """The Jinja2 environment of the UI, and addresses of its static files."""

    def __init__(self, templates: Path = TEMPLATES, static: Path = STATIC) -> None:
        self.static_dir = static
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["datetime"] = format_datetime
        self.env.filters["number"] = format_number
        self.env.filters["field_value"] = format_field_value
        self.env.filters["timestamp"] = format_timestamp
        self.env.filters["iso"] = iso_utc
        self.env.filters["retention"] = retention_text
        self.env.globals["static"] = self.static_url
        self.env.globals["error_for"] = error_for
        self.env.globals["export_links"] = export_links
        self._versions: dict[str, str] = {}

    def static_url(self, name: str) -> str:
        """``/admin/static/<name>?v=<hash of its content>``."""
        version = self._versions.get(name)
        if version is None:
            body = (self.static_dir / name).read_bytes()
            version = self._versions[name] = hashlib.sha256(body).hexdigest()[:12]
        return f"{STATIC_PATH}/{name}?v={version}"

    def render(self, template: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(template).render(context)

    def response(
        self,
        template: str,
        context: Mapping[str, Any],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """A rendered page with the UI's security headers."""
        return HTMLResponse(
            self.render(template, context),
            status_code=status,
            headers={**SECURITY_HEADERS, **(headers or {})},
        )


@functools.cache
def shared_renderer() -> Renderer:
    """The UI's renderer, one per process: every app built in the process renders the same
    templates, so each is compiled once (compiling them was most of an admin page's first
    rendering)."""
    return Renderer()
