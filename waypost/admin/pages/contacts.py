"""Contacts: search by email or name, and a contact's page (fields, consents, groups, and its
activity log filtered by type and time, newest first, a page at a time).

A merged contact keeps its page, which says where it went: its activities, consents and
external ids moved to the contact it was merged into.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from waypost.admin import listing
from waypost.admin.pages.activities import channel_names, read_log
from waypost.admin.views import NavItem, Page, View, every
from waypost.errors import ApiError
from waypost.pagination import ListQuery
from waypost.records.consents import Agreement
from waypost.services.consents import Consent
from waypost.services.contacts import Contact
from waypost.services.playbooks import PlaybookRun, RunQuery

NAV = NavItem("Contacts", "/admin/contacts", "contacts", 30)

FIELD_LABELS = {
    "email": "Email",
    "first_name": "First name",
    "middle_name": "Middle name",
    "last_name": "Last name",
    "birthday": "Birthday",
    "mobile_phone": "Mobile phone",
    "business_phone": "Business phone",
    "company_name": "Company",
    "job_title": "Job title",
    "address1": "Address",
    "city": "City",
    "zip": "ZIP code",
    "country": "Country",
    "state": "State",
    "notes": "Notes",
}
RECENT_CONSENTS = 10
RECENT_RUNS = 20


def display_name(first: str | None, last: str | None, email: str | None) -> str:
    """How a contact is named on the pages: its name, else its email, else anonymous."""
    name = " ".join(part for part in (first, last) if part)
    return name or email or "Anonymous contact"


def field_rows(contact: Contact) -> list[tuple[str, str]]:
    """The contact's fields that have a value, labelled, in Kentico's order."""
    rows = []
    for name, label in FIELD_LABELS.items():
        value = getattr(contact, name)
        if value is not None and value != "":
            rows.append((label, str(value)))
    return rows


def shown(value: Any) -> str:
    """A custom attribute's value as text: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class ConsentRow:
    """A consent and the contact's current state of it (from the newest history row)."""

    consent: Consent
    latest: Agreement | None


def consent_rows(consents: list[Consent], history: list[Agreement]) -> list[ConsentRow]:
    """Every consent with the contact's newest agreement or revocation (history is newest
    first); consents the contact never answered have none."""
    latest: dict[str, Agreement] = {}
    for agreement in history:
        latest.setdefault(agreement.consent, agreement)
    return [ConsentRow(consent, latest.get(consent.code_name)) for consent in consents]


# -- handlers -------------------------------------------------------------------------------


def list_contacts(page: Page) -> Response:
    params = page.request.query_params
    q = params.get("q", "").strip()
    error: ApiError | None = None
    found = None
    paging = None
    try:
        as_id = _uuid(q)
        if as_id is not None:
            return _open_by_id(page, as_id)
        found = page.hub.contacts.search(q, listing.limit(params), params.get("cursor") or None)
        paging = listing.paging("/admin/contacts", params, found.next)
    except ApiError as exc:
        error = exc
    return page.render(
        "contacts/list.html",
        error.status if error else 200,
        q=q,
        contacts=found.data if found else [],
        paging=paging,
        error=error,
        display_name=display_name,
    )


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _open_by_id(page: Page, contact_id: uuid.UUID) -> Response:
    page.hub.contacts.get(contact_id)  # 404, shown at the search form, when there is none
    return page.redirect(f"/admin/contacts/{contact_id}")


def show_contact(page: Page) -> Response:
    hub = page.hub
    contact_id = page.uuid_param("contact_id", "contact")
    contact = hub.contacts.get(contact_id)
    context: dict[str, Any] = {
        "contact": contact,
        "name": display_name(contact.first_name, contact.last_name, contact.email),
        "fields": field_rows(contact),
        "attributes": sorted((k, shown(v)) for k, v in contact.attributes.items()),
        "survivor": None,
        "log": None,
        "consents": [],
        "history": [],
        "more_history": False,
        "groups": [],
        "runs": None,
    }
    status = 200
    if contact.merged_into is not None:
        survivor = hub.contacts.get(contact.merged_into)
        context["survivor"] = (
            survivor,
            display_name(survivor.first_name, survivor.last_name, survivor.email),
        )
        return page.render("contacts/show.html", **context)
    history = hub.consents.history_page(contact_id, ListQuery(limit=1000)).data
    all_consents = every(lambda c: hub.consents.list_page(ListQuery(limit=1000, cursor=c)))
    context["consents"] = consent_rows(all_consents, history)
    context["history"] = history[:RECENT_CONSENTS]
    context["more_history"] = len(history) > RECENT_CONSENTS
    context["groups"] = every(
        lambda c: hub.groups.contact_groups(contact_id, ListQuery(limit=1000, cursor=c))
    )
    if page.can("playbooks"):
        context["runs"] = playbook_runs(page, contact_id)
    log = read_log(page, f"/admin/contacts/{contact_id}", contact_id, anchor="activity-log")
    context["log"] = log
    if log.error is not None:
        status = log.error.status
    return page.render("contacts/show.html", status, **context)


@dataclass(frozen=True)
class RunRow:
    """A playbook run for the contact's page: when, which playbook, fired by what."""

    run: PlaybookRun
    playbook: str


def playbook_runs(page: Page, contact_id: uuid.UUID) -> list[RunRow]:
    """The contact's newest playbook runs, with their playbooks' names."""
    runs = page.hub.playbooks.contact_runs(contact_id, RunQuery(limit=RECENT_RUNS)).data
    if not runs:
        return []
    named = {
        p.id: p.name
        for p in every(lambda c: page.hub.playbooks.list_page(ListQuery(limit=1000, cursor=c)))
    }
    return [RunRow(run, named.get(run.playbook, "")) for run in runs]


def consent_history(page: Page) -> Response:
    hub = page.hub
    contact_id = page.uuid_param("contact_id", "contact")
    contact = hub.contacts.get(contact_id)
    params = page.request.query_params
    error: ApiError | None = None
    items: list[Agreement] = []
    paging = None
    try:
        query = ListQuery(limit=listing.limit(params), cursor=params.get("cursor") or None)
        found = hub.consents.history_page(contact_id, query)
        items = found.data
        paging = listing.paging(f"/admin/contacts/{contact_id}/consents", params, found.next)
    except ApiError as exc:
        error = exc
    return page.render(
        "contacts/consents.html",
        error.status if error else 200,
        contact=contact,
        name=display_name(contact.first_name, contact.last_name, contact.email),
        history=items,
        channels=channel_names(hub),
        paging=paging,
        error=error,
    )


ITEM = "/admin/contacts/{contact_id}"
VIEWS = [
    View("/admin/contacts", list_contacts, "contacts"),
    View(ITEM, show_contact, "contacts"),
    View(ITEM + "/consents", consent_history, "contacts"),
]
