"""The client's address, and the key every per-address limit and the login throttle count it
under.

A request's peer is the client unless the peer is one of ``WAYPOST_TRUSTED_PROXIES``. Only
then is ``X-Forwarded-For`` read, from the right: each trusted proxy appended the address it
saw, so the right-most address that is not a trusted proxy is the client. Anything to its left
was sent by the client and could be anything. See docs/configuration.md#behind-a-reverse-proxy.

An IPv4 client is counted by its address. An IPv6 client is counted by its /64 network: a
subscriber, a host or a cloud machine is given a whole /64 (often more), and picks any of its
2^64 addresses at will, so a limit on one address would hold nobody.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Networks = tuple[Network, ...]


def parse_trusted_proxies(text: str) -> Networks:
    """``"10.0.0.1, 192.168.0.0/16"``: the networks of the proxies to trust. ValueError names
    an entry that is neither an address nor a network."""
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is neither an IP address nor a CIDR network") from None
    return tuple(networks)


def _trusted(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_chain(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The addresses of every ``X-Forwarded-For`` header, in order (several headers are one
    list, as HTTP says of repeated headers)."""
    chain: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            chain += [part.strip() for part in value.decode("latin-1").split(",")]
    return [part for part in chain if part]


def client_ip(scope: Mapping[str, object], networks: Networks) -> str:
    """The client's address of an ASGI request: its peer, or behind trusted proxies the
    right-most forwarded address that is not one of them."""
    client = scope.get("client")
    peer = str(client[0]) if isinstance(client, tuple | list) and client else "unknown"
    if not networks or not _trusted(peer, networks):
        return peer
    headers = scope.get("headers")
    chain = forwarded_chain(headers if isinstance(headers, list) else [])
    address = peer
    for hop in reversed(chain):
        address = hop
        if not _trusted(hop, networks):
            break
    return address


def address_key(address: str) -> str:
    """The key per-address limits count ``address`` under: an IPv4 address as it is written
    canonically, an IPv6 address as its /64 network (``2001:db8:1:2::/64``), an IPv4 address
    mapped into IPv6 (``::ffff:192.0.2.1``, as a dual-stack socket reports an IPv4 peer) as that
    IPv4 address. Anything that is not an address (``unknown``) stays as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    # int() drops a zone (``fe80::1%eth0``): a link-local /64 is the same network on any link.
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


def client_key(scope: Mapping[str, object], networks: Networks) -> str:
    """The key per-address limits count the client of an ASGI request under:
    :func:`address_key` of :func:`client_ip`."""
    return address_key(client_ip(scope, networks))


def uvicorn_proxy_options(trusted_proxies: str) -> dict[str, Any]:
    """uvicorn's own proxy handling (the client and ``X-Forwarded-Proto``'s scheme) with the
    same trust as :func:`client_ip`: by default uvicorn trusts loopback, and any process on the
    machine could then claim any address."""
    if not parse_trusted_proxies(trusted_proxies):
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted_proxies}
