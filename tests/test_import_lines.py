"""Reading the lines of an import file (waypost/services/import_lines.py): no database."""

from __future__ import annotations

import io
import json
import uuid

import msgspec
import pytest

from waypost.services.import_lines import (
    LineProblem,
    activity_line,
    message_line,
    raw_lines,
)

CONTACT = "963d1a41-db52-433f-b94a-6f129eea8b31"


def test_blank_lines_are_skipped_and_lines_keep_their_numbers() -> None:
    stream = io.BytesIO(b'{"a": 1}\n\n   \n{"b": 2}')
    assert list(raw_lines(stream, 100)) == [(1, b'{"a": 1}\n'), (4, b'{"b": 2}')]


def test_a_line_over_the_limit_is_a_problem_and_one_at_it_is_not() -> None:
    assert list(raw_lines(io.BytesIO(b"x" * 10 + b"\n"), 11)) == [(1, b"x" * 10 + b"\n")]
    with pytest.raises(LineProblem, match="line 2: the line is longer than 10 bytes"):
        list(raw_lines(io.BytesIO(b"ok\n" + b"x" * 50), 10))


def test_a_tracking_line_keeps_everything_but_contact_and_channel() -> None:
    channel = str(uuid.uuid4())
    raw = json.dumps(
        {"Type": "click", "Value": "a", "Contact": CONTACT, "channel": channel, "id": "c-1"}
    ).encode()
    line = activity_line(7, raw)
    assert (line.number, line.contact, line.channel) == (7, uuid.UUID(CONTACT), uuid.UUID(channel))
    assert msgspec.json.decode(line.activity) == {"Type": "click", "Value": "a", "id": "c-1"}
    assert (line.keep_id, line.has_id) == (None, True)
    assert activity_line(1, json.dumps({"type": "x", "contact": CONTACT}).encode()).has_id is False


def test_an_exported_line_keeps_its_id_and_leaves_what_the_installation_decides() -> None:
    activity_id = str(uuid.uuid4())
    exported = {
        "id": activity_id, "type": "click", "contact": CONTACT, "channel": str(uuid.uuid4()),
        "title": "Clicked 'a'", "value": "a", "url": None, "referrer": None, "fields": None,
        "flags": None, "occurred_at": "2026-01-01T10:00:00.5Z",
        "received_at": "2026-01-01T10:00:01Z", "client_id": "c-9", "consent_agreed": True,
        "consent_version": 2,
    }  # fmt: skip
    line = activity_line(1, json.dumps(exported).encode())
    assert line.keep_id == uuid.UUID(activity_id)
    # A built-in type's title is made again; the client id is the activity's id again.
    assert msgspec.json.decode(line.activity) == {
        "type": "click", "value": "a", "occurredAt": "2026-01-01T10:00:00.5Z", "id": "c-9",
    }  # fmt: skip
    custom = {**exported, "type": "loan_calc", "title": "Mine", "fields": {"amount": "1.50"}}
    assert msgspec.json.decode(activity_line(1, json.dumps(custom).encode()).activity) == {
        "type": "loan_calc", "title": "Mine", "value": "a", "fields": {"amount": "1.50"},
        "occurredAt": "2026-01-01T10:00:00.5Z", "id": "c-9",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"nope", "line 3: not JSON"),
        (b"[1]", "line 3: not a JSON object"),
        (b'{"type": "click"}', "line 3: no contact"),
        (b'{"contact": null}', "line 3: contact must be a UUID string"),
        (b'{"contact": "%s", "channel": "x"}' % CONTACT.encode(), "line 3: channel 'x' is not"),
        (b'{"contact": "%s", "received_at": 1}' % CONTACT.encode(), "line 3: id (an exported"),
        (b"[" * 5000 + b"]" * 5000, "line 3: "),
    ],
)
def test_lines_that_cannot_be_read(raw: bytes, says: str) -> None:
    with pytest.raises(LineProblem, match=says.replace("(", r"\(")):
        activity_line(3, raw)


def test_segment_lines() -> None:
    line = message_line(2, b'{"type": "track", "userId": 42, "event": "E"}\n')
    assert (line.number, line.message.user_id, line.raw) == (
        2, 42, b'{"type": "track", "userId": 42, "event": "E"}'
    )  # fmt: skip
    with pytest.raises(LineProblem, match="line 2: not a Segment message"):
        message_line(2, b'{"type": "track", "userId": [1]}')
    with pytest.raises(LineProblem, match="line 2: not a JSON object"):
        message_line(2, b'"track"')
