"""/api/webhook-endpoints and /api/webhook-deliveries: endpoints, the delivery log, retry and
replay (admins only)."""

from __future__ import annotations

from waypost.api.routing import Call, Operation, parse_uuid
from waypost.pagination import ListQuery, Page
from waypost.services.webhook_deliveries import (
    Delivery,
    DeliveryDetail,
    DeliveryQuery,
    ReplayCount,
    ReplayRange,
)
from waypost.services.webhook_endpoints import (
    CreatedWebhookEndpoint,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookSecret,
)

TAG = "Webhooks"
ENDPOINTS = "/api/webhook-endpoints"
ENDPOINT = ENDPOINTS + "/{endpoint_id}"
DELIVERY = "/api/webhook-deliveries/{delivery_id}"


def create_webhook_endpoint(call: Call[WebhookEndpointCreate, None]) -> CreatedWebhookEndpoint:
    return call.hub.webhook_endpoints.create(call.body)


def list_webhook_endpoints(call: Call[None, ListQuery]) -> Page[WebhookEndpoint]:
    return call.hub.webhook_endpoints.list_page(call.query)


def get_webhook_endpoint(call: Call[None, None]) -> WebhookEndpoint:
    return call.hub.webhook_endpoints.get(parse_uuid(call.path["endpoint_id"], "webhook endpoint"))


def update_webhook_endpoint(call: Call[WebhookEndpointUpdate, None]) -> WebhookEndpoint:
    endpoint_id = parse_uuid(call.path["endpoint_id"], "webhook endpoint")
    return call.hub.webhook_endpoints.update(endpoint_id, call.body)


def delete_webhook_endpoint(call: Call[None, None]) -> None:
    call.hub.webhook_endpoints.delete(parse_uuid(call.path["endpoint_id"], "webhook endpoint"))


def rotate_webhook_secret(call: Call[None, None]) -> WebhookSecret:
    endpoint_id = parse_uuid(call.path["endpoint_id"], "webhook endpoint")
    return call.hub.webhook_endpoints.rotate_secret(endpoint_id)


def list_webhook_deliveries(call: Call[None, DeliveryQuery]) -> Page[Delivery]:
    endpoint_id = parse_uuid(call.path["endpoint_id"], "webhook endpoint")
    return call.hub.webhook_deliveries.list_page(endpoint_id, call.query)


def replay_webhook_deliveries(call: Call[ReplayRange, None]) -> ReplayCount:
    endpoint_id = parse_uuid(call.path["endpoint_id"], "webhook endpoint")
    return call.hub.webhook_deliveries.replay(endpoint_id, call.body)


def get_webhook_delivery(call: Call[None, None]) -> DeliveryDetail:
    return call.hub.webhook_deliveries.get(parse_uuid(call.path["delivery_id"], "webhook delivery"))


def retry_webhook_delivery(call: Call[None, None]) -> DeliveryDetail:
    message_id = parse_uuid(call.path["delivery_id"], "webhook delivery")
    return call.hub.webhook_deliveries.retry(message_id)


OPERATIONS = [
    Operation(
        "POST",
        ENDPOINTS,
        create_webhook_endpoint,
        "Create a webhook endpoint (its secret is shown only here)",
        TAG,
        body=WebhookEndpointCreate,
        response=CreatedWebhookEndpoint,
        status=201,
        errors=(400,),
        description="The URL is refused (400 invalid_field, field url) when it is not an "
        "http(s) URL, holds a user name or password, or names a loopback, private or "
        "link-local address, unless WAYPOST_WEBHOOK_ALLOW_PRIVATE=1.",
    ),
    Operation(
        "GET",
        ENDPOINTS,
        list_webhook_endpoints,
        "List webhook endpoints",
        TAG,
        query=ListQuery,
        response=Page[WebhookEndpoint],
    ),
    Operation(
        "GET",
        ENDPOINT,
        get_webhook_endpoint,
        "Read a webhook endpoint",
        TAG,
        response=WebhookEndpoint,
        errors=(404,),
    ),
    Operation(
        "PATCH",
        ENDPOINT,
        update_webhook_endpoint,
        "Change, disable or enable a webhook endpoint",
        TAG,
        body=WebhookEndpointUpdate,
        response=WebhookEndpoint,
        errors=(400, 404),
        description="Disabling fails the endpoint's pending messages (last_error "
        "endpoint_disabled); enabling clears disabled_reason and failing_since. Retry or "
        "replay the failed messages once it is enabled.",
    ),
    Operation(
        "DELETE",
        ENDPOINT,
        delete_webhook_endpoint,
        "Delete a webhook endpoint and its delivery log",
        TAG,
        status=204,
        errors=(404, 409),
    ),
    Operation(
        "POST",
        ENDPOINT + "/rotate-secret",
        rotate_webhook_secret,
        "Give a webhook endpoint a new secret (the previous one signs too for 24 hours)",
        TAG,
        response=WebhookSecret,
        errors=(404,),
    ),
    Operation(
        "GET",
        ENDPOINT + "/deliveries",
        list_webhook_deliveries,
        "List an endpoint's messages with their attempts, newest first",
        TAG,
        query=DeliveryQuery,
        response=Page[Delivery],
        errors=(404,),
    ),
    Operation(
        "POST",
        ENDPOINT + "/replay",
        replay_webhook_deliveries,
        "Send again every failed message of an endpoint created in [since, until)",
        TAG,
        body=ReplayRange,
        response=ReplayCount,
        errors=(404, 409),
    ),
    Operation(
        "GET",
        DELIVERY,
        get_webhook_delivery,
        "Read a webhook message with its body and attempts",
        TAG,
        response=DeliveryDetail,
        errors=(404,),
    ),
    Operation(
        "POST",
        DELIVERY + "/retry",
        retry_webhook_delivery,
        "Send a webhook message again, now",
        TAG,
        response=DeliveryDetail,
        errors=(404, 409),
    ),
]
