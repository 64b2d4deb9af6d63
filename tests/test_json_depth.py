"""JSON nested deeper than the limit is a 400 on every JSON route, never a 500.

msgspec and the json module recurse once per level and raise RecursionError near a thousand
levels; below that, deep values would still reach code that recurses. Waypost refuses any
JSON nested deeper than ``MAX_JSON_DEPTH`` (docs/errors.md).
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from starlette.testclient import TestClient

from waypost.errors import MAX_JSON_DEPTH, ApiError, check_depth, json_depth
from waypost.services.channels import Channel
from waypost.services.keys import CreatedKey

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker

VERY_DEEP = 100_000
OVER = MAX_JSON_DEPTH + 1


def nested(depth: int, leaf: str = "1") -> str:
    """A JSON value ``depth`` levels deep: arrays and objects in turn."""
    opening = ('[{"a":' * (depth // 2)) + ("[" if depth % 2 else "")
    closing = ("]" if depth % 2 else "") + ("}]" * (depth // 2))
    return opening + leaf + closing


# -- the shared check ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1, 2, 7, MAX_JSON_DEPTH, OVER, 1000])
def test_json_depth_counts_levels(depth: int) -> None:
    assert json_depth(nested(depth).encode()) == depth


def test_brackets_in_strings_do_not_count() -> None:
    text = '{"a": "[[[{{{", "b": ["]]]}}}\\"[[", {"c": "\\\\"}]}'
    assert json_depth(text.encode()) == 3
    unterminated = '["' + '\\"' * 1000 + "[[["
    assert json_depth(unterminated.encode()) == 1


def test_check_depth_refuses_one_level_over_the_limit() -> None:
    check_depth(nested(MAX_JSON_DEPTH).encode())
    with pytest.raises(ApiError) as raised:
        check_depth(nested(OVER).encode())
    assert (raised.value.status, raised.value.code) == (400, "invalid_json")
    assert str(MAX_JSON_DEPTH) in raised.value.message


def test_check_depth_is_linear() -> None:
    # Two megabytes of brackets, the largest body a request may have, in well under a second.
    for raw in (b"[" * 2_000_000, b"[]" * 1_000_000, b'"' + b'\\"' * 1_000_000):
        start = time.perf_counter()
        json_depth(raw)
        assert time.perf_counter() - start < 1


# -- the routes ---------------------------------------------------------------------------------


def _expect_too_deep(answer: httpx2.Response, expect_error: ErrorCheck) -> None:
    error = expect_error(answer, 400, "invalid_json")
    assert "nested" in error["message"]


@pytest.mark.parametrize("prefix", ["/tracking", "/Kentico.Tracking"])
def test_tracking_activities(tracker: Tracker, expect_error: ErrorCheck, prefix: str) -> None:
    contact = tracker.new_contact(prefix)
    body = (
        f'{{"channel": "{tracker.channel.id}", "contact": "{contact}", "activities": '
        f'[{{"type": "click", "value": "x", "fields": {{"a": {nested(VERY_DEEP)}}}}}]}}'
    )
    answer = tracker.client.post(
        f"{prefix}/activities",
        content=body.encode(),
        headers={**tracker.headers, "Content-Type": "application/json"},
    )
    _expect_too_deep(answer, expect_error)
    # Deep enough to refuse, not deep enough to fail the request: that activity alone is a 400.
    activity = json.loads(f'{{"type": "click", "value": "x", "fields": {{"a": {nested(OVER)}}}}}')
    deep, fine = tracker.log([activity, {"type": "click", "value": "x"}], contact, prefix)
    assert (deep["status"], deep["error"]["code"]) == (400, "invalid_json")
    assert fine["status"] == 202


def test_tracking_consent_agreement(tracker: Tracker, expect_error: ErrorCheck) -> None:
    contact = tracker.new_contact()
    answer = tracker.client.post(
        f"/tracking/contacts/{contact}/consents/Any",
        content=f'{{"agree": {nested(VERY_DEEP)}}}'.encode(),
        headers={**tracker.headers, "Content-Type": "application/json"},
    )
    _expect_too_deep(answer, expect_error)


@pytest.fixture
def write_key(
    make_channel: Callable[..., Channel], make_key: Callable[..., CreatedKey]
) -> dict[str, str]:
    key = make_key("tracking", make_channel().id).key
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/track", '{"userId": "u", "event": "e", "properties": {"a": DEEP}}'),
        ("/v1/identify", '{"userId": "u", "traits": DEEP}'),
        ("/v1/batch", '{"batch": [{"type": "track", "userId": "u", "event": DEEP}]}'),
    ],
)
# Within Segment's 32 KB per message, and far past what a decoder can recurse into.
@pytest.mark.parametrize("depth", [OVER, 5_000])
def test_segment(
    client: TestClient,
    write_key: dict[str, str],
    expect_error: ErrorCheck,
    path: str,
    body: str,
    depth: int,
    gzipped: bool,
) -> None:
    raw = body.replace("DEEP", nested(depth)).encode()
    headers = {**write_key, "Content-Type": "application/json"}
    if gzipped:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    _expect_too_deep(client.post(path, content=raw, headers=headers), expect_error)


def test_a_segment_batch_too_deep_to_decode(
    client: TestClient, write_key: dict[str, str], expect_error: ErrorCheck
) -> None:
    raw = f'{{"batch": [], "context": {{"a": {nested(VERY_DEEP)}}}}}'.encode()
    answer = client.post(
        "/v1/batch", content=raw, headers={**write_key, "Content-Type": "application/json"}
    )
    _expect_too_deep(answer, expect_error)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/channels", '{"name": DEEP, "kind": "headless"}'),
        ("/api/channels", '{"name": "n", "kind": "headless", "surely_not": DEEP}'),
        ("/api/activity-types", '{"name": "n", "fields": [{"name": "f", "type": DEEP}]}'),
        ("/api/groups/validate", '{"condition": DEEP}'),
        ("/api/groups", '{"name": "n", "condition": {"all": [DEEP]}}'),
    ],
)
@pytest.mark.parametrize("depth", [OVER, VERY_DEEP])
def test_admin_api(
    client: TestClient,
    admin_headers: dict[str, str],
    expect_error: ErrorCheck,
    path: str,
    body: str,
    depth: int,
) -> None:
    raw = body.replace("DEEP", nested(depth)).encode()
    answer = client.post(
        path, content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    _expect_too_deep(answer, expect_error)


@pytest.mark.parametrize("depth", [20, MAX_JSON_DEPTH - 2, OVER, 1000])
def test_a_deep_group_condition_is_a_400(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck, depth: int
) -> None:
    condition = '{"not": ' * depth + '{"consent": "c"}' + "}" * depth
    answer = client.post(
        "/api/groups/validate",
        content=f'{{"condition": {condition}}}'.encode(),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    # The body nests two levels more than the condition's "not"s.
    too_deep = depth + 2 > MAX_JSON_DEPTH
    error = expect_error(answer, 400, "invalid_json" if too_deep else "invalid_field")
    assert "nested deeper than" in error["message"]


def test_a_deep_activity_kept_as_rejected_can_be_listed(
    tracker: Tracker, client: TestClient, admin_headers: dict[str, str]
) -> None:
    activity: Any = json.loads(f'{{"type": "click", "fields": {{"a": {nested(OVER)}}}}}')
    [result] = tracker.log([activity])
    assert result["status"] == 400
    answer = client.get("/api/rejected-activities", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 1
