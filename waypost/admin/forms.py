"""Submitted HTML forms: parsing ``application/x-www-form-urlencoded`` bodies, reading values.

The UI's forms are plain URL-encoded forms; rows that repeat (an activity type's fields, a
consent's languages) are named ``<prefix>-<n>-<name>`` and read back with :meth:`Form.rows`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from waypost.errors import ApiError, invalid

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 2000
_ROW = re.compile(r"^(?P<prefix>[a-z_]+)-(?P<index>\d{1,6})-(?P<name>[a-z_]+)\Z")


class Form:
    """The fields of one submitted form, in the order sent."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.pairs = list(pairs)
        self._first: dict[str, str] = {}
        for name, value in self.pairs:
            self._first.setdefault(name, value)

    def __contains__(self, name: str) -> bool:
        return name in self._first

    def get(self, name: str, default: str = "") -> str:
        """The first value sent under ``name``, trimmed."""
        return self._first.get(name, default).strip()

    def raw(self, name: str) -> str:
        """The first value untrimmed (passwords, texts whose spaces matter)."""
        return self._first.get(name, "")

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def checked(self, name: str) -> bool:
        """A checkbox: sent (and not "0", "false" or "off") means checked."""
        return name in self._first and self._first[name].lower() not in ("", "0", "false", "off")

    def optional_int(self, name: str, label: str) -> int | None:
        """An optional whole number; blank is None, anything else not a number a 400."""
        text = self.get(name)
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise invalid(f"{label} must be a whole number (got {text!r}).", name) from None

    def rows(self, prefix: str) -> list[dict[str, str]]:
        """Repeated rows ``<prefix>-<n>-<name>``, ordered by ``n``, values trimmed."""
        found: dict[int, dict[str, str]] = {}
        for key, value in self.pairs:
            match = _ROW.match(key)
            if match is None or match.group("prefix") != prefix:
                continue
            row = found.setdefault(int(match.group("index")), {})
            row.setdefault(match.group("name"), value.strip())
        return [found[i] for i in sorted(found)]


def reworded(error: ApiError, message: str) -> ApiError:
    """The same error (status, code, field) in the words of a form: the services speak of the
    API's properties ("leave 'channel' null"), a form of its controls ("leave Channel empty")."""
    return ApiError(error.status, error.code, message, error.field, error.headers)


def parse_form(body: bytes, content_type: str) -> Form:
    """Decode a form body: 415 for another media type, 400 for too many fields."""
    if not body:
        return Form()
    media = content_type.split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"The admin pages take forms sent as {FORM_TYPE} (got {media or 'nothing'!r}).",
        )
    try:
        pairs = parse_qsl(
            body.decode("utf-8", errors="replace"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        raise invalid(f"A form has at most {MAX_FORM_FIELDS} fields.") from None
    for name, value in pairs:
        # PostgreSQL stores no NUL character in text; no form of the UI has a use for one.
        if "\x00" in value or "\x00" in name:
            raise invalid("A form value holds a NUL character; remove it.", name or None)
    return Form(pairs)
