"""/api/contacts"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.domain.activity import Activity
from waypost.pagination import ListQuery, Page
from waypost.records.consents import Agreement
from waypost.services.activities import ActivityQuery
from waypost.services.contact_search import ContactSearchQuery, ContactSummary
from waypost.services.contacts import Contact


def search_contacts(call: Call[None, ContactSearchQuery]) -> Page[ContactSummary]:
    query = call.query
    return call.hub.contacts.search(query.q, query.limit, query.cursor)


def get_contact(call: Call[None, None]) -> Contact:
    return call.hub.contacts.get(parse_uuid(call.path["contact_id"], "contact"))


def contact_activities(call: Call[None, ActivityQuery]) -> Page[Activity]:
    contact = parse_uuid(call.path["contact_id"], "contact")
    return call.hub.activities.contact_log(contact, call.query, call.extra)


def contact_consents(call: Call[None, ListQuery]) -> Page[Agreement]:
    return call.hub.consents.history_page(
        parse_uuid(call.path["contact_id"], "contact"), call.query
    )


ITEM = "/api/contacts/{contact_id}"
TAG = "Contacts"
OPERATIONS = [
    Operation(
        "GET",
        "/api/contacts",
        search_contacts,
        "Search contacts by the start of an email, a first or a last name",
        TAG,
        query=ContactSearchQuery,
        response=Page[ContactSummary],
    ),
    Operation("GET", ITEM, get_contact, "Read a contact", TAG, response=Contact, errors=(404,)),
    Operation(
        "GET",
        ITEM + "/activities",
        contact_activities,
        "A contact's activity log, newest first",
        TAG,
        query=ActivityQuery,
        response=Page[Activity],
        errors=(404,),
    ),
    Operation(
        "GET",
        ITEM + "/consents",
        contact_consents,
        "A contact's consent agreements and revocations, newest first",
        TAG,
        query=ListQuery,
        response=Page[Agreement],
        errors=(404,),
    ),
]
