"""client_ip: the peer, or behind trusted proxies the right-most untrusted forwarded address;
client_key: that address as per-address limits count it (an IPv6 one by its /64)."""

from __future__ import annotations

import pytest

from waypost.clientip import (
    address_key,
    client_ip,
    client_key,
    parse_trusted_proxies,
    uvicorn_proxy_options,
)
from waypost.settings import SettingsError, load_settings


def scope(peer: str, *forwarded: str) -> dict[str, object]:
    return {
        "client": (peer, 40000),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


PROXIES = parse_trusted_proxies("127.0.0.1, 10.0.0.0/8, ::1")


def test_nothing_is_trusted_by_default() -> None:
    assert parse_trusted_proxies("") == ()
    assert client_ip(scope("127.0.0.1", "203.0.113.1"), ()) == "127.0.0.1"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_ip(scope("192.0.2.1", "203.0.113.1"), PROXIES) == "192.0.2.1"


def test_the_right_most_untrusted_address_is_the_client() -> None:
    chain = "198.51.100.1, 203.0.113.7, 10.0.0.5"
    assert client_ip(scope("127.0.0.1", chain), PROXIES) == "203.0.113.7"
    # Several headers are one list.
    assert client_ip(scope("::1", "198.51.100.1", "203.0.113.7"), PROXIES) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_only_gives_the_left_most() -> None:
    assert client_ip(scope("127.0.0.1", "10.0.0.9, 10.0.0.5"), PROXIES) == "10.0.0.9"
    assert client_ip(scope("127.0.0.1"), PROXIES) == "127.0.0.1"


def test_no_client_at_all() -> None:
    assert client_ip({"headers": []}, PROXIES) == "unknown"


def test_an_ipv4_client_is_counted_by_its_address() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("203.0.113.8") != address_key("203.0.113.7")
    # As a dual-stack socket reports an IPv4 peer: the same client.
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    """Whoever has one address of a /64 may use any of its 2^64: they are one client."""
    key = address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd")
    assert key == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2::1") == key
    assert address_key("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff") == key
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("::1") == "::/64"
    # A zone names the link, not another client.
    assert address_key("fe80::1%eth0") == address_key("fe80::2") == "fe80::/64"


def test_what_is_not_an_address_is_kept_as_it_is() -> None:
    assert address_key("unknown") == "unknown"
    assert address_key("2001:db8::/64") == "2001:db8::/64"
    assert address_key("") == ""


def test_the_client_key_is_taken_behind_the_trusted_proxies() -> None:
    assert client_key(scope("2001:db8:5:6::9"), PROXIES) == "2001:db8:5:6::/64"
    forwarded = scope("::1", "2001:db8:7:8:1:2:3:4, 10.0.0.5")
    assert client_key(forwarded, PROXIES) == "2001:db8:7:8::/64"
    assert client_key(scope("127.0.0.1", "203.0.113.7"), PROXIES) == "203.0.113.7"
    assert client_key({"headers": []}, PROXIES) == "unknown"


def test_the_setting_is_checked() -> None:
    with pytest.raises(SettingsError, match="WAYPOST_TRUSTED_PROXIES: 'proxy' is neither"):
        load_settings({"WAYPOST_TRUSTED_PROXIES": "127.0.0.1, proxy"})
    with pytest.raises(SettingsError, match="NEW_CONTACTS_PER_IP_PER_HOUR"):
        load_settings({"WAYPOST_NEW_CONTACTS_PER_IP_PER_HOUR": "-1"})
    with pytest.raises(SettingsError, match="REJECTED_PER_IP_PER_HOUR must not be negative"):
        load_settings({"WAYPOST_REJECTED_PER_IP_PER_HOUR": "-1"})
    assert load_settings({}).rejected_per_ip_per_hour == 1000
    assert load_settings({"WAYPOST_REJECTED_PER_IP_PER_HOUR": "0"}).rejected_per_ip_per_hour == 0
    settings = load_settings({"WAYPOST_TRUSTED_PROXIES": "10.0.0.0/8"})
    assert parse_trusted_proxies(settings.trusted_proxies) == PROXIES[1:2]


def test_uvicorn_trusts_the_same_proxies() -> None:
    assert uvicorn_proxy_options("") == {"proxy_headers": False}
    assert uvicorn_proxy_options("10.0.0.0/8") == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.0/8",
    }
