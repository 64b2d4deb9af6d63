"""Webhook endpoints (admins only): the list, the form, an endpoint's page with its delivery
log, and the actions on both: enable, disable, rotate the secret, delete, retry a message,
replay what failed in a time range.

An endpoint's secret is shown once, after its creation or a rotation, as an API key is: the
form's answer redirects (Post/Redirect/Get) to the secret's page, which reads the secret from
the session, sealed, once; it is never in a URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import msgspec
from starlette.responses import Response

from waypost.admin import listing
from waypost.admin.views import NavItem, Page, View, every
from waypost.errors import ApiError, from_validation_error
from waypost.pagination import ListQuery
from waypost.services.webhook_deliveries import DeliveryQuery, ReplayRange, Status
from waypost.services.webhook_endpoints import (
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
)

NAV = NavItem("Webhooks", "/admin/webhooks", "webhooks", 85, "settings")

STATUSES = (
    ("", "Any status"),
    ("pending", "Pending (to be sent)"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
)
# Why an endpoint is disabled, in words.
DISABLED_WHY = {
    "gone": "it answered 410 Gone",
    "failing": "no delivery succeeded for days",
}


def disabled_why(endpoint: WebhookEndpoint) -> str:
    """Why ``endpoint`` is disabled, as the end of a sentence."""
    return DISABLED_WHY.get(endpoint.disabled_reason or "", "a person disabled it")


def _body(form_values: Mapping[str, object], target: type[Any]) -> Any:
    try:
        return msgspec.convert(dict(form_values), target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc, target) from None


def _form(
    page: Page, found: WebhookEndpoint | None, values: dict[str, Any], **extra: Any
) -> Response:
    return page.render(
        "webhooks/form.html",
        extra.pop("status", 200),
        found=found,
        values=values,
        error=extra.pop("error", None),
    )


def _endpoint(page: Page) -> WebhookEndpoint:
    return page.hub.webhook_endpoints.get(page.uuid_param("endpoint_id", "webhook endpoint"))


def delivery_query(params: Mapping[str, str]) -> DeliveryQuery:
    """The log's filter and paging from the query string: 400 for a value not offered."""
    status = params.get("status", "").strip()
    if status not in {value for value, _ in STATUSES}:
        raise ApiError(400, "invalid_field", "Status: choose one from the list.", "status")
    return DeliveryQuery(
        limit=listing.limit(params),
        cursor=params.get("cursor") or None,
        status=cast("Status", status) if status else None,
    )


def _show(
    page: Page,
    endpoint: WebhookEndpoint,
    *,
    replay_error: ApiError | None = None,
    replay_values: Mapping[str, str] | None = None,
    delete_error: ApiError | None = None,
) -> Response:
    params = page.request.query_params
    error: ApiError | None = None
    items: list[Any] = []
    paging = None
    try:
        found = page.hub.webhook_deliveries.list_page(endpoint.id, delivery_query(params))
        items = found.data
        paging = listing.paging(
            f"/admin/webhooks/{endpoint.id}", params, found.next, anchor="deliveries"
        )
    except ApiError as exc:
        error = exc
    failed = replay_error or delete_error or error
    return page.render(
        "webhooks/show.html",
        failed.status if failed else 200,
        endpoint=endpoint,
        disabled_why=disabled_why(endpoint),
        items=items,
        paging=paging,
        error=error,
        status_value=params.get("status", ""),
        statuses=STATUSES,
        replay_error=replay_error,
        replay_values=replay_values or {"since": "", "until": ""},
        delete_error=delete_error,
    )


# -- handlers -------------------------------------------------------------------------------


def list_endpoints(page: Page) -> Response:
    endpoints = every(
        lambda cursor: page.hub.webhook_endpoints.list_page(ListQuery(limit=1000, cursor=cursor))
    )
    return page.render("webhooks/list.html", endpoints=endpoints, disabled_why=disabled_why)


def new_endpoint(page: Page) -> Response:
    if page.request.method == "GET":
        return _form(page, None, {"url": "", "description": "", "enabled": True})
    values = {
        "url": page.form.get("url"),
        "description": page.form.get("description"),
        "enabled": page.form.checked("enabled"),
    }
    try:
        created = page.hub.webhook_endpoints.create(_body(values, WebhookEndpointCreate))
    except ApiError as exc:
        return _form(page, None, values, error=exc, status=exc.status)
    page.hub.sessions.keep_secret(page.session_token, created.secret)
    return page.redirect(
        f"/admin/webhooks/{created.id}/secret", f"Created the webhook endpoint {created.url}."
    )


def show_secret(page: Page) -> Response:
    endpoint = _endpoint(page)
    secret = page.hub.sessions.take_secret(page.session_token)
    if secret is not None and not page.hub.webhook_endpoints.holds_secret(endpoint.id, secret):
        secret = None  # another one's: this page is of this endpoint
    return page.render("webhooks/secret.html", endpoint=endpoint, secret=secret)


def show_endpoint(page: Page) -> Response:
    return _show(page, _endpoint(page))


def edit_endpoint(page: Page) -> Response:
    found = _endpoint(page)
    if page.request.method == "GET":
        return _form(page, found, {"url": found.url, "description": found.description})
    values = {"url": page.form.get("url"), "description": page.form.get("description")}
    try:
        body = _body(values, WebhookEndpointUpdate)
        if body.url == found.url:
            body.url = msgspec.UNSET  # unchanged: not looked up again
        changed = page.hub.webhook_endpoints.update(found.id, body)
    except ApiError as exc:
        return _form(page, found, values, error=exc, status=exc.status)
    return page.redirect(f"/admin/webhooks/{changed.id}", f"Saved the endpoint {changed.url}.")


def _set_enabled(page: Page, enabled: bool) -> Response:
    endpoint_id = page.uuid_param("endpoint_id", "webhook endpoint")
    changed = page.hub.webhook_endpoints.update(endpoint_id, WebhookEndpointUpdate(enabled=enabled))
    if enabled:
        said = "Enabled the endpoint. Retry or replay its failed messages to send them now."
    else:
        said = "Disabled the endpoint: nothing is sent to it, its pending messages failed."
    return page.redirect(f"/admin/webhooks/{changed.id}", said)


def enable_endpoint(page: Page) -> Response:
    return _set_enabled(page, True)


def disable_endpoint(page: Page) -> Response:
    return _set_enabled(page, False)


def rotate_secret(page: Page) -> Response:
    endpoint_id = page.uuid_param("endpoint_id", "webhook endpoint")
    rotated = page.hub.webhook_endpoints.rotate_secret(endpoint_id)
    page.hub.sessions.keep_secret(page.session_token, rotated.secret)
    return page.redirect(
        f"/admin/webhooks/{endpoint_id}/secret",
        "Made a new secret. The previous one signs too for 24 hours.",
    )


def delete_endpoint(page: Page) -> Response:
    endpoint = _endpoint(page)
    try:
        page.hub.webhook_endpoints.delete(endpoint.id)
    except ApiError as exc:
        if exc.status != 409:
            raise
        return _show(page, endpoint, delete_error=exc)
    return page.redirect("/admin/webhooks", f"Deleted the webhook endpoint {endpoint.url}.")


def replay(page: Page) -> Response:
    endpoint = _endpoint(page)
    values = {"since": page.form.get("since"), "until": page.form.get("until")}
    try:
        since = listing.when(values, "since", "From")
        until = listing.when(values, "until", "Until")
        if since is None or until is None:
            raise ApiError(
                400,
                "missing_field",
                "Give both times: from and until.",
                "since" if since is None else "until",
            )
        replayed = page.hub.webhook_deliveries.replay(endpoint.id, ReplayRange(since, until))
    except ApiError as exc:
        return _show(page, endpoint, replay_error=exc, replay_values=values)
    noun = "message" if replayed.count == 1 else "messages"
    return page.redirect(
        f"/admin/webhooks/{endpoint.id}#deliveries",
        f"Replaying {replayed.count:,} failed {noun}: they are sent again now.",
    )


def show_delivery(page: Page) -> Response:
    delivery = page.hub.webhook_deliveries.get(page.uuid_param("delivery_id", "webhook delivery"))
    endpoint = page.hub.webhook_endpoints.get(delivery.endpoint)
    return page.render("webhooks/delivery.html", delivery=delivery, endpoint=endpoint)


def retry_delivery(page: Page) -> Response:
    message_id = page.uuid_param("delivery_id", "webhook delivery")
    retried = page.hub.webhook_deliveries.retry(message_id)
    back = page.form.get("back")
    target = f"/admin/webhooks/{retried.endpoint}#delivery-{retried.id}"
    if back == "delivery":
        target = f"/admin/webhooks/deliveries/{retried.id}"
    return page.redirect(target, f"The message {retried.webhook_id} is sent again now.")


ITEM = "/admin/webhooks/{endpoint_id}"
DELIVERY = "/admin/webhooks/deliveries/{delivery_id}"
VIEWS = [
    View("/admin/webhooks", list_endpoints, "webhooks"),
    View("/admin/webhooks/new", new_endpoint, "webhooks", ("GET", "POST"), write=True),
    View(DELIVERY, show_delivery, "webhooks"),
    View(DELIVERY + "/retry", retry_delivery, "webhooks", ("POST",)),
    View(ITEM, show_endpoint, "webhooks"),
    View(ITEM + "/edit", edit_endpoint, "webhooks", ("GET", "POST"), write=True),
    View(ITEM + "/secret", show_secret, "webhooks", write=True),
    View(ITEM + "/enable", enable_endpoint, "webhooks", ("POST",)),
    View(ITEM + "/disable", disable_endpoint, "webhooks", ("POST",)),
    View(ITEM + "/rotate-secret", rotate_secret, "webhooks", ("POST",)),
    View(ITEM + "/delete", delete_endpoint, "webhooks", ("POST",)),
    View(ITEM + "/replay", replay, "webhooks", ("POST",)),
]
