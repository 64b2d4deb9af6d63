"""/api/keys"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import Page
from waypost.services.keys import ApiKey, CreatedKey, KeyCreate, KeyQuery, KeyUpdate


def create_key(call: Call[KeyCreate, None]) -> CreatedKey:
    return call.hub.keys.create(call.body)


def list_keys(call: Call[None, KeyQuery]) -> Page[ApiKey]:
    return call.hub.keys.list_page(call.query)


def get_key(call: Call[None, None]) -> ApiKey:
    return call.hub.keys.get(parse_uuid(call.path["key_id"], "API key"))


def update_key(call: Call[KeyUpdate, None]) -> ApiKey:
    return call.hub.keys.update(parse_uuid(call.path["key_id"], "API key"), call.body)


def disable_key(call: Call[None, None]) -> ApiKey:
    return call.hub.keys.update(
        parse_uuid(call.path["key_id"], "API key"), KeyUpdate(enabled=False)
    )


def enable_key(call: Call[None, None]) -> ApiKey:
    return call.hub.keys.update(parse_uuid(call.path["key_id"], "API key"), KeyUpdate(enabled=True))


def delete_key(call: Call[None, None]) -> None:
    call.hub.keys.delete(parse_uuid(call.path["key_id"], "API key"))


ITEM = "/api/keys/{key_id}"
OPERATIONS = [
    Operation(
        "POST",
        "/api/keys",
        create_key,
        "Create an API key (the key is shown only here)",
        "Keys",
        body=KeyCreate,
        response=CreatedKey,
        status=201,
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/keys",
        list_keys,
        "List API keys (prefix and last four only)",
        "Keys",
        query=KeyQuery,
        response=Page[ApiKey],
    ),
    Operation("GET", ITEM, get_key, "Read an API key", "Keys", response=ApiKey, errors=(404,)),
    Operation(
        "PATCH",
        ITEM,
        update_key,
        "Rename, disable or enable an API key",
        "Keys",
        body=KeyUpdate,
        response=ApiKey,
        errors=(400, 404),
    ),
    Operation(
        "POST",
        ITEM + "/disable",
        disable_key,
        "Disable an API key",
        "Keys",
        response=ApiKey,
        errors=(404,),
    ),
    Operation(
        "POST",
        ITEM + "/enable",
        enable_key,
        "Enable an API key",
        "Keys",
        response=ApiKey,
        errors=(404,),
    ),
    Operation("DELETE", ITEM, delete_key, "Delete an API key", "Keys", status=204, errors=(404,)),
]
