"""Channel rules: kinds, allowed origins and languages."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

ChannelKind = Literal["website", "headless"]

LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")


def normalise_origin(origin: str) -> str:
    """``https://Example.com:443/`` -> ``https://example.com``; ValueError if not an origin.

    An origin is a scheme, a host and an optional port, as browsers send in ``Origin``.
    ``*`` is not accepted: a channel names the sites it trusts.
    """
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{origin!r} has more than scheme, host and port")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin!r} has an invalid port") from None
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def is_valid_language(code: str) -> bool:
    """A language code such as ``en``, ``en-US`` or ``cs``."""
    return LANGUAGE.match(code) is not None


def enforces_by_default(kind: ChannelKind, tracking_consent: str | None) -> bool:
    """Whether a channel enforces its tracking consent when not told: a website channel that
    names one does (Kentico logs activities on website channels only for contacts who
    agreed to be tracked, from server-side code as from the page); a headless channel leaves
    consent to the application, as Kentico's headless tracking does."""
    return kind == "website" and tracking_consent is not None
