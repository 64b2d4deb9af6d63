"""The address check of a webhook URL, with the name resolved: at creation and before every
delivery, since what a name resolves to can change (docs/playbooks.md, "Webhook endpoints").
A delivery connects to the addresses its check returned, not to the name resolved again."""

from __future__ import annotations

import ipaddress
import socket

from waypost.domain.webhook_urls import BadWebhookUrl, check_url, is_refused, literal_address
from waypost.error_words import quoted


def check_destination(url: str, allow_private: bool) -> tuple[str, ...] | None:
    """Raise BadWebhookUrl when ``url`` is malformed, or (unless ``allow_private``) when its
    host is or resolves to an address that is not on the public internet. A name that does
    not resolve is refused too: nothing could be delivered to it.

    Return the addresses checked, in the order the resolver gave them: a call to ``url`` goes
    to one of them and nowhere else, since resolving the name again could answer another
    (DNS rebinding). None with ``allow_private``: nothing was checked, nor resolved."""
    host, port = check_url(url)
    if allow_private:
        return None
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise BadWebhookUrl(f"the host {quoted(host)} does not resolve: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if is_refused(address):
            raise BadWebhookUrl(
                f"the host {quoted(host)} is not a public address ({address}: loopback, "
                "private, link-local, reserved or for documentation); webhooks go to public "
                "addresses unless "
                "WAYPOST_WEBHOOK_ALLOW_PRIVATE=1"
            )
    return tuple(dict.fromkeys(str(address) for address in addresses))
