"""Secrets are masked in every log line: uvicorn's access and error logs and Waypost's own."""

from __future__ import annotations

import io
import logging
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from waypost.logs import MaskSecrets, log_config, mask_secrets

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
