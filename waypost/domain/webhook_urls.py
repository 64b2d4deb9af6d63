"""Which webhook URLs Waypost calls: the URL's form, and the addresses it refuses to reach.

A webhook URL names a server Waypost will send contacts' data to, from inside the network it
runs in; unless ``WAYPOST_WEBHOOK_ALLOW_PRIVATE`` is set, an address that is not on the public
internet (loopback, private, link-local, the cloud metadata address 169.254.169.254, multicast,
reserved) is refused (docs/playbooks.md, "Webhook endpoints").
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadWebhookUrl(ValueError):
    """The text is not a URL Waypost can send webhooks to; the message says why."""


def check_url(url: str) -> tuple[str, int]:
    """Check the URL's form and return its host and port; raise BadWebhookUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise BadWebhookUrl(f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise BadWebhookUrl("a webhook URL holds no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadWebhookUrl(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadWebhookUrl("a webhook URL starts with https:// (or http://)")
    if not parts.hostname:
        raise BadWebhookUrl("a webhook URL names a host, as in https://example.com/hooks")
    if parts.username is not None or parts.password is not None:
        raise BadWebhookUrl(
            "a webhook URL holds no user name or password; receivers verify the signature"
        )
    if parts.fragment:
        raise BadWebhookUrl("a webhook URL has no #fragment")
    if port == 0:
        raise BadWebhookUrl("a webhook URL's port is from 1 to 65535")
    return parts.hostname, port if port is not None else (443 if parts.scheme == "https" else 80)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, when it is an IP address rather than a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# IPv6 forms whose last 32 bits are an IPv4 address and that mean that address: IPv4-compatible
# (deprecated, RFC 4291), IPv4-translated (RFC 2765) and the well-known NAT64 prefix (RFC 6052).
# IPv4-mapped and 6to4 addresses are ipaddress's ``ipv4_mapped`` and ``sixtofour``.
_EMBEDDING = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the forms that embed
    one (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4)."""
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is not None:
        return embedded
    if any(address in network for network in _EMBEDDING):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# The IPv6 documentation prefixes (RFC 3849, RFC 9637): addresses for examples, which no
# receiver has. The ipaddress tables of older Pythons (3.11 among them) do not know 3fff::/20
# and count it as global, so both are refused here by name, whatever the Python.
_DOCUMENTATION = (
    ipaddress.IPv6Network("2001:db8::/32"),
    ipaddress.IPv6Network("3fff::/20"),
)


def is_refused(address: IPAddress) -> bool:
    """True for an address that is not on the public internet. An IPv6 address that embeds an
    IPv4 address is judged by that address (``::127.0.0.1``, ``64:ff9b::7f00:1`` and
    ``::ffff:0:127.0.0.1`` are loopback); a site-local one (``fec0::/10``, deprecated) is
    private; reserved space (``64:ff9b:1::/48``, local NAT64, among it) and the documentation
    prefixes (``2001:db8::/32``, ``3fff::/20``) are refused."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_refused(embedded)
        if address.is_site_local or any(address in network for network in _DOCUMENTATION):
            return True
    return not address.is_global or address.is_multicast or address.is_reserved


def url_origin(url: str) -> str:
    """``https://hooks.example.com/T0/B1/secret`` -> ``https://hooks.example.com``: where an
    endpoint is, without the path and query that may hold its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
