"""Erasure (admins only): erasing a contact's data, which asks for its email to be typed, the
suppressions erasures left, with lift, and the erasure log (docs/data-lifecycle.md).

The contact page links here and to the export of the contact's data (``GET
/api/contacts/{id}/export``, which the session cookie opens).
"""

from __future__ import annotations

import uuid

from starlette.responses import Response

from waypost.admin import listing
from waypost.admin.pages.contacts import display_name
from waypost.admin.views import NavItem, Page, View
from waypost.domain.contact_fields import normalise_email
from waypost.errors import ApiError, invalid
from waypost.pagination import ListQuery
from waypost.services.contacts import Contact
from waypost.services.erasure import KINDS, Actor
from waypost.services.suppressions import SuppressionQuery

NAV = NavItem("Erasures", "/admin/suppressions", "privacy", 105, "settings")

# How the erasure report's kinds read in a sentence.
KIND_WORDS = {
    "contacts": "contacts",
    "activities": "activities",
    "rejected_activities": "rejected activities",
    "consent_agreements": "consent agreements",
    "external_ids": "external IDs",
    "group_memberships": "group memberships",
    "group_history": "group entries and exits",
    "playbook_runs": "playbook runs",
    "webhook_messages": "webhook messages",
    "webhook_attempts": "webhook attempts",
    "merges": "merge records",
    "browser_consent_requests": "browser consent requests",
    "rollups": "daily rollups",
    "claims": "claims of its email by other contacts",
}
assert set(KIND_WORDS) == set(KINDS)
RECENT_ERASURES = 20


def confirmation_of(contact: Contact) -> tuple[str, str]:
    """What must be typed to erase ``contact`` (its email, or its id without one), and the
    label that asks for it."""
    if contact.email:
        return contact.email, "Type the contact's email to confirm"
    return str(contact.id), "The contact has no email: type its ID to confirm"


def _confirmed(contact: Contact, typed: str) -> bool:
    expected, _ = confirmation_of(contact)
    if contact.email:
        return normalise_email(typed) == normalise_email(expected)
    return typed.strip().lower() == expected


def erase_contact(page: Page) -> Response:
    hub = page.hub
    contact_id = page.uuid_param("contact_id", "contact")
    contact = hub.contacts.get(contact_id)
    if contact.merged_into is not None:
        raise ApiError(
            409,
            "conflict",
            "This contact was merged into another, which holds its data now: erase that one.",
        )
    error: ApiError | None = None
    if page.request.method == "POST":
        if _confirmed(contact, page.form.get("confirmation")):
            report = hub.erasure.erase(contact_id, Actor("user", page.session.user.id))
            counts = ", ".join(
                f"{KIND_WORDS[kind]}: {n:,}" for kind, n in report.deleted.items() if n
            )
            return page.redirect(
                "/admin/contacts",
                f"Erased the contact ({counts}). Its emails and IDs are suppressed: nothing "
                "naming them is stored from now on.",
            )
        error = invalid("That is not what the contact holds; nothing was erased.", "confirmation")
    _, label = confirmation_of(contact)
    return page.render(
        "erasures/erase.html",
        error.status if error else 200,
        contact=contact,
        name=display_name(contact.first_name, contact.last_name, contact.email),
        label=label,
        kinds=[KIND_WORDS[kind] for kind in KINDS if kind != "contacts"],
        error=error,
    )


def list_suppressions(page: Page) -> Response:
    hub = page.hub
    params = page.request.query_params
    value = params.get("value", "").strip()
    error: ApiError | None = None
    found = None
    paging = None
    try:
        query = SuppressionQuery(
            limit=listing.limit(params), cursor=params.get("cursor") or None, value=value or None
        )
        found = hub.suppressions.list_page(query)
        paging = listing.paging("/admin/suppressions", params, found.next)
    except ApiError as exc:
        error = exc
    erasures = hub.suppressions.erasures_page(ListQuery(limit=RECENT_ERASURES)).data
    return page.render(
        "erasures/list.html",
        error.status if error else 200,
        suppressions=found.data if found else [],
        paging=paging,
        value=value,
        erasures=erasures,
        words=KIND_WORDS,
        error=error,
    )


def lift_suppression(page: Page) -> Response:
    suppression_id: uuid.UUID = page.uuid_param("suppression_id", "suppression")
    page.hub.suppressions.lift(suppression_id)
    return page.redirect(
        "/admin/suppressions",
        "Lifted the suppression: what it stood for may be tracked again from now on.",
    )


VIEWS = [
    View("/admin/contacts/{contact_id}/erase", erase_contact, "privacy", ("GET", "POST"), True),
    View("/admin/suppressions", list_suppressions, "privacy"),
    View("/admin/suppressions/{suppression_id}/lift", lift_suppression, "privacy", ("POST",)),
]
