"""The activity types pages: list with counts, create and edit form, enable and disable."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from waypost.hub import Hub
from waypost.services.activity_types import ActivityType, RateLimit
from waypost.store.schema import activity_daily_counts

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
    from tests.conftest import Tracker
else:
    from admin_support import UI, error_of, flash_of

MakeType = Callable[..., ActivityType]


def type_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Loan calculator usage",
        "code_name": "loan_calculator_usage",
        "code_name_auto": "1",
        "description": "Someone ran the loan calculator.",
        "enabled": "1",
        "client_side": "1",
        "fields-0-name": "amount",
        "fields-0-type": "decimal",
        "fields-0-required": "1",
        "fields-0-primary": "1",
        "fields-1-name": "currency",
        "fields-1-type": "text",
        "fields-2-name": "",  # the editor's blank row
        "fields-2-type": "text",
        "limit_contact": "5",
        "limit_contact_window": "1",
        "limit_contact_unit": "days",
        "limit_ip": "",
        "limit_ip_window": "1",
        "limit_ip_unit": "hours",
        "retention_days": "90",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def row_of(html: str, code_name: str) -> str:
    match = re.search(rf'<tr id="type-{re.escape(code_name)}">(.*?)</tr>', html, re.S)
    assert match is not None, f"no row for {code_name}"
    return match.group(1)


def test_the_list_shows_counts_from_the_rollups(
    marketer_ui: UI, hub: Hub, make_type: MakeType, tracker: Tracker
) -> None:
    used = make_type(name="Deposit made", fields=[{"name": "amount", "type": "decimal"}])
    make_type(name="Never used")
    contact = tracker.new_contact()
    tracker.log([{"type": used.code_name}] * 3, contact)
    tracker.log([{"type": "click", "value": "cta"}], contact)
    with hub.store.write() as conn:  # an older day's count counts too
        conn.execute(
            activity_daily_counts.insert().values(
                type_id=used.id, day=dt.date(2020, 1, 1), count=1234
            )
        )
    page = marketer_ui.get("/admin/types")
    assert page.status_code == 200
    assert "1,237" in row_of(page.text, used.code_name)
    assert ">0</td>" in row_of(page.text, "never_used")
    click = row_of(page.text, "click")
    assert ">1</td>" in click
    assert "built-in" in click
    assert "Enabled" in click
    assert "<code>amount</code>" in row_of(page.text, used.code_name)


def test_the_list_and_the_type_page_show_its_number(marketer_ui: UI, make_type: MakeType) -> None:
    made = make_type(name="Webinar attended")
    listing = marketer_ui.get("/admin/types")
    assert f"<code>{made.number}</code>" in row_of(listing.text, made.code_name)
    assert "<code>1</code>" in row_of(listing.text, "pagevisit")
    page = marketer_ui.get(f"/admin/types/{made.id}")
    number = re.search(r'<p class="hint" id="type-number">(.*?)</p>', page.text, re.S)
    assert number is not None
    assert f"<code>{made.number}</code>" in number.group(1)
    assert "activityTypeId" in number.group(1)


def test_create_a_type_with_fields_limits_and_retention(marketer_ui: UI, hub: Hub) -> None:
    answer = marketer_ui.post("/admin/types/new", type_form())
    assert answer.status_code == 303, error_of(answer) or answer.text
    assert answer.headers["location"] == "/admin/types"
    page = marketer_ui.get("/admin/types")
    assert "Created the activity type Loan calculator usage" in flash_of(page)
    created = hub.types.get_by_code("loan_calculator_usage")
    assert created.description == "Someone ran the loan calculator."
    assert (created.enabled, created.client_side) == (True, True)
    assert [(f.name, f.type, f.required, f.primary) for f in created.fields] == [
        ("amount", "decimal", True, True),
        ("currency", "text", False, False),
    ]
    assert created.rate_limits.per_contact == RateLimit(5, 86400)
    assert created.rate_limits.per_ip is None
    assert created.retention_days == 90
    # The flash is shown once.
    assert flash_of(marketer_ui.get("/admin/types")) == ""


def test_a_derived_code_name_gets_a_free_suffix(
    marketer_ui: UI, hub: Hub, make_type: MakeType
) -> None:
    make_type(name="Other", code_name="webinar_registration")
    form = type_form(name="Webinar registration", code_name="webinar_registration")
    assert marketer_ui.post("/admin/types/new", form).status_code == 303
    assert hub.types.get_by_code("webinar_registration_2").name == "Webinar registration"
    # Typed by hand (not auto), the same code name is a conflict shown at the form.
    form = type_form(name="Third", code_name="webinar_registration", code_name_auto="0")
    answer = marketer_ui.post("/admin/types/new", form)
    assert answer.status_code == 409
    assert "exists already" in error_of(answer)
    assert 'aria-invalid="true"' in answer.text


def test_without_a_code_name_the_server_derives_it(marketer_ui: UI, hub: Hub) -> None:
    form = type_form(name="Café visit", code_name="", code_name_auto=None)
    assert marketer_ui.post("/admin/types/new", form).status_code == 303
    assert hub.types.get_by_code("cafe_visit").name == "Café visit"


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"name": ""}, 400, "name"),
        ({"code_name": "Bad Code!", "code_name_auto": "0"}, 400, "Code name"),
        ({"fields-1-primary": "1"}, 400, "At most one field can be primary"),
        ({"fields-1-name": "amount"}, 400, "used twice"),
        ({"fields-1-name": "bad name"}, 400, "letters, digits"),
        ({"fields-1-type": "colour"}, 400, "fields"),
        ({"limit_contact": "many"}, 400, "whole number"),
        ({"limit_contact": "0"}, 400, "at least 1"),
        ({"limit_contact_window": ""}, 400, "window"),
        ({"retention_days": "0"}, 400, "retention_days"),
        ({"retention_days": "soon"}, 400, "whole number"),
    ],
)
def test_service_errors_come_back_with_the_input_kept(
    marketer_ui: UI, overrides: dict[str, str], status: int, message: str
) -> None:
    answer = marketer_ui.post("/admin/types/new", type_form(**overrides))
    assert answer.status_code == status, answer.text
    assert message in error_of(answer)
    assert 'value="Loan calculator usage"' in answer.text or overrides.get("name") == ""
    assert "Someone ran the loan calculator." in answer.text
    assert 'value="currency"' in answer.text or overrides.get("fields-1-name")


def test_too_many_fields_is_a_413_at_the_form(marketer_ui: UI) -> None:
    form = type_form()
    for i in range(3, 60):
        form[f"fields-{i}-name"] = f"f{i}"
        form[f"fields-{i}-type"] = "text"
    answer = marketer_ui.post("/admin/types/new", form)
    assert answer.status_code == 413
    assert "at most 50 fields" in error_of(answer)


def test_edit_a_type(marketer_ui: UI, hub: Hub, make_type: MakeType) -> None:
    found = make_type(
        name="Deposit made",
        fields=[{"name": "amount", "type": "decimal", "description": "In EUR", "max_length": None}],
        rate_limits={"per_contact": None, "per_ip": {"limit": 30, "window_seconds": 120}},
    )
    page = marketer_ui.get(f"/admin/types/{found.id}")
    assert page.status_code == 200
    assert 'value="Deposit made"' in page.text
    assert 'name="limit_ip" value="30"' in page.text
    assert 'name="limit_ip_window" value="2"' in page.text  # 120 seconds shown as 2 minutes
    form = type_form(
        name="Deposit",
        code_name="deposit",
        code_name_auto="0",
        **{"fields-0-description": "In EUR"},
    )
    answer = marketer_ui.post(f"/admin/types/{found.id}", form)
    assert answer.status_code == 303, error_of(answer)
    changed = hub.types.get(found.id)
    assert (changed.name, changed.code_name) == ("Deposit", "deposit")
    assert changed.fields[0].description == "In EUR"
    assert [f.name for f in changed.fields] == ["amount", "currency"]


def test_a_used_types_code_name_is_fixed(
    marketer_ui: UI, hub: Hub, make_type: MakeType, tracker: Tracker
) -> None:
    found = make_type(name="Deposit made", fields=[{"name": "amount", "type": "decimal"}])
    tracker.log([{"type": found.code_name, "fields": {"amount": "1"}}])
    page = marketer_ui.get(f"/admin/types/{found.id}")
    assert "Fixed: activities of this type exist." in page.text
    assert "Delete this activity type" not in page.text
    form = type_form(name="Deposit made", code_name="deposit_made", **{"fields-0-type": "text"})
    answer = marketer_ui.post(f"/admin/types/{found.id}", form)
    assert answer.status_code == 409
    assert "cannot change type" in error_of(answer)


def test_enable_and_disable_in_one_click(marketer_ui: UI, hub: Hub, make_type: MakeType) -> None:
    found = make_type(name="Deposit made")
    row = row_of(marketer_ui.get("/admin/types").text, found.code_name)
    assert f'action="/admin/types/{found.id}/disable"' in row
    answer = marketer_ui.post(f"/admin/types/{found.id}/disable", follow=True)
    assert "Disabled Deposit made" in flash_of(answer)
    assert not hub.types.get(found.id).enabled
    row = row_of(answer.text, found.code_name)
    assert "Disabled" in row
    assert f'action="/admin/types/{found.id}/enable"' in row
    marketer_ui.post(f"/admin/types/{found.id}/enable")
    assert hub.types.get(found.id).enabled
    assert marketer_ui.post(f"/admin/types/{found.id}/enable", csrf="").status_code == 403


def test_delete_an_unused_type_but_not_a_builtin(
    marketer_ui: UI, hub: Hub, make_type: MakeType
) -> None:
    found = make_type(name="Deposit made")
    assert marketer_ui.post(f"/admin/types/{found.id}/delete").status_code == 303
    assert found.code_name not in {t.code_name for t in hub.types.all()}
    click = hub.types.get_by_code("click")
    refused = marketer_ui.post(f"/admin/types/{click.id}/delete")
    assert refused.status_code == 409
    assert "built in" in refused.text


def test_the_form_for_a_new_type(marketer_ui: UI) -> None:
    page = marketer_ui.get("/admin/types/new")
    assert page.status_code == 200
    assert '<label for="name">Activity type name' in page.text
    assert 'data-code-name data-auto="1"' in page.text
    assert 'name="limit_contact" value="10"' in page.text  # Ortto's defaults
    assert 'name="limit_ip" value="100"' in page.text
    assert '<template data-row-template="fields">' in page.text


def test_a_fields_description_and_max_length_are_edited_in_the_form(
    marketer_ui: UI, hub: Hub
) -> None:
    page = marketer_ui.get("/admin/types/new")
    assert 'type="hidden" name="fields-0-description"' not in page.text
    assert '<label for="fields-0-description">Description</label>' in page.text
    assert '<input type="text" id="fields-0-description" name="fields-0-description"' in page.text
    assert (
        '<label for="fields-0-max_length">Max length <span class="label-note">(text only)</span>'
        in page.text
    )
    assert 'type="number" id="fields-0-max_length"' in page.text
    assert "is for text fields only" in page.text  # the fieldset's hint says so too
    form = type_form(
        **{"fields-1-description": "ISO 4217 code", "fields-1-max_length": "3"},
    )
    assert marketer_ui.post("/admin/types/new", form).status_code == 303
    currency = hub.types.get_by_code("loan_calculator_usage").fields[1]
    assert (currency.description, currency.max_length) == ("ISO 4217 code", 3)
    edit = marketer_ui.get(f"/admin/types/{hub.types.get_by_code('loan_calculator_usage').id}")
    assert 'name="fields-1-description" value="ISO 4217 code"' in edit.text
    assert 'name="fields-1-max_length" value="3"' in edit.text


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"fields-0-max_length": "10"},
            "Field 'amount': Max length is for text fields only; clear it or make the field text.",
        ),
        ({"fields-1-max_length": "ten"}, "Field 'currency': Max length is a number of characters"),
        ({"fields-1-max_length": "0"}, "from 1 to 100,000"),
        ({"fields-1-max_length": "9" * 5000}, "from 1 to 100,000"),
    ],
)
def test_a_max_length_error_names_the_field_and_marks_its_box(
    marketer_ui: UI, row: dict[str, str], message: str
) -> None:
    answer = marketer_ui.post("/admin/types/new", type_form(**row))
    assert answer.status_code == 400
    assert message in error_of(answer)
    assert "max_length" not in error_of(answer)
    (name,) = row
    assert re.search(
        rf'id="{name}"[^>]* aria-invalid="true" aria-describedby="fields-error"', answer.text
    )
    assert answer.text.count('aria-invalid="true"') == 1


def test_a_shorter_max_length_of_a_used_type_is_told_in_the_forms_words(
    marketer_ui: UI, make_type: MakeType, tracker: Tracker
) -> None:
    found = make_type(name="Search", fields=[{"name": "query", "type": "text", "max_length": 50}])
    tracker.log([{"type": found.code_name, "fields": {"query": "loans"}}])
    form = type_form(
        name="Search",
        code_name=found.code_name,
        **{"fields-0-name": "query", "fields-0-type": "text", "fields-0-primary": None,
           "fields-0-required": None, "fields-0-max_length": "20", "fields-1-name": ""},
    )  # fmt: skip
    answer = marketer_ui.post(f"/admin/types/{found.id}", form)
    assert answer.status_code == 409, error_of(answer)
    assert "Field 'query' cannot get a shorter max length" in error_of(answer)
    assert 'id="fields-0-max_length"' in answer.text


def test_the_list_marks_primary_and_required_fields(marketer_ui: UI, make_type: MakeType) -> None:
    make_type(
        name="Deposit made",
        fields=[
            {"name": "amount", "type": "decimal", "primary": True, "required": True},
            {"name": "note", "type": "text"},
        ],
    )
    row = row_of(marketer_ui.get("/admin/types").text, "deposit_made")
    assert (
        '<code>amount</code> <span class="badge">primary</span> <span class="badge">required</span>'
        ", <code>note</code></td>"
    ) in row


def test_the_code_name_reads_naturally(marketer_ui: UI) -> None:
    page = marketer_ui.get("/admin/types/new")
    assert '<label for="code_name">Code name (identifier)</label>' in page.text
    assert "Identifiers (code name)" not in page.text


@pytest.mark.parametrize(
    ("overrides", "at_fault"),
    [
        ({"name": ""}, "name"),
        ({"code_name": "Bad Code!", "code_name_auto": "0"}, "code_name"),
        ({"fields-1-primary": "1"}, "fields-1-primary"),
        ({"fields-1-name": "amount"}, "fields-1-name"),
        ({"fields-1-name": "bad name"}, "fields-1-name"),
        ({"fields-1-type": "colour"}, "fields-1-type"),
        ({"limit_contact": "many"}, "limit_contact"),
        ({"limit_contact": "0"}, "limit_contact"),
        ({"limit_contact_window": ""}, "limit_contact_window"),
        ({"retention_days": "0"}, "retention_days"),
    ],
)
def test_an_error_marks_only_the_control_at_fault(
    marketer_ui: UI, overrides: dict[str, str], at_fault: str
) -> None:
    answer = marketer_ui.post("/admin/types/new", type_form(**overrides))
    assert answer.status_code == 400
    marked = re.findall(r'<(?:input|select|textarea)[^>]*aria-invalid="true"[^>]*>', answer.text)
    assert len(marked) == 1, marked
    assert f'id="{at_fault}"' in marked[0]
    described = re.search(r'aria-describedby="([^"]*)"', marked[0])
    assert described is not None
    # The message is tied to the control: one of the ids it is described by holds it.
    texts = [
        re.search(rf'id="{ident}">(.*?)</p>', answer.text, re.S) for ident in described[1].split()
    ]
    assert any(t and html.unescape(t[1]).strip() in error_of(answer) for t in texts), texts


def test_the_list_shows_each_types_retention(
    marketer_ui: UI, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Quote", retention_days=90)
    page = marketer_ui.get("/admin/types").text
    row = page.split(f'id="type-{kind.code_name}"')[1].split("</tr>")[0]
    assert '<td class="retention">90 days</td>' in row
    visits = page.split('id="type-pagevisit"')[1].split("</tr>")[0]
    assert '<td class="retention">kept forever</td>' in visits
