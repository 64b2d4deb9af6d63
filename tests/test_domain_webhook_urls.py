"""Which addresses webhooks may not go to: IPv6 forms that embed an IPv4 address, or are
deprecated or special, judged by what they mean."""

from __future__ import annotations

import ipaddress

import pytest

from waypost.domain.webhook_urls import embedded_ipv4, is_refused, literal_address, url_origin


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address 169.254.169.254
        "::ffff:0:127.0.0.1",  # IPv4-translated
        "::ffff:0:192.168.0.1",
        "2002:7f00:1::1",  # 6to4 through 127.0.0.1
        "fec0::1",  # site-local (deprecated)
        "64:ff9b:1::a00:1",  # local-use NAT64
        "::",
        "fe80::1",
        "fc00::1",
        # The documentation prefixes (RFC 3849, RFC 9637): ipaddress's tables count 3fff::/20
        # as global on older Pythons, so it is refused by name.
        "2001:db8::1",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "3fff::",
        "3fff::1",
        "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
    ],
)
def test_addresses_that_mean_a_private_one_are_refused(host: str) -> None:
    address = literal_address(f"[{host}]" if ":" in host else host)
    assert address is not None
    assert is_refused(address)


@pytest.mark.parametrize(
    "host",
    [
        "93.184.216.34",
        "2606:4700::1111",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        # Just outside the documentation prefixes: global unicast.
        "2001:db9::1",
        "3fff:1000::1",
    ],
)
def test_public_addresses_and_their_ipv6_forms_are_allowed(host: str) -> None:
    # 64:ff9b::5db8:d822 is 93.184.216.34 through NAT64: what DNS64 answers on an IPv6-only
    # network for a receiver with only an IPv4 address.
    address = ipaddress.ip_address(host)
    assert not is_refused(address)


@pytest.mark.parametrize(
    ("host", "meaning"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::127.0.0.1", "127.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("::ffff:0:127.0.0.1", "127.0.0.1"),
        ("2002:7f00:1::1", "127.0.0.1"),
        ("2606:4700::1111", None),
        ("fec0::1", None),
    ],
)
def test_the_ipv4_address_an_ipv6_form_embeds(host: str, meaning: str | None) -> None:
    embedded = embedded_ipv4(ipaddress.IPv6Address(host))
    assert (str(embedded) if embedded is not None else None) == meaning


def test_an_urls_origin_leaves_out_its_path_query_and_user() -> None:
    assert url_origin("https://hooks.example.com/T0/B1/secret?x=1") == "https://hooks.example.com"
    assert url_origin("http://[2001:db8::1]:8080/a") == "http://[2001:db8::1]:8080"
    assert url_origin("https://user:pw@crm.example/x") == "https://crm.example"
