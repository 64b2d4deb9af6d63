"""The playbooks pages: the list (trigger in words, cadence, state, runs), the form (each
trigger kind, field filters, the audience with the group builder, cadence, endpoints), a
playbook's page with its runs, enabling, disabling, deleting, and a contact's runs."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from waypost.admin.playbook_text import cadence_text
from waypost.domain.playbooks import EveryTime, Once, OncePer
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activity_types import ActivityType
from waypost.services.groups import GroupCreate
from waypost.services.playbooks import Playbook, PlaybookCreate

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
    from tests.conftest import Tracker
    from tests.playbook_support import LOANS, insert_endpoint, loan_trigger, runs, webhook
else:
    from admin_support import UI, error_of, flash_of
    from playbook_support import LOANS, insert_endpoint, loan_trigger, runs, webhook


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[{"name": "amount", "type": "decimal"}],
    )


@pytest.fixture
def endpoint(hub: Hub) -> uuid.UUID:
    return insert_endpoint(hub, url="https://crm.example/hooks/loans")


def make_playbook(hub: Hub, endpoint: uuid.UUID, **fields: Any) -> Playbook:
    fields.setdefault("name", "Big loans")
    fields.setdefault("trigger", loan_trigger(amount={"gte": "10000"}))
    fields.setdefault("cadence", {"mode": "every_time"})
    fields.setdefault("actions", webhook(endpoint))
    return hub.playbooks.create(msgspec.convert(fields, PlaybookCreate))


def form(endpoint: uuid.UUID, /, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Big loans",
        "description": "Tell the CRM",
        "enabled": "1",
        "event": "activity",
        "type": LOANS,
        "filter-0-field": "amount",
        "filter-0-op": "gte",
        "filter-0-value": "10000",
        "filter-1-field": "",
        "filter-1-op": "eq",
        "filter-1-value": "",
        "group": "",
        "consent": "",
        "audience_mode": "everyone",
        "audience": '{"all": [{"activity": {"type": "pagevisit"}}]}',
        "cadence": "every_time",
        "days": "7",
        "endpoint": str(endpoint),
    }
    values.update(overrides)
    return values


# -- the list ----------------------------------------------------------------------------------


def test_the_list_says_what_each_playbook_does(
    marketer_ui: UI, hub: Hub, loans: ActivityType, endpoint: uuid.UUID, tracker: Tracker
) -> None:
    empty = marketer_ui.get("/admin/playbooks")
    assert empty.status_code == 200
    assert "No playbooks yet." in empty.text
    assert 'href="/admin/playbooks"' in empty.text  # in the navigation
    book = make_playbook(hub, endpoint, cadence={"mode": "once_per", "days": 7})
    tracker.log([{"type": LOANS, "fields": {"amount": "12000"}}])
    page = marketer_ui.get("/admin/playbooks")
    row = re.search(rf'<tr id="playbook-{book.id}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    text = " ".join(re.sub(r"<[^>]+>", " ", row.group(1)).split())
    assert "Big loans" in text
    assert "When a contact performs Loan calculator usage with amount ≥ 10000" in text
    assert "At most once per contact in 7 days" in text
    assert "Enabled" in text
    assert text.endswith("1")


def test_cadences_in_words() -> None:
    assert cadence_text(EveryTime()) == "Every time"
    assert cadence_text(Once()) == "Once per contact"
    assert cadence_text(OncePer(1)) == "At most once per contact per day"
    assert cadence_text(OncePer(30)) == "At most once per contact in 30 days"


# -- the form ----------------------------------------------------------------------------------


def test_a_marketer_creates_a_playbook_with_filters_and_an_audience(
    marketer_ui: UI, hub: Hub, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    blank = marketer_ui.get("/admin/playbooks/new")
    assert blank.status_code == 200
    assert 'id="condition-builder"' in blank.text
    assert "group-builder" in blank.text
    # The endpoint by where it is, not its path (which may hold its secret): marketers do not
    # see endpoints' URLs.
    assert "<code>https://crm.example</code>" in blank.text
    assert "/hooks/loans" not in blank.text
    audience = {"all": [{"contact": {"field": "city", "equals": "Brno"}}]}
    answer = marketer_ui.post(
        "/admin/playbooks/new",
        form(
            endpoint,
            audience_mode="condition",
            audience=json.dumps(audience),
            cadence="once_per",
            days="30",
        ),
    )
    assert answer.status_code == 303, error_of(answer)
    [book] = hub.playbooks.list_page(ListQuery()).data
    assert answer.headers["location"] == f"/admin/playbooks/{book.id}"
    assert msgspec.to_builtins(book.trigger) == loan_trigger(amount={"gte": "10000"})
    assert book.audience == audience
    assert msgspec.to_builtins(book.cadence) == {"mode": "once_per", "days": 30}
    assert [a.endpoint for a in book.actions] == [endpoint]
    assert (book.description, book.enabled) == ("Tell the CRM", True)
    shown = marketer_ui.get(answer.headers["location"])
    assert "Created Big loans." in flash_of(shown)
    assert "City is “Brno”" in shown.text


@pytest.mark.parametrize(
    ("event", "extra", "words"),
    [
        ("group_entered", {}, "When a contact enters Loan shoppers"),
        ("group_exited", {}, "When a contact leaves Loan shoppers"),
        ("consent_agreed", {"consent": "Newsletter"}, "When a contact agrees to Newsletter"),
        ("consent_revoked", {"consent": "Newsletter"}, "When a contact revokes Newsletter"),
    ],
)
def test_each_trigger_kind_from_the_form(
    admin_ui: UI,
    hub: Hub,
    loans: ActivityType,
    endpoint: uuid.UUID,
    event: str,
    extra: dict[str, str],
    words: str,
) -> None:
    group = hub.groups.create(
        GroupCreate(name="Loan shoppers", condition={"activity": {"type": LOANS}})
    )
    answer = admin_ui.client.post(
        "/api/consents",
        json={
            "code_name": "Newsletter",
            "display_name": "Newsletter",
            "texts": {"en": {"short_text": "S", "full_text": "<p>F</p>"}},
        },
        headers={"X-CSRF-Token": admin_ui.csrf},
    )
    assert answer.status_code == 201, answer.text
    answer = admin_ui.post(
        "/admin/playbooks/new",
        form(endpoint, event=event, group=str(group.id), type="", **extra),
    )
    assert answer.status_code == 303, error_of(answer)
    shown = admin_ui.get(answer.headers["location"])
    assert words in shown.text


@pytest.mark.parametrize(
    ("overrides", "control", "message"),
    [
        ({"type": "nope"}, "type", "No activity type"),
        ({"filter-0-field": "colour"}, "filters", "no field 'colour'"),
        ({"filter-0-value": "lots"}, "filters", "not a decimal"),
        ({"event": "group_entered", "group": str(uuid.uuid4())}, "group", "No contact group"),
        ({"audience_mode": "condition", "audience": "{not json"}, "condition", "not valid JSON"),
        (
            {"audience_mode": "condition", "audience": '{"activity": {"type": "nope"}}'},
            "condition",
            "No activity type",
        ),
        ({"cadence": "once_per", "days": ""}, "days", "number of days"),
        ({"cadence": "once_per", "days": "0"}, "days", "at least 1"),
        ({"endpoint": "x"}, "endpoints", "uuid"),
        ({"name": ""}, "name", "must not be empty"),
    ],
)
def test_a_bad_form_is_shown_again_with_the_message(
    marketer_ui: UI,
    hub: Hub,
    loans: ActivityType,
    endpoint: uuid.UUID,
    overrides: dict[str, str],
    control: str,
    message: str,
) -> None:
    answer = marketer_ui.post("/admin/playbooks/new", form(endpoint, **overrides))
    assert answer.status_code == 400, answer.text
    assert message.lower() in error_of(answer).lower()
    assert f'id="{control}-error"' in answer.text
    assert 'value="Big loans"' in answer.text or overrides.get("name") == ""
    assert hub.playbooks.list_page(ListQuery()).data == []


def test_no_endpoint_chosen_is_said_next_to_the_endpoints(
    marketer_ui: UI, hub: Hub, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    fields = form(endpoint)
    del fields["endpoint"]
    answer = marketer_ui.post("/admin/playbooks/new", fields)
    assert answer.status_code == 400
    assert 'id="endpoints-error"' in answer.text
    assert "Choose at least one webhook endpoint" in error_of(answer)


def test_editing_shows_the_playbook_and_saves_changes(
    marketer_ui: UI, hub: Hub, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    book = make_playbook(hub, endpoint)
    page = marketer_ui.get(f"/admin/playbooks/{book.id}/edit")
    assert page.status_code == 200
    assert 'name="filter-0-field" value="amount"' in page.text
    assert f'value="{endpoint}" checked' in page.text
    other = insert_endpoint(hub)
    answer = marketer_ui.post(
        f"/admin/playbooks/{book.id}/edit",
        {**form(endpoint, cadence="once", name="Bigger loans"), "endpoint": str(other)},
    )
    assert answer.status_code == 303, error_of(answer)
    changed = hub.playbooks.get(book.id)
    assert changed.name == "Bigger loans"
    assert msgspec.to_builtins(changed.cadence) == {"mode": "once"}
    assert [a.endpoint for a in changed.actions] == [other]


# -- a playbook's page -------------------------------------------------------------------------


def test_a_playbooks_page_lists_its_runs_and_toggles_it(
    marketer_ui: UI, hub: Hub, loans: ActivityType, endpoint: uuid.UUID, tracker: Tracker
) -> None:
    book = make_playbook(hub, endpoint)
    contact = tracker.new_contact()
    [result] = tracker.log([{"type": LOANS, "fields": {"amount": "20000"}}], contact)
    page = marketer_ui.get(f"/admin/playbooks/{book.id}")
    assert page.status_code == 200
    assert f'href="/admin/contacts/{contact}"' in page.text
    assert result["id"] in page.text
    assert "<code>https://crm.example</code>" in page.text
    assert "/hooks/loans" not in page.text
    assert "Everyone." in page.text
    answer = marketer_ui.post(f"/admin/playbooks/{book.id}/disable")
    assert answer.status_code == 303
    assert hub.playbooks.get(book.id).enabled is False
    answer = marketer_ui.post(f"/admin/playbooks/{book.id}/enable")
    assert hub.playbooks.get(book.id).enabled is True
    answer = marketer_ui.post(f"/admin/playbooks/{book.id}/delete")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/playbooks"
    assert runs(hub) == []
    assert marketer_ui.get(f"/admin/playbooks/{book.id}").status_code == 404


def test_a_contacts_page_shows_its_playbook_runs(
    marketer_ui: UI, hub: Hub, loans: ActivityType, endpoint: uuid.UUID, tracker: Tracker
) -> None:
    book = make_playbook(hub, endpoint)
    contact = tracker.new_contact()
    quiet = marketer_ui.get(f"/admin/contacts/{contact}")
    assert "No playbook has run for this contact." in quiet.text
    [result] = tracker.log([{"type": LOANS, "fields": {"amount": "20000"}}], contact)
    page = marketer_ui.get(f"/admin/contacts/{contact}")
    section = page.text.split('id="runs-heading"')[1].split("</section>")[0]
    assert f'href="/admin/playbooks/{book.id}">Big loans</a>' in section
    assert result["id"] in section


def test_changing_playbooks_needs_the_write_role(
    make_ui: Callable[..., UI], hub: Hub, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    book = make_playbook(hub, endpoint)
    admin = make_ui("admin")
    assert admin.get(f"/admin/playbooks/{book.id}/edit").status_code == 200
    answer = admin.post(f"/admin/playbooks/{book.id}/disable", csrf="")
    assert answer.status_code == 403
    assert hub.playbooks.get(book.id).enabled is True
