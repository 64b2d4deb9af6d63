"""List pages: their filters read from the query string, and the links of cursor paging.

Filters come from GET forms, so a bad value is the user's typo, not a bug: each parser here
raises a 400 :class:`ApiError` that names the filter and says what it takes, and the page
shows it next to the form. Times are UTC throughout the UI: they are typed as ISO 8601 text
(``2026-05-01`` or ``2026-05-01T14:30``, the browser's date pickers would show the visitor's
locale's format) and one without an offset is read as UTC.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from waypost.domain.field_values import in_utc
from waypost.error_words import quoted
from waypost.errors import ApiError

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_TEXT = 500
FIELD_PREFIX = "field."
_DIGITS = re.compile(r"[0-9]{1,12}")
# ISO 8601's extended format only: a date, then optionally a time to the minute or finer and
# an offset. fromisoformat alone would also take 20260501 or 2026-W18, which no one means here.
_ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", message, name)


def text(params: Mapping[str, str], name: str, label: str) -> str | None:
    """A text filter, trimmed; blank is None."""
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT or "\x00" in value:
        raise _bad(name, f"{label}: at most {MAX_TEXT} characters, without NUL.")
    return value


def when(params: Mapping[str, str], name: str, label: str) -> dt.datetime | None:
    """A time: ``2026-05-01``, ``2026-05-01T14:30`` (UTC) or ISO 8601 with an offset."""
    value = text(params, name, label)
    if value is None:
        return None
    try:
        if not _ISO_TIME.fullmatch(value):
            raise ValueError(value)
        parsed = dt.datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise _bad(
            name,
            f"{label}: {quoted(value)} is not a date in ISO 8601; write it as 2026-05-01 or "
            "2026-05-01T14:30 (UTC).",
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        in_utc(parsed)  # 9999-12-31T23:59-23:59 has none
    except ValueError:
        message = f"{label}: {quoted(value)} falls outside the years 1 to 9999 in UTC."
        raise _bad(name, message) from None
    return parsed


def utc_text(value: str, name: str, label: str) -> str:
    """A time typed in a form, checked as :func:`when` does, as ISO 8601 text in UTC with its
    ``Z`` (what a datetime field filter takes)."""
    parsed = when({name: value}, name, label)
    assert parsed is not None
    return parsed.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def identifier(params: Mapping[str, str], name: str, label: str) -> uuid.UUID | None:
    """An identifier (a UUID), as shown on the pages."""
    value = text(params, name, label)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _bad(name, f"{label}: {quoted(value)} is not an identifier (a UUID).") from None


def number(params: Mapping[str, str], name: str, label: str, default: int, top: int) -> int:
    """A whole number from 1 to ``top``."""
    value = text(params, name, label)
    if value is None:
        return default
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= top:
        raise _bad(name, f"{label}: a whole number from 1 to {top:,} (got {quoted(value)}).")
    return int(value)


def limit(params: Mapping[str, str]) -> int:
    return number(params, "limit", "Rows per page", PAGE_SIZE, MAX_PAGE_SIZE)


def field_filters(params: Mapping[str, str]) -> dict[str, str]:
    """``field.<name>[.<op>]`` parameters, without the prefix, blank ones left out."""
    return {
        key[len(FIELD_PREFIX) :]: value.strip()
        for key, value in params.items()
        if key.startswith(FIELD_PREFIX) and value.strip()
    }


def form_time(value: dt.datetime | None) -> str:
    """A time as a time filter shows it: in UTC, as short as it is exact (a day, a minute)."""
    if value is None:
        return ""
    utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    if utc.time() == dt.time():
        return utc.date().isoformat()
    return utc.isoformat(timespec="minutes" if utc.second == utc.microsecond == 0 else "auto")


def time_value(params: Mapping[str, str], name: str) -> str:
    """A time filter as its input shows it again: in UTC when it parses, else as typed."""
    try:
        return form_time(when(params, name, name))
    except ApiError:
        return params.get(name, "")


@dataclass(frozen=True)
class Paging:
    """Where a page of a cursor-paged list is: its number, and the links to the first and
    the next page (a cursor only goes forward; the browser's back button goes back)."""

    number: int
    first: str | None
    next: str | None


def paging(
    path: str, params: Mapping[str, str], next_cursor: str | None, anchor: str = ""
) -> Paging:
    """The paging links of a page of ``path`` shown for ``params`` (its filters kept)."""
    number_now = number(params, "page", "Page", 1, 10**9)
    kept = {k: v for k, v in params.items() if k not in ("cursor", "page") and v != ""}
    suffix = f"#{anchor}" if anchor else ""

    def link(extra: dict[str, str]) -> str:
        query = urlencode({**kept, **extra})
        return f"{path}?{query}{suffix}" if query else f"{path}{suffix}"

    first = link({}) if number_now > 1 else None
    following = link({"cursor": next_cursor, "page": str(number_now + 1)}) if next_cursor else None
    return Paging(number_now, first, following)


def query_string(values: Mapping[str, object]) -> str:
    """A query string of the values that are set (None and blank left out)."""
    return urlencode({k: str(v) for k, v in values.items() if v is not None and v != ""})


def export_links(path: str, filters: Mapping[str, object]) -> list[tuple[str, str]]:
    """The export at ``path`` (an admin API route) with ``filters``, in each format: (label,
    URL) pairs for the page's download links."""
    return [
        (label, f"{path}?{query_string({'format': fmt, **filters})}")
        for fmt, label in (("csv", "CSV"), ("ndjson", "NDJSON"), ("parquet", "Parquet"))
    ]
