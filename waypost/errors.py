"""The one error shape every JSON answer uses, and the exception that carries it.

``{"error": {"code": "snake_case_code", "message": "...", "field": "..."}}``; the codes are
stable and listed in docs/errors.md.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any

import msgspec

from waypost.error_words import allowed_values, key_sentence, name_keys, sentence


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """What went wrong: a stable code, a message that says what to do, the field at fault."""

    code: str
    message: str
    field: str | None = None


class ErrorBody(msgspec.Struct):
    """The body of every JSON error answer."""

    error: ErrorDetail


class ApiError(Exception):
    """An answer other than success, raised anywhere below a handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    @property
    def detail(self) -> ErrorDetail:
        return ErrorDetail(self.code, self.message, self.field)

    def body(self) -> bytes:
        return msgspec.json.encode(ErrorBody(self.detail))


def not_found(what: str, code: str = "not_found") -> ApiError:
    return ApiError(404, code, f"No {what} has that identifier.")


def conflict(message: str, field: str | None = None) -> ApiError:
    return ApiError(409, "conflict", message, field)


def invalid(message: str, field: str | None = None, code: str = "invalid_field") -> ApiError:
    return ApiError(400, code, message, field)


# "- at `$.fields[0].name`", or "- at `key` in `$.texts`" for a key of an object.
_AT = re.compile(r" - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`\Z")
_NO_DOCUMENT = object()
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")


def _path_name(path: str) -> str | None:
    # "$.fields[0].name" -> "fields[0].name"
    return path.lstrip(".") or None


def from_validation_error(
    exc: msgspec.ValidationError | msgspec.DecodeError,
    target: Any = None,
    document: Any = _NO_DOCUMENT,
) -> ApiError:
    """Turn msgspec's decode or validation failure into the stable error shape, in words a
    person reads (see :mod:`waypost.error_words`); ``target``, the type that was decoded,
    lets an invalid enum value list the values allowed, and with ``document``, what was
    decoded (without a type), a value of an object is named by its key
    (``texts.en.short_text`` where msgspec says ``texts[...].short_text``)."""
    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return ApiError(400, "invalid_json", f"The body is not valid JSON: {message}")
    at = _AT.search(message)
    path = _path_name(at.group("path")) if at else None
    text = message[: at.start()] if at else message
    if path and "[...]" in path and target is not None and document is not _NO_DOCUMENT:
        path = name_keys(target, path, document, text)
    if at and at.group("key"):
        return ApiError(400, "invalid_field", key_sentence(text, path), path)
    if match := _UNKNOWN.match(text):
        name = match.group("name")
        field = f"{path}.{name}" if path else name
        return ApiError(400, "unknown_field", f"Unknown field '{field}'; remove it.", field)
    if match := _MISSING.match(text):
        name = match.group("name")
        field = f"{path}.{name}" if path else name
        return ApiError(400, "missing_field", f"The field '{field}' is required.", field)
    return ApiError(400, "invalid_field", sentence(text, path, allowed_values(target, path)), path)


# An escaped NUL character in JSON: "\u0000" after an even number of backslashes. PostgreSQL
# text cannot hold NUL, so such a value must be refused at the door, not fail at the database.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def holds_nul(raw: bytes) -> bool:
    """Whether a JSON document holds the NUL character in a string."""
    return b"\\u0000" in raw and _NUL_ESCAPE.search(raw) is not None


def nul_refused(where: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{where} cannot hold the NUL character (\\u0000).")


def with_offset(value: dt.datetime, name: str) -> dt.datetime:
    """``value``, when it has an offset; a 400 naming ``name`` (a query parameter or body
    property such as ``since``) for a date and time without one, which means no moment."""
    if value.tzinfo is None:
        raise ApiError(400, "invalid_field", f"{name} needs an offset, e.g. Z.", name)
    return value


def check_no_nul(parameters: Iterable[tuple[str, str]]) -> None:
    """ApiError (400) naming the first query parameter whose name or value holds NUL, which
    PostgreSQL text cannot hold: refused here rather than failing in the database."""
    for name, value in parameters:
        if "\x00" in value or "\x00" in name:
            raise ApiError(400, "invalid_field", f"{name} cannot hold the NUL character.", name)


# Deeper JSON is refused before it is decoded: msgspec and the json module recurse once per
# level and raise RecursionError near a thousand levels, and code that walks a decoded value
# recurses too. Real documents nest a handful of levels.
MAX_JSON_DEPTH = 64
# A JSON string, escapes included; one that runs to the end of the input (malformed JSON)
# matches too, so that no quote is scanned twice.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 and -1 as signed bytes
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of a JSON document nest (brackets in strings aside)."""
    steps = _JSON_STRING.sub(b"", raw).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def too_deep() -> ApiError:
    return ApiError(
        400,
        "invalid_json",
        f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects; "
        "flatten it.",
    )


def check_depth(raw: bytes) -> None:
    """ApiError (400 ``invalid_json``) when ``raw`` nests deeper than ``MAX_JSON_DEPTH``."""
    # Fewer brackets than the limit cannot nest deeper than it: most bodies stop here.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise too_deep()


class StorageUnavailable(Exception):
    """The database cannot be reached or written: answer 503, never pretend success. Raised by
    the store (waypost/store); here so that layers that never touch storage (the transports)
    can answer it."""
