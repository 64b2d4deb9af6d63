"""Channel rules: origin normalisation and language codes."""

from __future__ import annotations

import pytest

from waypost.domain.channels import (
    is_valid_language,
    normalise_origin,
    pick_language,
    same_language_twice,
)


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://www.example.com", "https://www.example.com"),
        ("https://Example.COM/", "https://example.com"),
        ("HTTPS://example.com", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80/", "http://example.com"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("http://example.com:443", "http://example.com:443"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("  https://example.com  ", "https://example.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://ä.com", "http://xn--4ca.com"),
        ("https://Bücher.Example:443/", "https://xn--bcher-kva.example"),
        ("http://xn--4ca.com", "http://xn--4ca.com"),
        ("http://my_host.local:3000", "http://my_host.local:3000"),
        ("http://" + "a" * 63 + ".example", "http://" + "a" * 63 + ".example"),
    ],
)
def test_normalise_origin(origin: str, expected: str) -> None:
    assert normalise_origin(origin) == expected


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "",
        "example.com",
        "www.example.com:443",
        "ftp://example.com",
        "javascript:alert(1)",
        "https://",
        "https://example.com/path",
        "https://example.com/?q=1",
        "https://example.com/#top",
        "https://user:pw@example.com",
        "https://example.com:99999",
        "https://example.com:port",
        # Characters no browser sends in a host (schemathesis sent the first).
        "http://NH9.6.Y*",
        "http://a b.example",
        "http://a%20b.example",
        "http://a!b.example",
    ],
)
def test_what_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match=r"origin|port|scheme|Origin"):
        normalise_origin(origin)


@pytest.mark.parametrize(
    ("origin", "why"),
    [
        ("http://" + "a" * 64 + ".example", "label of more than 63"),
        ("http://" + ".".join(["a" * 60] * 5), "more than 253"),
        ("http://" + "a" * 100_000, "more than 253"),
        ("http://xn--", "invalid punycode"),
        ("http://xn--zz.example", "invalid punycode"),
        ("http://a\u00a0b.example".encode().decode("unicode_escape"), "international domain"),
    ],
)
def test_hosts_dns_cannot_hold_are_refused(origin: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        normalise_origin(origin)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("code", ["en", "cs", "fil", "en-US", "zh-Hans-CN", "de-CH"])
def test_valid_languages(code: str) -> None:
    assert is_valid_language(code)


@pytest.mark.parametrize("code", ["", "e", "english", "en_US", "en-", "1a", "en US", "en-U"])
def test_invalid_languages(code: str) -> None:
    assert not is_valid_language(code)


@pytest.mark.parametrize(
    ("available", "wanted", "fallback", "picked"),
    [
        (["en", "cs"], "cs", "en", "cs"),
        (["en", "cs"], "CS", "en", "cs"),
        (["en-US", "en"], "en-us", "cs", "en-US"),
        (["en"], "en-US", "cs", "en"),
        (["zh"], "zh-Hant-TW", "en", "zh"),
        (["en", "cs"], "de", "cs", "cs"),
        (["en", "cs"], None, "CS-cz", "cs"),
        (["en", "cs"], "", "en", "en"),
        (["cs"], "de", "en", None),
        ([], "en", "en", None),
        # Not a language code: as if none was asked for.
        (["en", "cs"], "cs-" + "-" * 60_000, "en", "en"),
        (["en", "cs"], "c_s", "en", "en"),
        (["en", "cs"], "cs-CZ-x-aaaaaaaaaaa", "en", "en"),
    ],
)
def test_a_text_is_picked_by_language_then_its_language_alone_then_the_default(
    available: list[str], wanted: str | None, fallback: str, picked: str | None
) -> None:
    assert pick_language(available, wanted, fallback) == picked


def test_a_language_repeated_in_another_case_is_found() -> None:
    assert same_language_twice(["en", "cs", "EN"]) == "EN"
    assert same_language_twice(["en", "en-US", "cs"]) is None
