"""/api/playbooks and /api/contacts/{id}/playbook-runs"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import ListQuery, Page
from waypost.services.playbooks import (
    Playbook,
    PlaybookCreate,
    PlaybookRun,
    PlaybookUpdate,
    RunQuery,
)


def create_playbook(call: Call[PlaybookCreate, None]) -> Playbook:
    return call.hub.playbooks.create(call.body)


def list_playbooks(call: Call[None, ListQuery]) -> Page[Playbook]:
    return call.hub.playbooks.list_page(call.query)


def get_playbook(call: Call[None, None]) -> Playbook:
    return call.hub.playbooks.get(parse_uuid(call.path["playbook_id"], "playbook"))


def update_playbook(call: Call[PlaybookUpdate, None]) -> Playbook:
    return call.hub.playbooks.update(parse_uuid(call.path["playbook_id"], "playbook"), call.body)


def delete_playbook(call: Call[None, None]) -> None:
    call.hub.playbooks.delete(parse_uuid(call.path["playbook_id"], "playbook"))


def playbook_runs(call: Call[None, RunQuery]) -> Page[PlaybookRun]:
    return call.hub.playbooks.runs(parse_uuid(call.path["playbook_id"], "playbook"), call.query)


def contact_playbook_runs(call: Call[None, RunQuery]) -> Page[PlaybookRun]:
    return call.hub.playbooks.contact_runs(
        parse_uuid(call.path["contact_id"], "contact"), call.query
    )


ITEM = "/api/playbooks/{playbook_id}"
TAG = "Playbooks"
OPERATIONS = [
    Operation(
        "POST",
        "/api/playbooks",
        create_playbook,
        "Create a playbook: a trigger, an audience, a cadence and webhook actions",
        TAG,
        body=PlaybookCreate,
        response=Playbook,
        status=201,
        errors=(400, 409),
        description=(
            "A type, group, consent or endpoint that does not exist, a field filter the "
            "type cannot take, or an audience that does not parse is a 400 `invalid_field` "
            "naming the part at fault (`trigger.type`, `trigger.fields.amount`, "
            "`audience.all[0].activity`, `actions[0].endpoint`)."
        ),
    ),
    Operation(
        "GET",
        "/api/playbooks",
        list_playbooks,
        "List playbooks",
        TAG,
        query=ListQuery,
        response=Page[Playbook],
    ),
    Operation("GET", ITEM, get_playbook, "Read a playbook", TAG, response=Playbook, errors=(404,)),
    Operation(
        "PATCH",
        ITEM,
        update_playbook,
        "Change a playbook (enabled: false stops it; audience: null means everyone)",
        TAG,
        body=PlaybookUpdate,
        response=Playbook,
        errors=(400, 404, 409),
    ),
    Operation(
        "DELETE",
        ITEM,
        delete_playbook,
        "Delete a playbook and its runs",
        TAG,
        status=204,
        errors=(404,),
    ),
    Operation(
        "GET",
        ITEM + "/runs",
        playbook_runs,
        "The playbook's runs, newest first",
        TAG,
        query=RunQuery,
        response=Page[PlaybookRun],
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/contacts/{contact_id}/playbook-runs",
        contact_playbook_runs,
        "The playbook runs for a contact, newest first",
        TAG,
        query=RunQuery,
        response=Page[PlaybookRun],
        errors=(404,),
    ),
]
