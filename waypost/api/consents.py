"""/api/consents"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import ListQuery, Page
from waypost.services.consents import Consent, ConsentCreate, ConsentUpdate


def create_consent(call: Call[ConsentCreate, None]) -> Consent:
    return call.hub.consents.create(call.body)


def list_consents(call: Call[None, ListQuery]) -> Page[Consent]:
    return call.hub.consents.list_page(call.query)


def get_consent(call: Call[None, None]) -> Consent:
    return call.hub.consents.get(parse_uuid(call.path["consent_id"], "consent"))


def update_consent(call: Call[ConsentUpdate, None]) -> Consent:
    return call.hub.consents.update(parse_uuid(call.path["consent_id"], "consent"), call.body)


def delete_consent(call: Call[None, None]) -> None:
    call.hub.consents.delete(parse_uuid(call.path["consent_id"], "consent"))


ITEM = "/api/consents/{consent_id}"
TAG = "Consents"
OPERATIONS = [
    Operation(
        "POST",
        "/api/consents",
        create_consent,
        "Create a consent with its texts",
        TAG,
        body=ConsentCreate,
        response=Consent,
        status=201,
        errors=(400, 409),
    ),
    Operation(
        "GET",
        "/api/consents",
        list_consents,
        "List consents",
        TAG,
        query=ListQuery,
        response=Page[Consent],
    ),
    Operation("GET", ITEM, get_consent, "Read a consent", TAG, response=Consent, errors=(404,)),
    Operation(
        "PATCH",
        ITEM,
        update_consent,
        "Change a consent (a changed text raises its version)",
        TAG,
        body=ConsentUpdate,
        response=Consent,
        errors=(400, 404),
    ),
    Operation(
        "DELETE",
        ITEM,
        delete_consent,
        "Delete a consent nobody agreed to or revoked",
        TAG,
        status=204,
        errors=(404, 409),
    ),
]
