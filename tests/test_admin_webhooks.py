"""The webhook pages (admins only): endpoints, the secret shown once, the delivery log, retry
and replay."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from waypost.hub import Hub
from waypost.records.outbox import DELIVERED, FAILED, PENDING
from waypost.services.webhook_endpoints import CreatedWebhookEndpoint
from waypost.settings import Settings
from waypost.store.schema import playbooks

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
    from tests.webhook_support import RECEIVER, T0, add_message, make_endpoint, message_row
else:
    from admin_support import UI, error_of, flash_of
    from webhook_support import RECEIVER, T0, add_message, make_endpoint, message_row

SECRET = re.compile(r'<code id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)</code>')


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_private=True)


@pytest.fixture
def endpoint(hub: Hub) -> CreatedWebhookEndpoint:
    return make_endpoint(hub, description="CRM")


def secret_on(page: Any) -> str | None:
    match = SECRET.search(page.text)
    return match.group(1) if match else None


def test_create_an_endpoint_and_see_its_secret_once(admin_ui: UI, hub: Hub) -> None:
    form = {"url": RECEIVER, "description": "The CRM", "enabled": "1"}
    answer = admin_ui.post("/admin/webhooks/new", form)
    assert answer.status_code == 303, error_of(answer)
    [created] = hub.webhook_endpoints.list_page(_all()).data
    assert (created.url, created.description, created.enabled) == (RECEIVER, "The CRM", True)
    assert answer.headers["location"] == f"/admin/webhooks/{created.id}/secret"
    page = admin_ui.get(answer.headers["location"])
    assert "Created the webhook endpoint" in flash_of(page)
    secret = secret_on(page)
    assert secret is not None
    assert hub.webhook_endpoints.holds_secret(created.id, secret)
    again = admin_ui.get(answer.headers["location"])
    assert secret_on(again) is None
    assert "is not shown again" in again.text
    listed = admin_ui.get("/admin/webhooks")
    assert f'href="/admin/webhooks/{created.id}"' in listed.text
    assert "The CRM" in listed.text
    assert secret not in listed.text
    assert secret not in admin_ui.get(f"/admin/webhooks/{created.id}").text


def test_a_new_endpoint_can_start_disabled(admin_ui: UI, hub: Hub) -> None:
    assert admin_ui.post("/admin/webhooks/new", {"url": RECEIVER}).status_code == 303
    [created] = hub.webhook_endpoints.list_page(_all()).data
    assert created.enabled is False


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example.com/", "starts with https://"),
        ("https://me:pw@example.com/hooks", "no user name or password"),
        ("", "url"),
    ],
)
def test_errors_are_shown_at_the_form(admin_ui: UI, hub: Hub, url: str, message: str) -> None:
    answer = admin_ui.post("/admin/webhooks/new", {"url": url, "description": "kept"})
    assert answer.status_code == 400, answer.text
    assert message in error_of(answer)
    assert 'aria-invalid="true"' in answer.text
    assert ">kept</textarea>" in answer.text
    assert hub.webhook_endpoints.list_page(_all()).data == []


def test_edit_an_endpoint(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    page = admin_ui.get(f"/admin/webhooks/{endpoint.id}/edit")
    assert f'value="{RECEIVER}"' in page.text
    form = {"url": "http://127.0.0.1:8/new", "description": "CRM (EU)"}
    answer = admin_ui.post(f"/admin/webhooks/{endpoint.id}/edit", form)
    assert answer.status_code == 303, error_of(answer)
    changed = hub.webhook_endpoints.get(endpoint.id)
    assert (changed.url, changed.description) == ("http://127.0.0.1:8/new", "CRM (EU)")
    bad = admin_ui.post(f"/admin/webhooks/{endpoint.id}/edit", {**form, "url": "mailto:x@y"})
    assert bad.status_code == 400
    assert "starts with https://" in error_of(bad)


def test_disable_and_enable(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    pending = add_message(hub, endpoint.id)
    answer = admin_ui.post(f"/admin/webhooks/{endpoint.id}/disable")
    assert answer.status_code == 303
    page = admin_ui.get(answer.headers["location"])
    assert "Disabled the endpoint" in flash_of(page)
    assert "a person disabled it" in page.text
    assert "enable it to retry or replay" in page.text
    assert f"/admin/webhooks/deliveries/{pending}/retry" not in page.text
    assert message_row(hub, pending).status == FAILED
    assert admin_ui.post(f"/admin/webhooks/{endpoint.id}/enable").status_code == 303
    assert hub.webhook_endpoints.get(endpoint.id).enabled is True
    page = admin_ui.get(f"/admin/webhooks/{endpoint.id}")
    assert f"/admin/webhooks/deliveries/{pending}/retry" in page.text


def test_rotate_the_secret(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    answer = admin_ui.post(f"/admin/webhooks/{endpoint.id}/rotate-secret")
    assert answer.status_code == 303
    page = admin_ui.get(answer.headers["location"])
    secret = secret_on(page)
    assert secret is not None
    assert secret != endpoint.secret
    assert hub.webhook_endpoints.holds_secret(endpoint.id, secret)
    assert "signs too until" in page.text
    assert secret_on(admin_ui.get(answer.headers["location"])) is None


def test_a_secret_is_shown_only_on_its_endpoint_s_page(
    admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint
) -> None:
    other = make_endpoint(hub)
    admin_ui.post(f"/admin/webhooks/{endpoint.id}/rotate-secret")
    assert secret_on(admin_ui.get(f"/admin/webhooks/{other.id}/secret")) is None


def test_delete_an_endpoint(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    used = make_endpoint(hub)
    with hub.store.write() as conn:
        conn.execute(
            playbooks.insert().values(
                id=uuid.uuid4(),
                name="Welcome",
                description="",
                enabled=True,
                trigger={"event": "group_entered", "group": str(uuid.uuid4())},
                cadence={"mode": "once"},
                actions=[{"kind": "webhook", "endpoint": str(used.id)}],
                created_at=T0,
                updated_at=T0,
            )
        )
    refused = admin_ui.post(f"/admin/webhooks/{used.id}/delete")
    assert refused.status_code == 409
    assert "'Welcome'" in error_of(refused)
    answer = admin_ui.post(f"/admin/webhooks/{endpoint.id}/delete")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/webhooks"
    assert [e.id for e in hub.webhook_endpoints.list_page(_all()).data] == [used.id]


def test_the_delivery_log(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    contact = uuid.uuid4()
    delivered = add_message(
        hub,
        endpoint.id,
        status=DELIVERED,
        contact_id=contact,
        attempts=[
            {"http_status": 500, "response": "<b>down for maintenance</b>"},
            {"http_status": 200},
        ],
    )
    failed = add_message(
        hub,
        endpoint.id,
        status=FAILED,
        event_type="consent.agreed",
        attempts=[{"http_status": None, "error": "connection refused"}],
    )
    page = admin_ui.get(f"/admin/webhooks/{endpoint.id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert f"msg_{delivered.hex}" in text
    assert "2 attempts, last: HTTP 200" in text
    assert "1 attempt, last: No answer: connection refused" in text
    assert "&lt;b&gt;down for maintenance&lt;/b&gt;" in page.text  # escaped
    assert f'href="/admin/contacts/{contact}"' in page.text
    assert page.text.index(f"delivery-{failed}") < page.text.index(f"delivery-{delivered}")
    only = admin_ui.get(f"/admin/webhooks/{endpoint.id}?status=failed")
    assert f"delivery-{failed}" in only.text
    assert f"delivery-{delivered}" not in only.text
    bad = admin_ui.get(f"/admin/webhooks/{endpoint.id}?status=lost")
    assert bad.status_code == 400
    assert "choose one from the list" in bad.text
    first = admin_ui.get(f"/admin/webhooks/{endpoint.id}?limit=1")
    following = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert following is not None
    second = admin_ui.get(html.unescape(following.group(1)))
    assert f"delivery-{delivered}" in second.text
    assert f"delivery-{failed}" not in second.text
    one = admin_ui.get(f"/admin/webhooks/deliveries/{failed}")
    assert one.status_code == 200
    assert "consent.agreed" in one.text
    assert message_row(hub, failed).body in html.unescape(one.text)


def test_retry_a_message(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    failed = add_message(hub, endpoint.id, status=FAILED, attempts=[{"http_status": 500}])
    answer = admin_ui.post(f"/admin/webhooks/deliveries/{failed}/retry")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/webhooks/{endpoint.id}#delivery-{failed}"
    assert f"msg_{failed.hex} is sent again" in flash_of(
        admin_ui.get(f"/admin/webhooks/{endpoint.id}")
    )
    assert message_row(hub, failed).status == PENDING
    back = admin_ui.post(f"/admin/webhooks/deliveries/{failed}/retry", {"back": "delivery"})
    assert back.headers["location"] == f"/admin/webhooks/deliveries/{failed}"
    admin_ui.post(f"/admin/webhooks/{endpoint.id}/disable")
    refused = admin_ui.post(f"/admin/webhooks/deliveries/{failed}/retry")
    assert refused.status_code == 409
    assert "enable it first" in refused.text


def test_replay_failed_messages(admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint) -> None:
    failed = add_message(hub, endpoint.id, status=FAILED)
    later = add_message(hub, endpoint.id, status=FAILED, created_at=T0.replace(hour=12))
    form = {"since": "2026-11-02", "until": "2026-11-02T10:00"}
    answer = admin_ui.post(f"/admin/webhooks/{endpoint.id}/replay", form)
    assert answer.status_code == 303, error_of(answer)
    page = admin_ui.get(f"/admin/webhooks/{endpoint.id}")
    assert "Replaying 1 failed message:" in flash_of(page)
    assert message_row(hub, failed).status == PENDING
    assert message_row(hub, later).status == FAILED
    bad = admin_ui.post(f"/admin/webhooks/{endpoint.id}/replay", {"since": "yesterday"})
    assert bad.status_code == 400
    assert "is not a date in ISO 8601" in error_of(bad)
    assert 'value="yesterday"' in bad.text
    missing = admin_ui.post(f"/admin/webhooks/{endpoint.id}/replay", {"since": "2026-11-02"})
    assert missing.status_code == 400
    assert "Give both times" in error_of(missing)


def test_forms_need_the_csrf_token(
    admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint
) -> None:
    for path in ("/admin/webhooks/new", f"/admin/webhooks/{endpoint.id}/disable"):
        answer = admin_ui.post(path, {"url": RECEIVER}, csrf="")
        assert answer.status_code == 403
    assert hub.webhook_endpoints.get(endpoint.id).enabled is True
    assert len(hub.webhook_endpoints.list_page(_all()).data) == 1


def test_only_admins_see_webhooks(
    marketer_ui: UI, admin_ui: UI, hub: Hub, endpoint: CreatedWebhookEndpoint
) -> None:
    message = add_message(hub, endpoint.id, status=FAILED)
    nav = marketer_ui.get("/admin/types").text.split('<nav id="site-nav"', 1)[1]
    assert "/admin/webhooks" not in nav
    for path in (
        "/admin/webhooks",
        "/admin/webhooks/new",
        f"/admin/webhooks/{endpoint.id}",
        f"/admin/webhooks/deliveries/{message}",
    ):
        assert marketer_ui.get(path).status_code == 403, path
    for path in (
        "/admin/webhooks/new",
        f"/admin/webhooks/{endpoint.id}/disable",
        f"/admin/webhooks/{endpoint.id}/rotate-secret",
        f"/admin/webhooks/deliveries/{message}/retry",
    ):
        assert marketer_ui.post(path, {"url": RECEIVER}).status_code == 403, path
    assert message_row(hub, message).status == FAILED
    page = admin_ui.get("/admin/webhooks").text
    settings = page.split('<nav class="sub-nav" aria-label="Settings">', 1)[1].split("</nav>")[0]
    assert '<a href="/admin/webhooks" aria-current="page">Webhooks</a>' in settings


def test_unknown_identifiers_are_404(admin_ui: UI) -> None:
    for path in (
        f"/admin/webhooks/{uuid.uuid4()}",
        "/admin/webhooks/not-an-id/edit",
        f"/admin/webhooks/deliveries/{uuid.uuid4()}",
    ):
        assert admin_ui.get(path).status_code == 404, path
    assert admin_ui.post(f"/admin/webhooks/deliveries/{uuid.uuid4()}/retry").status_code == 404


def _all() -> Any:
    from waypost.pagination import ListQuery

    return ListQuery(limit=1000)
