"""Channels (admins only): the list, the create and edit form, deleting an unused channel."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.forms import Form
from waypost.admin.views import NavItem, Page, View, every
from waypost.errors import ApiError, from_validation_error
from waypost.pagination import ListQuery
from waypost.services.channels import Channel, ChannelCreate, ChannelUpdate
from waypost.services.keys import KeyQuery

NAV = NavItem("Channels", "/admin/channels", "channels", 70, "settings")

KINDS = (
    ("website", "Website: pages with the browser tracker (publishable keys)"),
    ("headless", "Headless: apps and services (tracking keys)"),
)
UNKNOWN_EVENTS = (
    ("reject", "Reject them (kept as rejected activities)"),
    (
        "draft",
        "Store them under a draft type, for a marketer to approve (while fewer draft types "
        "than WAYPOST_MAX_DRAFT_TYPES await approval; past it, kept as rejected)",
    ),
)


ENFORCE_OPTIONS = (
    ("", "As the kind says: enforced on a website channel, not on a headless one"),
    ("1", "Enforce: refuse activities of contacts who have not agreed"),
    ("0", "Do not enforce: store them, recording that the consent was missing"),
)


def values_of(found: Channel | None) -> dict[str, Any]:
    return {
        "name": found.name if found else "",
        "kind": found.kind if found else "website",
        "allowed_origins": "\n".join(found.allowed_origins) if found else "",
        "default_language": found.default_language if found else "en",
        "tracking_consent": (found.tracking_consent or "") if found else "",
        "enforce_consent": ("1" if found.enforce_consent else "0") if found else "",
        "unknown_events": found.unknown_events if found else "reject",
    }


def values_from(form: Form) -> dict[str, Any]:
    return {
        "name": form.get("name"),
        "kind": form.get("kind"),
        "allowed_origins": form.get("allowed_origins"),
        "default_language": form.get("default_language"),
        "tracking_consent": form.get("tracking_consent"),
        "enforce_consent": form.get("enforce_consent"),
        "unknown_events": form.get("unknown_events"),
    }


def body_from(form: Form, creating: bool) -> ChannelCreate | ChannelUpdate:
    raw: dict[str, object] = {
        "name": form.get("name"),
        # One origin a line; commas and spaces separate them too, as people paste lists.
        "allowed_origins": form.get("allowed_origins").replace(",", " ").split(),
        "default_language": form.get("default_language"),
        "tracking_consent": form.get("tracking_consent") or None,
        "unknown_events": form.get("unknown_events") or "reject",
    }
    # Blank: as the channel's kind says (docs/admin-api.md#channels).
    if form.get("enforce_consent"):
        raw["enforce_consent"] = form.checked("enforce_consent")
    if creating:
        raw["kind"] = form.get("kind")
    target: type[ChannelCreate | ChannelUpdate] = ChannelCreate if creating else ChannelUpdate
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None


def _consent_options(page: Page) -> list[tuple[str, str]]:
    consents = every(lambda cursor: page.hub.consents.list_page(ListQuery(cursor=cursor)))
    return [("", "None")] + [(c.code_name, f"{c.display_name} ({c.code_name})") for c in consents]


def _form(page: Page, found: Channel | None, values: dict[str, Any], **extra: Any) -> Response:
    return page.render(
        "channels/form.html",
        extra.pop("status", 200),
        found=found,
        values=values,
        kinds=KINDS,
        unknown_events=UNKNOWN_EVENTS,
        enforce_options=ENFORCE_OPTIONS,
        consents=_consent_options(page),
        error=extra.pop("error", None),
    )


def list_channels(page: Page) -> Response:
    channels = every(lambda cursor: page.hub.channels.list_page(ListQuery(cursor=cursor)))
    keys = every(lambda cursor: page.hub.keys.list_page(KeyQuery(cursor=cursor)))
    key_counts: dict[Any, int] = {}
    for key in keys:
        key_counts[key.channel] = key_counts.get(key.channel, 0) + 1
    channels.sort(key=lambda c: c.name.lower())
    return page.render("channels/list.html", channels=channels, key_counts=key_counts)


def new_channel(page: Page) -> Response:
    if page.request.method == "GET":
        return _form(page, None, values_of(None))
    try:
        body = body_from(page.form, creating=True)
        assert isinstance(body, ChannelCreate)
        created = page.hub.channels.create(body)
    except ApiError as exc:
        return _form(page, None, values_from(page.form), error=exc, status=exc.status)
    return page.redirect(
        f"/admin/channels/{created.id}",
        f"Created the {created.kind} channel {created.name}. Next, create a key for it.",
    )


def edit_channel(page: Page) -> Response:
    found = page.hub.channels.get(page.uuid_param("channel_id", "channel"))
    if page.request.method == "GET":
        return _form(page, found, values_of(found))
    try:
        body = body_from(page.form, creating=False)
        assert isinstance(body, ChannelUpdate)
        changed = page.hub.channels.update(found.id, body)
    except ApiError as exc:
        values = values_from(page.form) | {"kind": found.kind}
        return _form(page, found, values, error=exc, status=exc.status)
    return page.redirect("/admin/channels", f"Saved the channel {changed.name}.")


def delete_channel(page: Page) -> Response:
    channel_id = page.uuid_param("channel_id", "channel")
    found = page.hub.channels.get(channel_id)
    page.hub.channels.delete(channel_id)
    return page.redirect("/admin/channels", f"Deleted the channel {found.name}.")


ITEM = "/admin/channels/{channel_id}"
VIEWS = [
    View("/admin/channels", list_channels, "channels"),
    View("/admin/channels/new", new_channel, "channels", ("GET", "POST"), write=True),
    View(ITEM, edit_channel, "channels", ("GET", "POST"), write=True),
    View(ITEM + "/delete", delete_channel, "channels", ("POST",)),
]
