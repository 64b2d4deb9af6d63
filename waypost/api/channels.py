"""/api/channels"""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import ListQuery, Page
from waypost.services.channels import Channel, ChannelCreate, ChannelUpdate


def create_channel(call: Call[ChannelCreate, None]) -> Channel:
    return call.hub.channels.create(call.body)


def list_channels(call: Call[None, ListQuery]) -> Page[Channel]:
    return call.hub.channels.list_page(call.query)


def get_channel(call: Call[None, None]) -> Channel:
    return call.hub.channels.get(parse_uuid(call.path["channel_id"], "channel"))


def update_channel(call: Call[ChannelUpdate, None]) -> Channel:
    return call.hub.channels.update(parse_uuid(call.path["channel_id"], "channel"), call.body)


def delete_channel(call: Call[None, None]) -> None:
    call.hub.channels.delete(parse_uuid(call.path["channel_id"], "channel"))


ITEM = "/api/channels/{channel_id}"
OPERATIONS = [
    Operation(
        "POST",
        "/api/channels",
        create_channel,
        "Create a channel",
        "Channels",
        body=ChannelCreate,
        response=Channel,
        status=201,
        errors=(400, 409),
    ),
    Operation(
        "GET",
        "/api/channels",
        list_channels,
        "List channels",
        "Channels",
        query=ListQuery,
        response=Page[Channel],
    ),
    Operation(
        "GET", ITEM, get_channel, "Read a channel", "Channels", response=Channel, errors=(404,)
    ),
    Operation(
        "PATCH",
        ITEM,
        update_channel,
        "Change a channel",
        "Channels",
        body=ChannelUpdate,
        response=Channel,
        errors=(400, 404, 409),
    ),
    Operation(
        "DELETE",
        ITEM,
        delete_channel,
        "Delete a channel without keys or activities",
        "Channels",
        status=204,
        errors=(404, 409),
    ),
]
