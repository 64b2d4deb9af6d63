"""The destination check with the name resolved: every address the name resolves to is
judged, IPv6 forms by what they mean, and the addresses checked are what a delivery connects
to."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from waypost.domain.webhook_urls import BadWebhookUrl
from waypost.services.webhook_addresses import check_destination

Info = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def resolving(monkeypatch: pytest.MonkeyPatch, name: str, *addresses: str) -> list[str]:
    """Make ``name`` resolve to ``addresses``; the list returned records each resolution."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        infos: list[Info] = [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return calls


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[::ffff:0:127.0.0.1]/",  # IPv4-translated
        "http://[fec0::1]/",  # site-local
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
        "http://[2001:db8::1]/",  # documentation (RFC 3849)
        "http://[3fff::1]/",  # documentation (RFC 9637), global in older ipaddress tables
    ],
)
def test_ipv6_forms_of_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(BadWebhookUrl, match="not a public address"):
        check_destination(url, allow_private=False)
    assert check_destination(url, allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    ["::127.0.0.1", "64:ff9b::7f00:1", "::ffff:0:7f00:1", "fec0::1", "2001:db8::1", "3fff::1"],
)
def test_a_name_resolving_to_such_a_form_is_refused(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    resolving(monkeypatch, "hooks.example", "93.184.216.34", address)
    with pytest.raises(BadWebhookUrl) as caught:
        check_destination("https://hooks.example/in", allow_private=False)
    assert f"not a public address ({ipaddress.ip_address(address)}:" in str(caught.value)


def test_the_addresses_checked_are_returned_in_the_resolver_s_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = resolving(
        monkeypatch, "hooks.example", "93.184.216.34", "2606:4700::1111", "93.184.216.34"
    )
    assert check_destination("https://hooks.example/in", allow_private=False) == (
        "93.184.216.34",
        "2606:4700::1111",
    )
    assert calls == ["hooks.example"]
    assert check_destination("http://93.184.216.34:8080/in", allow_private=False) == (
        "93.184.216.34",
    )
    # With private addresses allowed nothing is checked, nor resolved.
    assert check_destination("https://hooks.example/in", allow_private=True) is None
    assert calls == ["hooks.example"]
