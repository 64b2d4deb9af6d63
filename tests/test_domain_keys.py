"""API key material: prefixes, the SHA-256 hash, bearer parsing."""

from __future__ import annotations

import hashlib
import re

import pytest

from waypost.domain.keys import (
    ACCESS_BY_PREFIX,
    PREFIXES,
    SHOWN_PREFIX_LENGTH,
    Access,
    bearer_token,
    generate_key,
    hash_key,
    hide_keys,
)


@pytest.mark.parametrize(
    ("access", "prefix"), [("tracking", "wpt_"), ("publishable", "wpp_"), ("admin", "wpa_")]
)
def test_keys_start_with_the_prefix_of_their_access(access: Access, prefix: str) -> None:
    key = generate_key(access)
    assert key.secret.startswith(prefix)
    assert ACCESS_BY_PREFIX[prefix] == access
    assert PREFIXES[access] == prefix


def test_a_key_is_long_random_and_url_safe() -> None:
    keys = [generate_key("admin") for _ in range(50)]
    assert len({k.secret for k in keys}) == 50
    for key in keys:
        assert re.fullmatch(r"wpa_[A-Za-z0-9_-]{43}", key.secret)


def test_only_the_prefix_last_four_and_a_sha256_hash_are_kept() -> None:
    key = generate_key("tracking")
    assert key.prefix == key.secret[:SHOWN_PREFIX_LENGTH]
    assert key.last_four == key.secret[-4:]
    assert key.key_hash == hashlib.sha256(key.secret.encode()).hexdigest()
    assert key.key_hash == hash_key(key.secret)
    assert len(key.key_hash) == 64
    assert key.secret not in key.key_hash


def test_hash_depends_on_every_character() -> None:
    secret = generate_key("admin").secret
    assert hash_key(secret) != hash_key(secret[:-1])
    assert hash_key(secret) != hash_key(secret + "x")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer wpa_abc", "wpa_abc"),
        ("bearer wpa_abc", "wpa_abc"),
        ("BEARER wpa_abc", "wpa_abc"),
        ("  Bearer   wpa_abc  ", "wpa_abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("wpa_abc", None),
        ("Token wpa_abc", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_whole_keys_in_stored_text_are_cut_to_prefix_and_last_four() -> None:
    keys = [generate_key(access).secret for access in ("tracking", "publishable", "admin")]
    tracking, publishable, admin = keys
    text = f'{{"a": "{tracking}", "b": ["{publishable}"], "c": "Bearer {admin}"}}'.encode()
    hidden = hide_keys(text).decode()
    for key in keys:
        assert key not in hidden
        assert f"{key[:4]}…{key[-4:]}" in hidden
    # Readable prefixes, other tokens and text without keys are left as they are.
    for kept in (b'{"k": "wpt_Ab3d"}', b'{"k": "xwpt_' + b"A" * 43 + b'"}', b'{"v": 5}'):
        assert hide_keys(kept) == kept
