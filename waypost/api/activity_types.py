"""/api/activity-types"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import Page
from waypost.services.activity_types import (
    ActivityType,
    ActivityTypeCreate,
    ActivityTypeQuery,
    ActivityTypeUpdate,
    FieldViolationCount,
)


def create_activity_type(call: Call[ActivityTypeCreate, None]) -> ActivityType:
    return call.hub.types.create(call.body)


def list_activity_types(call: Call[None, ActivityTypeQuery]) -> Page[ActivityType]:
    return call.hub.types.list_page(call.query)


def get_activity_type(call: Call[None, None]) -> ActivityType:
    return call.hub.types.get(parse_uuid(call.path["type_id"], "activity type"))


def update_activity_type(call: Call[ActivityTypeUpdate, None]) -> ActivityType:
    return call.hub.types.update(parse_uuid(call.path["type_id"], "activity type"), call.body)


def enable_activity_type(call: Call[None, None]) -> ActivityType:
    return call.hub.types.set_enabled(parse_uuid(call.path["type_id"], "activity type"), True)


def disable_activity_type(call: Call[None, None]) -> ActivityType:
    return call.hub.types.set_enabled(parse_uuid(call.path["type_id"], "activity type"), False)


def delete_activity_type(call: Call[None, None]) -> None:
    call.hub.types.delete(parse_uuid(call.path["type_id"], "activity type"))


def activity_type_violations(call: Call[None, None]) -> list[FieldViolationCount]:
    return call.hub.types.violations(parse_uuid(call.path["type_id"], "activity type"))


ITEM = "/api/activity-types/{type_id}"
TAG = "Activity types"
OPERATIONS = [
    Operation(
        "POST",
        "/api/activity-types",
        create_activity_type,
        "Define an activity type",
        TAG,
        body=ActivityTypeCreate,
        response=ActivityType,
        status=201,
        errors=(400, 409, 413),
    ),
    Operation(
        "GET",
        "/api/activity-types",
        list_activity_types,
        "List activity types",
        TAG,
        query=ActivityTypeQuery,
        response=Page[ActivityType],
    ),
    Operation(
        "GET",
        ITEM,
        get_activity_type,
        "Read an activity type",
        TAG,
        response=ActivityType,
        errors=(404,),
    ),
    Operation(
        "PATCH",
        ITEM,
        update_activity_type,
        "Change an activity type",
        TAG,
        body=ActivityTypeUpdate,
        response=ActivityType,
        errors=(400, 404, 409, 413),
    ),
    Operation(
        "POST",
        ITEM + "/enable",
        enable_activity_type,
        "Enable an activity type",
        TAG,
        response=ActivityType,
        errors=(404,),
    ),
    Operation(
        "POST",
        ITEM + "/disable",
        disable_activity_type,
        "Disable an activity type",
        TAG,
        response=ActivityType,
        errors=(404,),
    ),
    Operation(
        "DELETE",
        ITEM,
        delete_activity_type,
        "Delete an activity type (not built-in ones, nor ones with activities)",
        TAG,
        status=204,
        errors=(404, 409),
    ),
    Operation(
        "GET",
        ITEM + "/violations",
        activity_type_violations,
        "Counts of field violations stored by an accept_and_flag type",
        TAG,
        response=list[FieldViolationCount],
        errors=(404,),
    ),
]
