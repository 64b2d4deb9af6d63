"""Secrets are masked in every log line: uvicorn's access and error logs and Waypost's own."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from waypost.logs import REQUEST_ID, MaskSecrets, log_config, mask_secrets, request_id_of

if TYPE_CHECKING:
    from tests.sdk_support import running_server
else:
    from sdk_support import running_server

# Lines of the first-run banner, which shows the new keys once on purpose (it is not a log).
BANNER = re.compile(r"(Admin|Tracking|Publishable) key \(|Password:")


def test_keys_are_masked_to_their_prefix_and_last_four() -> None:
    key = "wpp_" + secrets.token_urlsafe(32)
    hook = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+Q/b0e1=="
    text = f"GET /browser/activity?key={key}&x=1 Bearer wpt_{key[4:]} {hook}"
    assert mask_secrets(text) == (
        f"GET /browser/activity?key=wpp_…{key[-4:]}&x=1 Bearer wpt_…{key[-4:]} whsec_…e1=="
    )
    # A key ends where its URL-safe base64 does: the rest of a path stays readable.
    path = f"GET /v1/projects/{key}/settings"
    assert mask_secrets(path) == f"GET /v1/projects/wpp_…{key[-4:]}/settings"
    # Readable prefixes, as the admin UI lists keys, are no secret and stay readable.
    assert mask_secrets("key wpa_Ab3d disabled") == "key wpa_Ab3d disabled"


def test_the_filter_masks_messages_arguments_and_tracebacks() -> None:
    key = "wpa_" + secrets.token_urlsafe(32)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(MaskSecrets())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("waypost.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(f"inline {key}")
        logger.warning("as an argument %s, a number %d", key, 7)
        logger.warning("in a mapping %(key)s", {"key": key})
        logger.warning("in an object %s", ValueError(key))
        try:
            raise RuntimeError(f"unknown key {key}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert key not in text
    assert key[:-4] not in text
    assert text.count(f"wpa_…{key[-4:]}") == 5
    assert "a number 7" in text


def test_the_server_log_config_filters_every_handler() -> None:
    config = log_config("info")
    assert config["handlers"]
    for handler in config["handlers"].values():
        assert handler["filters"][:2] == ["mask_secrets", "request_context"]
    assert config["loggers"]["waypost"]["handlers"] == ["default"]
    assert config["root"]["handlers"] == ["default"]


@pytest.mark.slow
def test_a_served_process_logs_no_key(tmp_path: Path) -> None:
    unknown = "wpa_" + secrets.token_urlsafe(32)
    hook = "whsec_" + secrets.token_urlsafe(24)
    with running_server(tmp_path) as server:
        publishable = re.findall(r"Publishable key .*?(wpp_\S+)", server.output())[0]
        keys = [server.admin_key, server.tracking_key, publishable, unknown, hook]
        with httpx.Client(base_url=server.url, timeout=10) as http:
            http.get("/browser/activity", params={"key": publishable})
            http.post("/browser/activity", params={"key": publishable}, json={})
            http.get("/api/channels", params={"key": server.admin_key, "hook": hook})
            http.get(
                "/api/channels",
                params={"token": unknown},
                headers={"Authorization": f"Bearer {unknown}"},
            )
            http.post(
                f"/tracking/activities?key={server.tracking_key}",
                headers={"Authorization": f"Bearer {server.tracking_key}"},
                content=b"{",
            )
            http.get(f"/no/such/{server.tracking_key}")
    output = server.output()
    logged = [line for line in output.splitlines() if not BANNER.search(line)]
    assert sum('"GET /browser/activity?key=wpp_…' in line for line in logged) == 1, output
    for key in keys:
        assert not [line for line in logged if key in line], key[:4]
        assert f"{key[: key.index('_') + 1]}…{key[-4:]}" in output, key[:4]


def test_email_addresses_are_masked_to_their_domain() -> None:
    assert mask_secrets("identify john.apple+news@mail.example.co.uk") == (
        "identify …@mail.example.co.uk"
    )
    # In a query string, with its "@" percent-encoded, the parameter's name stays readable.
    assert mask_secrets('"GET /api/contacts?q=john.apple%40example.com&limit=5 HTTP/1.1" 200') == (
        '"GET /api/contacts?q=…@example.com&limit=5 HTTP/1.1" 200'
    )
    # What only looks like an address in part stays as it is; an address without a dot is one.
    assert mask_secrets("at @home, admin@localhost, 2 @ 3.50") == (
        "at @home, …@localhost, 2 @ 3.50"
    )


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        ("GET /i?uid=john.doe%40localhost&x=1", "GET /i?uid=…@localhost&x=1"),
        ("?q=j%C3%B6hn%40ex%C3%A4mple.com", "?q=…@ex%C3%A4mple.com"),
        ("jöhn@exämple.com said", "…@exämple.com said"),
        ("?to=alice%40example.c", "?to=…@example.c"),
        ("?to=bob%40%5B127.0.0.1%5D&y", "?to=…@%5B127.0.0.1%5D&y"),
        ("?to=dave%40ex_ample.com", "?to=…@ex_ample.com"),
        ("GET /v1/projects/eve.x@localhost/settings", "GET /v1/projects/…@localhost/settings"),
        ("?to=bob@[127.0.0.1]&y", "?to=…@[127.0.0.1]&y"),
        # Two addresses one after the other: neither domain runs into the next address.
        ("?to=ann%40example.com%2Cbob%40example.org", "?to=…@example.com…@example.org"),
        ("ann@a.b:bob@c.d", "…@a.b:…@c.d"),
        ("ann@a.b,bob@c.d", "…@a.b,…@c.d"),
        # Every character a local part may hold goes, not only the part after the last of
        # them: "o'" and "bang!" were left in the log.
        ("GET /i?uid=o'brien@example.com HTTP/1.1", "GET /i?uid=…@example.com HTTP/1.1"),
        ("?uid=bang!x@example.com&e=pv", "?uid=…@example.com&e=pv"),
        ("?uid=a*b#c$d^e`f{g|h}i~j@example.com", "?uid=…@example.com"),
    ],
)
def test_addresses_in_any_form_a_url_may_carry_are_masked(sent: str, logged: str) -> None:
    assert mask_secrets(sent) == logged


def test_keys_percent_encoded_in_part_or_whole_are_masked() -> None:
    key = "wpt_" + secrets.token_urlsafe(32)
    tail = key[4:]
    whole = "".join(f"%{ord(ch):02X}" for ch in key)
    for sent in (
        f"?access_token=wpt%5F{tail}",
        f"?access_token=wpt%5f{tail}",
        f"?key=%77pt_{tail}",
        f"?client_secret={whole}",
    ):
        masked = mask_secrets(sent)
        assert tail[:-4] not in masked, sent
        assert whole[12:-12] not in masked, sent
        assert "…" in masked, sent


@pytest.mark.parametrize("size", [10_000, 100_000])
def test_masking_a_hostile_line_takes_time_in_proportion_to_its_length(size: int) -> None:
    # A long run of what may be an address's local part, many "@"s, many labels: each
    # character is looked at a bounded number of times, whatever the line.
    lines = ["a" * size + "@", "a@" * (size // 2), ("a" * 60 + ".") * (size // 61) + "@x"]
    lines += ["x@" + ("b" * 60 + ".") * (size // 61), "wpp_" + "A" * size]
    started = time.perf_counter()
    for line in lines:
        mask_secrets(line)
    assert time.perf_counter() - started < size / 100_000  # 1 µs a character, at most


def test_a_request_id_is_the_clients_when_sane_else_a_new_one() -> None:
    assert request_id_of(b"edge-7f3a.42:1_b") == "edge-7f3a.42:1_b"
    made = {request_id_of(None) for _ in range(1000)}
    assert len(made) == 1000
    for bad in (b"", b"x" * 65, b"a b", b"id\r\nX-Injected: 1", b"\xc3\xa9t\xc3\xa9", b"<id>"):
        replaced = request_id_of(bad)
        assert replaced.encode() != bad
        assert re.fullmatch(r"[0-9a-f]{10}-[0-9a-f]+", replaced)


def _records(log_format: str, level: str = "info") -> tuple[io.StringIO, logging.Logger]:
    """A logger whose lines go through the server config's handler and formatter."""
    config = log_config(level, log_format)  # type: ignore[arg-type]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    for name in config["handlers"]["default"]["filters"]:
        factory = config["filters"][name]["()"]
        handler.addFilter(factory())
    formatter = dict(config["formatters"]["default"])
    factory = formatter.pop("()")
    if isinstance(factory, str):
        factory = logging.config.BaseConfigurator(config).resolve(factory)
    handler.setFormatter(factory(**formatter))
    logger = logging.getLogger(f"waypost.test_logs.{log_format}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return out, logger


def test_json_lines_carry_the_request_id_and_mask_what_they_quote() -> None:
    key = "wpt_" + secrets.token_urlsafe(32)
    out, logger = _records("json")
    token = REQUEST_ID.set("req-1")
    try:
        logger.warning("key %s of jane@example.org failed", key)
        try:
            raise ValueError(f"bad key {key}")
        except ValueError:
            logger.exception("oops")
    finally:
        REQUEST_ID.reset(token)
    logger.info("outside a request")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        f"key wpt_…{key[-4:]} of …@example.org failed",
        "oops",
        "outside a request",
    ]
    assert [line.get("request_id") for line in lines] == ["req-1", "req-1", None]
    assert [line["level"] for line in lines] == ["warning", "error", "info"]
    assert lines[1]["exception"].startswith("Traceback")
    assert key not in out.getvalue()
    assert {"time", "logger"} <= set(lines[0])


def test_text_lines_start_with_the_request_id() -> None:
    out, logger = _records("text")
    token = REQUEST_ID.set("req-2")
    try:
        logger.info("inside")
    finally:
        REQUEST_ID.reset(token)
    logger.info("outside")
    assert out.getvalue().splitlines() == ["INFO:     [req-2] inside", "INFO:     outside"]


def test_probes_stay_out_of_the_access_log_unless_debugging() -> None:
    assert "quiet_probes" in log_config("info")["handlers"]["access"]["filters"]
    assert "quiet_probes" not in log_config("debug")["handlers"]["access"]["filters"]


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_whole_session_logs_no_key_password_or_email(tmp_path: Path, log_format: str) -> None:
    email = "john.apple@example.com"
    other_email = "jane.doe+promo@shop.example.org"
    wrong_password = "not-the-password-" + secrets.token_urlsafe(8)
    unknown = "wpt_" + secrets.token_urlsafe(32)
    with running_server(tmp_path, log_format=log_format) as server:
        output = server.output()
        publishable = re.findall(r"Publishable key .*?(wpp_\S+)", output)[0]
        password = re.findall(r"Password:\s+(\S+)", output)[0]
        login = re.findall(r"Login:\s+(\S+)", output)[0]
        keys = [server.admin_key, server.tracking_key, publishable, unknown]
        with httpx.Client(base_url=server.url, timeout=10) as http:
            # The admin UI: a failed login, then one with the first admin's password.
            for attempt in (wrong_password, password):
                page = http.get("/admin/login")
                token = re.findall(r'name="csrf_token" value="([^"]*)"', page.text)[0]
                form = {"csrf_token": token, "email": login, "password": attempt}
                http.post("/admin/login", data=form)
            assert http.get("/admin/keys").status_code == 200
            # A key made through the API, with the admin key in a header and in a query.
            admin = {"Authorization": f"Bearer {server.admin_key}"}
            body = {"channel": server.channel, "access": "tracking", "name": "ci"}
            created = http.post("/api/keys", json=body, headers=admin)
            assert created.status_code == 201, created.text
            new_key = created.json()["key"]
            keys.append(new_key)
            http.get("/api/channels", params={"key": server.admin_key})
            # Tracking with keys in headers and query strings, and identifies with emails.
            tracking = {"Authorization": f"Bearer {new_key}"}
            contact = http.post("/tracking/contacts", headers=tracking).json()["contact"]
            activity = {"type": "pagevisit", "url": f"https://a.example/?email={email}"}
            answer = http.post(
                f"/tracking/activities?key={new_key}",
                json={"channel": server.channel, "contact": contact, "activities": [activity]},
                headers={**tracking, "X-Request-Id": "session-42"},
            )
            assert answer.status_code == 207, answer.text
            assert answer.headers["x-request-id"] == "session-42"
            identify = {"userId": "u-1", "traits": {"email": email, "name": "John Apple"}}
            assert http.post("/v1/identify", json=identify, auth=(new_key, "")).status_code == 200
            http.post("/browser/activity", params={"key": publishable, "email": other_email})
            http.get("/api/contacts", params={"q": email}, headers=admin)
            http.get(f"/api/contacts/{email}", headers=admin)
            # Errors: an unknown key, a body that is not JSON, an unknown path holding a key.
            http.get("/api/channels", headers={"Authorization": f"Bearer {unknown}"})
            http.post("/tracking/activities", headers=tracking, content=b"{")
            http.get(f"/no/such/{new_key}/{email}")
            http.get("/readyz")
    output = server.output()
    logged = [line for line in output.splitlines() if not BANNER.search(line)]
    secrets_sent = [*keys, password, wrong_password, email, other_email]
    secrets_sent += [email.replace("@", "%40"), other_email.replace("@", "%40")]
    for secret in secrets_sent:
        assert not [line for line in logged if secret in line], secret[:4]
    for key in keys:
        assert not [line for line in logged if key[:-4] in line], key[:4]
    access = [line for line in logged if "POST /tracking/activities?key=wpt_…" in line]
    assert len(access) == 1, output
    assert "session-42" in access[0]
    assert not [line for line in logged if "/readyz" in line]
    if log_format == "json":
        lines = [json.loads(line) for line in logged if line.startswith("{")]
        requests = [line for line in lines if line["logger"] == "uvicorn.access"]
        assert len(requests) >= 15
        # Every access line has its request's id, each request its own.
        ids = [line["request_id"] for line in requests]
        assert len(set(ids)) == len(ids)
        assert [line["status"] for line in requests if line["request_id"] == "session-42"] == [207]
        # No log line is written as text: what is not JSON is what `serve` prints for people.
        assert not [line for line in logged if re.match(r"(INFO|WARNING|ERROR|DEBUG):", line)]
