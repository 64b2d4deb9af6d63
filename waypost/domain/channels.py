"""Channel rules: kinds, allowed origins and languages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

import idna

from waypost.error_words import quoted

ChannelKind = Literal["website", "headless"]

LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")
# The longest language code kept (the consent texts' and channels' columns).
MAX_LANGUAGE_LENGTH = 16

# How many origins a channel allows: a site's domains, their www and staging variants; a list
# longer than this is a mistake (or an attack on the check), not a set of sites.
MAX_ORIGINS = 100
# DNS: a host name of at most 253 characters, in labels of at most 63 (RFC 1035).
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
# What a host name in an Origin header holds (in its ASCII form; browsers also allow '_').
HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def normalise_origin(origin: str) -> str:
    """``https://Example.com:443/`` -> ``https://example.com``; ValueError if not an origin.

    An origin is a scheme, a host and an optional port, as browsers send in ``Origin``.
    ``*`` is not accepted: a channel names the sites it trusts. A host in other scripts is
    stored in its ASCII form (``ä.com`` -> ``xn--4ca.com``), which is what browsers send.
    """
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        raise ValueError(
            f"{quoted(origin)} is not an origin like https://www.example.com"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{quoted(origin)} is not an origin like https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{quoted(origin)} has more than scheme, host and port")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else _ascii_host(host, origin)
    default_port = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{quoted(origin)} has an invalid port") from None
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def _ascii_host(host: str, origin: str) -> str:
    """The host as browsers send it in ``Origin``: international names in their IDNA ASCII
    form; ValueError for a host DNS cannot hold or punycode that does not decode."""
    if len(host) > MAX_HOST_LENGTH * 4:  # not worth converting: too long whatever it holds
        raise ValueError(f"{quoted(origin)} has a host of more than {MAX_HOST_LENGTH} characters")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(
                f"{quoted(origin)} has a host that is not a valid international domain name "
                f"({exc}); give its ASCII (xn--) form"
            ) from None
    if len(host.rstrip(".")) > MAX_HOST_LENGTH:
        raise ValueError(f"{quoted(origin)} has a host of more than {MAX_HOST_LENGTH} characters")
    if not set(host) <= HOST_CHARACTERS:
        raise ValueError(
            f"{quoted(origin)} has a host with characters no browser sends in Origin; a host "
            "holds letters, digits, '-', '_' and '.'"
        )
    for label in host.split("."):
        if len(label) > MAX_LABEL_LENGTH:
            raise ValueError(
                f"{quoted(origin)} has a host with a label of more than {MAX_LABEL_LENGTH} "
                "characters"
            )
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError:
                raise ValueError(
                    f"{quoted(origin)} has a host with invalid punycode ({quoted(label)})"
                ) from None
    return host


def is_valid_language(code: str) -> bool:
    """A language code such as ``en``, ``en-US`` or ``cs``."""
    return LANGUAGE.match(code) is not None


def pick_language(available: Iterable[str], wanted: str | None, fallback: str) -> str | None:
    """Which of ``available`` (the languages a consent has texts in) answers a request for
    ``wanted``: the same code in any letter case (language codes are case-insensitive:
    ``en-us`` is ``en-US``), else its language alone (``en`` for ``en-US``), else ``fallback``
    (the channel's default language) the same way; None when none of them is there."""
    by_case = {code.lower(): code for code in available}
    for candidate in (wanted, fallback):
        # What is not a language code (the query's value is the caller's) asks for none.
        if (
            not candidate
            or len(candidate) > MAX_LANGUAGE_LENGTH
            or not is_valid_language(candidate)
        ):
            continue
        code = candidate.lower()
        while code:
            if code in by_case:
                return by_case[code]
            code = code.rpartition("-")[0]
    return None


def same_language_twice(codes: Iterable[str]) -> str | None:
    """A code of ``codes`` that another one repeats in another letter case (``en``, ``EN``)."""
    seen: set[str] = set()
    for code in codes:
        if code.lower() in seen:
            return code
        seen.add(code.lower())
    return None


def enforces_by_default(kind: ChannelKind, tracking_consent: str | None) -> bool:
    """Whether a channel enforces its tracking consent when not told: a website channel that
    names one does (Kentico logs activities on website channels only for contacts who
    agreed to be tracked, from server-side code as from the page); a headless channel leaves
    consent to the application, as Kentico's headless tracking does."""
    return kind == "website" and tracking_consent is not None
