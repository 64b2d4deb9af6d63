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
    return parts.hostname, port if port is not None else (443 if parts.scheme == "https" else 80)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, when it is an IP address rather than a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_refused(address: IPAddress) -> bool:
    """True for an address that is not on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_refused(mapped)
    return not address.is_global or address.is_multicast
