"""API keys (admins only): the list (prefix and last four), creating one (shown once),
disabling, enabling and deleting."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.forms import reworded
from waypost.admin.views import NavItem, Page, View, every
from waypost.errors import ApiError, from_validation_error
from waypost.pagination import ListQuery
from waypost.services.channels import Channel
from waypost.services.keys import KeyCreate, KeyQuery, KeyUpdate

NAV = NavItem("Keys", "/admin/keys", "keys", 80, "settings")

ACCESS = (
    ("tracking", "Tracking: server-side logging on a channel (secret)"),
    ("publishable", "Publishable: browsers on a website channel (safe to embed)"),
    ("admin", "Admin: the admin API and automation (no channel)"),
)


def _channels(page: Page) -> list[Channel]:
    found = every(lambda cursor: page.hub.channels.list_page(ListQuery(cursor=cursor)))
    return sorted(found, key=lambda c: c.name.lower())


def _channel_filter(page: Page) -> uuid.UUID | None:
    text = page.request.query_params.get("channel", "")
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        raise ApiError(404, "not_found", "No channel has that identifier.") from None


def list_keys(page: Page) -> Response:
    channel = _channel_filter(page)
    keys = every(lambda cursor: page.hub.keys.list_page(KeyQuery(cursor=cursor, channel=channel)))
    channels = {c.id: c for c in _channels(page)}
    return page.render(
        "keys/list.html",
        keys=list(reversed(keys)),  # newest first (ids are UUIDv7)
        channels=channels,
        channel=channels.get(channel) if channel else None,
    )


def _form(page: Page, values: dict[str, Any], **extra: Any) -> Response:
    channels = _channels(page)
    return page.render(
        "keys/form.html",
        extra.pop("status", 200),
        values=values,
        access_options=ACCESS,
        channel_options=[("", "No channel (admin keys)")]
        + [(str(c.id), f"{c.name} ({c.kind})") for c in channels],
        error=extra.pop("error", None),
    )


# A select sent with a value it does not offer: only a changed page or a stale form does that.
NOT_OFFERED = {
    "access": "Choose an access type from the list.",
    "channel": "Choose a channel from the list.",
}


def in_form_words(error: ApiError, access: str) -> ApiError:
    """The service's error about the channel, told as the form's fields; its other messages
    (an unknown channel, a publishable key on a headless channel) read well as they are."""
    if error.field != "channel":
        return error
    if access == "admin":
        return reworded(error, "An admin key has no channel: leave Channel empty.")
    if error.code == "missing_field":
        return reworded(error, f"Choose a channel for a {access} key.")
    return error


def _defaults(page: Page) -> dict[str, str]:
    """Values the form can be sent with as they are: a tracking key of the channel asked for,
    else of the first channel; with no channel yet, an admin key (the only kind possible)."""
    channel = page.request.query_params.get("channel", "")
    if not channel:
        channels = _channels(page)
        if not channels:
            return {"access": "admin", "channel": "", "name": ""}
        channel = str(channels[0].id)
    return {"access": "tracking", "channel": channel, "name": ""}


def new_key(page: Page) -> Response:
    form = page.form
    if page.request.method == "GET":
        return _form(page, _defaults(page))
    values = {
        "access": form.get("access"),
        "channel": form.get("channel"),
        "name": form.get("name"),
    }
    try:
        try:
            body = msgspec.convert(
                {**values, "channel": values["channel"] or None}, KeyCreate, strict=False
            )
        except msgspec.ValidationError as exc:
            error = from_validation_error(exc)
            raise reworded(error, NOT_OFFERED.get(error.field or "", error.message)) from None
        created = page.hub.keys.create(body)
    except ApiError as exc:
        return _form(page, values, error=in_form_words(exc, values["access"]), status=exc.status)
    # Post/Redirect/Get: a reload of the next page must not create a second key. The secret
    # waits for that page in the session, sealed, and is read once; never in a URL.
    page.hub.sessions.keep_secret(page.session_token, created.key)
    return page.redirect(f"/admin/keys/{created.id}/created")


def created_key(page: Page) -> Response:
    found = page.hub.keys.get(page.uuid_param("key_id", "API key"))
    secret = page.hub.sessions.take_secret(page.session_token)
    if secret is not None and not (
        secret.startswith(found.prefix) and secret.endswith(found.last_four)
    ):
        secret = None  # another key's: the page is of this one
    owner = page.hub.channels.get(found.channel) if found.channel else None
    return page.render("keys/created.html", key=found, secret=secret, channel=owner)


def _set_enabled(page: Page, enabled: bool) -> Response:
    changed = page.hub.keys.update(page.uuid_param("key_id", "API key"), KeyUpdate(enabled=enabled))
    what = "Enabled" if enabled else "Disabled"
    return page.redirect("/admin/keys", f"{what} the key {changed.prefix}…{changed.last_four}.")


def disable_key(page: Page) -> Response:
    return _set_enabled(page, False)


def enable_key(page: Page) -> Response:
    return _set_enabled(page, True)


def delete_key(page: Page) -> Response:
    key_id = page.uuid_param("key_id", "API key")
    found = page.hub.keys.get(key_id)
    page.hub.keys.delete(key_id)
    return page.redirect("/admin/keys", f"Deleted the key {found.prefix}…{found.last_four}.")


ITEM = "/admin/keys/{key_id}"
VIEWS = [
    View("/admin/keys", list_keys, "keys"),
    View("/admin/keys/new", new_key, "keys", ("GET", "POST"), write=True),
    View(ITEM + "/created", created_key, "keys", write=True),
    View(ITEM + "/disable", disable_key, "keys", ("POST",)),
    View(ITEM + "/enable", enable_key, "keys", ("POST",)),
    View(ITEM + "/delete", delete_key, "keys", ("POST",)),
]
