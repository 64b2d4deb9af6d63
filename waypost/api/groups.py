"""/api/groups and /api/contacts/{id}/groups"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import ListQuery, Page
from waypost.services.group_history import GroupHistory, HistoryQuery
from waypost.services.groups import (
    CheckQuery,
    ConditionCheck,
    ConditionCount,
    ContactGroup,
    Explained,
    Group,
    GroupCreate,
    GroupUpdate,
    Member,
    MemberQuery,
    Membership,
)


def create_group(call: Call[GroupCreate, None]) -> Group:
    return call.hub.groups.create(call.body)


def validate_group(call: Call[ConditionCheck, None]) -> ConditionCount:
    return call.hub.groups.validate(call.body)


def list_groups(call: Call[None, MemberQuery]) -> Page[Group]:
    return call.hub.groups.list_page(call.query)


def get_group(call: Call[None, None]) -> Group:
    return call.hub.groups.get(parse_uuid(call.path["group_id"], "group"))


def update_group(call: Call[GroupUpdate, None]) -> Group:
    return call.hub.groups.update(parse_uuid(call.path["group_id"], "group"), call.body)


def delete_group(call: Call[None, None]) -> None:
    call.hub.groups.delete(parse_uuid(call.path["group_id"], "group"))


def group_members(call: Call[None, MemberQuery]) -> Page[Member]:
    return call.hub.groups.members(parse_uuid(call.path["group_id"], "group"), call.query)


def group_history(call: Call[None, HistoryQuery]) -> GroupHistory:
    return call.hub.groups.history(parse_uuid(call.path["group_id"], "group"), call.query.days)


def check_membership(call: Call[None, CheckQuery]) -> Membership:
    return call.hub.groups.check(
        parse_uuid(call.path["group_id"], "group"),
        parse_uuid(call.path["contact_id"], "contact"),
        call.query.at,
    )


def explain_membership(call: Call[None, None]) -> Explained:
    return call.hub.groups.explain(
        parse_uuid(call.path["group_id"], "group"),
        parse_uuid(call.path["contact_id"], "contact"),
    )


def contact_groups(call: Call[None, ListQuery]) -> Page[ContactGroup]:
    return call.hub.groups.contact_groups(
        parse_uuid(call.path["contact_id"], "contact"), call.query
    )


ITEM = "/api/groups/{group_id}"
TAG = "Contact groups"
OPERATIONS = [
    Operation(
        "POST",
        "/api/groups",
        create_group,
        "Create a group; its members are computed at once",
        TAG,
        body=GroupCreate,
        response=Group,
        status=201,
        errors=(400, 409),
    ),
    Operation(
        "POST",
        "/api/groups/validate",
        validate_group,
        "Dry run: how many contacts a condition holds for, saving nothing",
        TAG,
        body=ConditionCheck,
        response=ConditionCount,
    ),
    Operation(
        "GET",
        "/api/groups",
        list_groups,
        "List groups",
        TAG,
        query=MemberQuery,
        response=Page[Group],
    ),
    Operation("GET", ITEM, get_group, "Read a group", TAG, response=Group, errors=(404,)),
    Operation(
        "PATCH",
        ITEM,
        update_group,
        "Change a group (a new condition recomputes it)",
        TAG,
        body=GroupUpdate,
        response=Group,
        errors=(400, 404, 409),
    ),
    Operation(
        "DELETE",
        ITEM,
        delete_group,
        "Delete a group no other group uses",
        TAG,
        status=204,
        errors=(404, 409),
    ),
    Operation(
        "GET",
        ITEM + "/members",
        group_members,
        "The group's members",
        TAG,
        query=MemberQuery,
        response=Page[Member],
        errors=(404,),
    ),
    Operation(
        "GET",
        ITEM + "/history",
        group_history,
        "Members at the end of each of the last days, with each day's entries and exits",
        TAG,
        query=HistoryQuery,
        response=GroupHistory,
        errors=(404,),
    ),
    Operation(
        "GET",
        ITEM + "/check/{contact_id}",
        check_membership,
        "Is the contact in the group (now, or at=T)? A lookup, not a recomputation",
        TAG,
        query=CheckQuery,
        response=Membership,
        errors=(404,),
    ),
    Operation(
        "GET",
        ITEM + "/explain/{contact_id}",
        explain_membership,
        "Which conditions held for the contact and which activities counted",
        TAG,
        response=Explained,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/contacts/{contact_id}/groups",
        contact_groups,
        "The groups a contact is in, with since when",
        TAG,
        query=ListQuery,
        response=Page[ContactGroup],
        errors=(404,),
    ),
]
