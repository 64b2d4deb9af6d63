"""A contact's data and its erasure, the suppressions erasures leave, and the erasure log
(docs/data-lifecycle.md#a-contacts-data). Admins only: the ``privacy`` area."""

from __future__ import annotations

from starlette.responses import StreamingResponse

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import ListQuery, Page
from waypost.services.contact_export import ContactDataDocument
from waypost.services.erasure import Actor, ErasureReport
from waypost.services.suppressions import Erasure, Suppression, SuppressionQuery


def export_contact(call: Call[None, None]) -> StreamingResponse:
    document = call.hub.contact_exports.document(parse_uuid(call.path["contact_id"], "contact"))
    return StreamingResponse(
        document.chunks(),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{document.filename}"',
            "Cache-Control": "no-store",
        },
    )


def erase_contact(call: Call[None, None]) -> ErasureReport:
    contact = parse_uuid(call.path["contact_id"], "contact")
    if call.principal is not None:
        actor = Actor("key", call.principal.key_id)
    else:
        actor = Actor("user", call.user_id)
    return call.hub.erasure.erase(contact, actor)


def list_suppressions(call: Call[None, SuppressionQuery]) -> Page[Suppression]:
    return call.hub.suppressions.list_page(call.query)


def lift_suppression(call: Call[None, None]) -> None:
    call.hub.suppressions.lift(parse_uuid(call.path["suppression_id"], "suppression"))


def list_erasures(call: Call[None, ListQuery]) -> Page[Erasure]:
    return call.hub.suppressions.erasures_page(call.query)


TAG = "Personal data"
CONTACT = "/api/contacts/{contact_id}"
OPERATIONS = [
    Operation(
        "GET",
        CONTACT + "/export",
        export_contact,
        "Everything stored about a contact, as one JSON document to hand to the person",
        TAG,
        response=ContactDataDocument,
        errors=(404, 409),
        description="The contact and the contacts merged into it, consents with their "
        "history, group memberships with their history, merges, playbook runs, activities and "
        "the rejected activities naming it; streamed, as a download. 409 for a contact merged "
        "into another: export that one.",
    ),
    Operation(
        "POST",
        CONTACT + "/erase",
        erase_contact,
        "Erase a contact and the contacts merged into it, and suppress their identities",
        TAG,
        response=ErasureReport,
        errors=(404, 409),
        description="Deletes everything the export shows, the contact's rows of the rollups "
        "and daily counts, its webhook messages, and other contacts' claims of its emails; "
        "answers the rows deleted by kind. Later activities, identifies and Segment messages "
        "naming its emails, external ids or ids are refused with 403 contact_erased and stored "
        "nowhere. 409 for a contact merged into another: erase that one.",
    ),
    Operation(
        "GET",
        "/api/suppressions",
        list_suppressions,
        "The identities erasures suppressed (keyed hashes: a value is never shown)",
        TAG,
        query=SuppressionQuery,
        response=Page[Suppression],
    ),
    Operation(
        "DELETE",
        "/api/suppressions/{suppression_id}",
        lift_suppression,
        "Lift a suppression: the identity may be tracked again from now on",
        TAG,
        status=204,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/erasures",
        list_erasures,
        "The erasure log: who erased, when, how many rows of each kind (no personal data)",
        TAG,
        query=ListQuery,
        response=Page[Erasure],
    ),
]
