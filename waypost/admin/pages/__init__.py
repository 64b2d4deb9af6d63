"""The admin UI's pages: one module per area, registered here, in one place.

A page module holds its handlers and two names: ``NAV``, its entry in the navigation (or None),
and ``VIEWS``, its routes. To add a page, write the module (see docs/admin-ui.md) and list it in
``MODULES``; the navigation shows it, in ``NAV.order``, to the roles that may read its area.
"""

from __future__ import annotations

from types import ModuleType

from waypost.admin.pages import (
    account,
    activities,
    channels,
    consents,
    contacts,
    dashboard,
    erasures,
    groups,
    home,
    keys,
    playbooks,
    rejected,
    reports,
    types,
    users,
    webhooks,
)
from waypost.admin.views import NavItem, View

# Navigation order: 10 dashboard, 20 activity types, 30 contacts, 40 activities, 50 rejected,
# 60 groups, 62 reports, 65 playbooks, 70 channels, 80 keys, 85 webhooks, 90 consents, 100 users,
# 105 erasures.
MODULES: tuple[ModuleType, ...] = (
    types, channels, keys, consents, users, erasures, groups, reports, playbooks, dashboard,
    contacts, activities, rejected, webhooks, account, home,
)  # fmt: skip


def views() -> list[View]:
    """Every module's views, in the order of ``MODULES`` (the first match of a path wins)."""
    return [view for module in MODULES for view in module.VIEWS]


def nav_items() -> list[NavItem]:
    items = [module.NAV for module in MODULES if getattr(module, "NAV", None) is not None]
    return sorted(items, key=lambda item: item.order)
