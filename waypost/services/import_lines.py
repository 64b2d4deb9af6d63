"""The lines of an import file (docs/data-lifecycle.md#import): read with a bound on their
length, and each turned into what the pipeline takes, or a problem that names its line.

Two formats:

- ``ndjson``: one activity a line, in the shape of ``POST /tracking/activities``' activities
  with the ``contact`` it belongs to (and its ``channel`` unless the import names one); its
  ``id`` is the client id that makes a retry a 208. A line of an activity export (it has
  ``received_at``) is read as what the export wrote: its ``id`` is the activity's own id,
  which the import keeps, ``client_id`` is the client id, ``occurred_at`` is when it
  happened; ``received_at``, ``flags`` and the consent columns are the new installation's to
  decide again, and a built-in type's title is made again as it was.
- ``segment``: one Segment message a line, as an element of ``/v1/batch``'s ``batch``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import msgspec

from waypost.domain.segment import Message

ImportFormat = Literal["ndjson", "segment"]

BUILTIN_TYPES = ("pagevisit", "click", "datainput")
# What an exported activity holds that the new installation decides again.
RECOMPUTED = ("received_at", "flags", "consent_agreed", "consent_version", "contact", "channel")

_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_decode_message = msgspec.json.Decoder(Message).decode
_encode = msgspec.json.Encoder().encode


class LineProblem(Exception):
    """A line the import cannot read at all: nothing of the file is imported."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True, slots=True)
class ActivityLine:
    """An ``ndjson`` line: the activity object for ``prepare``, its contact and channel, and
    the id it keeps (an exported activity's) or None."""

    number: int
    contact: uuid.UUID
    channel: uuid.UUID | None
    activity: bytes
    keep_id: uuid.UUID | None
    has_id: bool


@dataclass(frozen=True, slots=True)
class MessageLine:
    """A ``segment`` line: the message, decoded, and as sent."""

    number: int
    message: Message
    raw: bytes


def raw_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of ``stream`` with their numbers (from 1), none longer than
    ``limit`` bytes: a longer one is a :class:`LineProblem` once its length is known, without
    holding more than ``limit`` bytes of it."""
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            raise LineProblem(number, f"the line is longer than {limit:,} bytes.")
        if line.strip():
            yield number, line


def _text_problem(exc: Exception) -> str:
    return str(exc).replace("`", "'")


def _object(number: int, line: bytes, what: str) -> dict[str, Any]:
    try:
        return _decode_object(line)
    except msgspec.ValidationError:
        raise LineProblem(number, f"not a JSON object; each line is {what}.") from None
    except msgspec.DecodeError as exc:
        raise LineProblem(number, f"not JSON ({_text_problem(exc)}).") from None
    except RecursionError:
        raise LineProblem(number, "the JSON nests too deep.") from None


def _uuid(number: int, value: Any, name: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise LineProblem(number, f"{name} must be a UUID string.")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise LineProblem(number, f"{name} {value[:60]!r} is not a UUID.") from None


def activity_line(number: int, line: bytes) -> ActivityLine:
    """An ``ndjson`` line; a :class:`LineProblem` when it is not a JSON object, or its
    ``contact`` (or ``channel``, or an exported ``id``) is missing or not a UUID. What is
    wrong with the activity itself is for ``prepare`` to say: it is kept as rejected."""
    obj = _object(number, line, "an activity object with its contact")
    by_lower = {key.lower(): key for key in obj}
    if "contact" not in by_lower:
        raise LineProblem(number, "no contact: each activity names the contact it belongs to.")
    contact = _uuid(number, obj[by_lower["contact"]], "contact")
    channel = None
    if "channel" in by_lower and obj[by_lower["channel"]] is not None:
        channel = _uuid(number, obj[by_lower["channel"]], "channel")
    if "received_at" in obj:
        keep = _uuid(number, obj.get("id"), "id (an exported activity keeps its id)")
        activity = _exported(obj)
        return ActivityLine(number, contact, channel, _encode(activity), keep, True)
    activity = {
        key: value for key, value in obj.items() if key.lower() not in ("contact", "channel")
    }
    has_id = "id" in by_lower and obj[by_lower["id"]] is not None
    return ActivityLine(number, contact, channel, _encode(activity), None, has_id)


def _exported(obj: dict[str, Any]) -> dict[str, Any]:
    """An exported activity as an activity object of the tracking API."""
    names = {"occurred_at": "occurredAt", "client_id": "id"}
    activity: dict[str, Any] = {}
    for key, value in obj.items():
        if key in RECOMPUTED or key == "id" or value is None:
            continue
        activity[names.get(key, key)] = value
    # A built-in type's title is made from its value and URL, as it was; a custom type's is
    # kept as it was stored (its type's name may differ here).
    if activity.get("type") in BUILTIN_TYPES:
        activity.pop("title", None)
    return activity


def message_line(number: int, line: bytes) -> MessageLine:
    """A ``segment`` line: a :class:`LineProblem` when it is not a Segment message."""
    _object(number, line, "a Segment message")
    try:
        message = _decode_message(line)
    except msgspec.ValidationError as exc:
        raise LineProblem(number, f"not a Segment message ({_text_problem(exc)}).") from None
    return MessageLine(number, message, line.strip())
