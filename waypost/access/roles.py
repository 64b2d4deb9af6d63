"""Who may do what: the areas of Waypost, and which role may read or change each.

One table serves the UI's pages and navigation and the admin API under a session cookie, so
the two never disagree. An area not listed for a role is refused to it: a new area is for
admins until it is added here.
"""

from __future__ import annotations

from typing import Literal

from waypost.services.users import Role

Area = Literal[
    "dashboard",
    "types",
    "contacts",
    "activities",
    "rejected",
    "groups",
    "reports",
    "playbooks",
    "webhooks",
    "channels",
    "keys",
    "consents",
    "users",
    "account",
    # A contact's data, its erasure, suppressions and the erasure log: admins only.
    "privacy",
]

# What each role may read, and what it may change. Admins may do everything.
READ: dict[Role, frozenset[str]] = {
    "marketer": frozenset(
        {
            "dashboard",
            "types",
            "contacts",
            "activities",
            "rejected",
            "groups",
            "reports",
            "playbooks",
            "consents",
            "account",
        }
    ),
}
WRITE: dict[Role, frozenset[str]] = {
    "marketer": frozenset(
        {
            "types",
            "contacts",
            "activities",
            "rejected",
            "groups",
            "reports",
            "playbooks",
            "account",
        }
    ),
}

# The admin API's operations are grouped by tag; each tag belongs to an area.
TAG_AREAS: dict[str, Area] = {
    "Channels": "channels",
    "Keys": "keys",
    "Activity types": "types",
    "Consents": "consents",
    "Contacts": "contacts",
    "Activities": "activities",
    "Rejected activities": "rejected",
    "Contact groups": "groups",
    "Reports": "reports",
    "Playbooks": "playbooks",
    "Webhooks": "webhooks",
    "Personal data": "privacy",
}


def can(role: Role, area: str | None, write: bool = False) -> bool:
    """Whether ``role`` may read (or, with ``write``, change) ``area``."""
    if role == "admin":
        return True
    if area is None:
        return False
    allowed = WRITE if write else READ
    return area in allowed.get(role, frozenset())
