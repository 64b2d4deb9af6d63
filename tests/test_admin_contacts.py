"""The contacts pages: search, a contact's page (fields, consents, groups, activity log),
merged contacts, the consent history, and bad filters as 400 pages."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from waypost.admin.pages.contacts import consent_rows, display_name, shown
from waypost.hub import Hub
from waypost.records.consents import Agreement
from waypost.records.contacts import merge_contacts
from waypost.services.activity_types import ActivityType
from waypost.services.consents import Consent

if TYPE_CHECKING:
    from tests.admin_log_support import Seeded, add_contact, ids_in, link_of, seed
    from tests.admin_support import UI, error_of
    from tests.conftest import Tracker
else:
    from admin_log_support import Seeded, add_contact, ids_in, link_of, seed
    from admin_support import UI, error_of

MakeUI = Callable[..., UI]


@pytest.fixture
def seeded(hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]) -> Seeded:
    return seed(hub, tracker, make_type)


# -- pure helpers ---------------------------------------------------------------------------


def test_how_a_contact_is_named() -> None:
    assert display_name("Jane", "Doe", "j@example.com") == "Jane Doe"
    assert display_name(None, "Doe", "j@example.com") == "Doe"
    assert display_name(None, None, "j@example.com") == "j@example.com"
    assert display_name(None, None, None) == "Anonymous contact"
    assert display_name("", "", "") == "Anonymous contact"
    assert shown("text") == "text"
    assert shown({"a": [1, True]}) == '{"a": [1, true]}'
    assert shown("čau") == "čau"


def test_consent_rows_take_the_newest_answer() -> None:
    def consent(code: str) -> Consent:
        return Consent(uuid.uuid4(), code, code.title(), 2, {}, _t(), _t())

    def agreement(code: str, agreed: bool) -> Agreement:
        return Agreement(uuid.uuid4(), uuid.uuid4(), code, agreed, 1, None, _t())

    newest_first = [agreement("news", False), agreement("news", True), agreement("calls", True)]
    rows = consent_rows([consent("news"), consent("calls"), consent("sms")], newest_first)
    assert [(r.consent.code_name, r.latest and r.latest.agreed) for r in rows] == [
        ("news", False),
        ("calls", True),
        ("sms", None),
    ]


def _t() -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# -- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_search_by_email_or_name(make_ui: MakeUI, seeded: Seeded, role: str) -> None:
    ui = make_ui(role)
    page = ui.get("/admin/contacts", params={"q": "jane.d"})
    assert page.status_code == 200, page.text
    assert ids_in(page.text, "contact") == [str(seeded.jane)]
    assert "Jane Doe" in page.text
    for q in ("JANE", "doe", "Jane Do", "Doe, J"):
        assert ids_in(ui.get("/admin/contacts", params={"q": q}).text, "contact") == [
            str(seeded.jane)
        ], q
    none = ui.get("/admin/contacts", params={"q": "example"})  # a prefix, not "contains"
    assert none.status_code == 200
    assert ids_in(none.text, "contact") == []
    assert "No contact's email, first or last name starts with" in html.unescape(none.text)
    every = ui.get("/admin/contacts")
    assert ids_in(every.text, "contact") == [str(seeded.john), str(seeded.jane)]
    assert 'aria-current="page">Contacts</a>' in every.text


def test_a_contact_id_opens_the_contact(admin_ui: UI, seeded: Seeded) -> None:
    answer = admin_ui.get(
        "/admin/contacts", params={"q": f" {seeded.jane} "}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/contacts/{seeded.jane}"
    missing = admin_ui.get("/admin/contacts", params={"q": str(uuid.uuid4())})
    assert missing.status_code == 404
    assert "No contact" in missing.text


def test_contacts_are_paged(admin_ui: UI, hub: Hub) -> None:
    made = [add_contact(hub, email=f"p{n:02d}@example.com", first_name="Pat") for n in range(7)]
    seen: list[str] = []
    path: str | None = "/admin/contacts?q=pat&limit=3"
    numbers = []
    while path is not None:
        page = admin_ui.get(path)
        assert page.status_code == 200, page.text
        seen.extend(ids_in(page.text, "contact"))
        numbers.append(page.text.count('aria-current="page" class="current">Page '))
        path = link_of(page.text)
    # Ordered by the first name (all "pat"), then by id; each contact once.
    assert seen == [str(c) for c in sorted(made)]
    assert numbers == [1, 1, 1]
    assert "First page" in admin_ui.get("/admin/contacts?q=pat&limit=3").text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"q": "a", "cursor": "nonsense"}, "cursor is not one"),
        ({"q": "a", "limit": "0"}, "Rows per page"),
        ({"q": "a", "limit": "x"}, "Rows per page"),
        ({"limit": "1001"}, "Rows per page"),
        ({"q": "a" * 300}, "at most 254"),
        ({"q": "a\x00b"}, "NUL"),
        ({"q": "a", "page": "0"}, "Page"),
    ],
)
def test_bad_search_values_are_400_pages(admin_ui: UI, query: dict[str, str], message: str) -> None:
    answer = admin_ui.get("/admin/contacts", params=query)
    assert answer.status_code == 400, answer.text
    assert message in html.unescape(error_of(answer))
    assert 'id="q"' in answer.text  # the search form is still there


# -- a contact's page ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_a_contact_page_shows_everything_known(make_ui: MakeUI, seeded: Seeded, role: str) -> None:
    ui = make_ui(role)
    page = ui.get(f"/admin/contacts/{seeded.jane}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "<h1>Jane Doe" in text
    assert "Jane.Doe@example.com" in text
    assert "ACME &lt;Bank&gt;" in text  # escaped
    assert "<dt>City</dt><dd>Brno</dd>" in text
    assert "<dt><code>plan</code></dt><dd>gold</dd>" in text
    assert "<dt><code>score</code></dt><dd>7</dd>" in text
    assert "<code>CRM-1</code>" in text
    # Consents: the current state, and the history newest first.
    assert 'id="consent-Newsletter"' in text
    assert text.index(">Agreed</span>") < text.index("<h3>History</h3>")
    assert text.count("<td>Revoked</td>") == 1
    assert "Brno people" in text
    # The activity log: newest first, 4 activities.
    assert len(ids_in(text, "activity")) == 4
    assert text.index("100.5") > text.index("CZK")
    assert "2026-01-04 10:00:00 UTC" in text
    assert 'datetime="2026-01-04T10:00:00Z"' in text


def test_a_contact_log_is_filtered_and_paged(admin_ui: UI, seeded: Seeded) -> None:
    base = f"/admin/contacts/{seeded.jane}"
    clicks = admin_ui.get(base, params={"type": "click"})
    assert len(ids_in(clicks.text, "activity")) == 1
    assert "cta-1" in clicks.text
    window = admin_ui.get(base, params={"since": "2026-01-02T00:00", "until": "2026-01-04"})
    assert len(ids_in(window.text, "activity")) == 2
    assert 'value="2026-01-02"' in window.text  # shown again in UTC, as short as exact
    code = seeded.deposit.code_name
    by_field = admin_ui.get(base, params={"type": code, "field.currency": "EUR"})
    assert len(ids_in(by_field.text, "activity")) == 1
    assert 'name="field.currency"' in by_field.text
    # Changing the type drops the previous type's field inputs instead of failing.
    changed = admin_ui.get(
        base, params={"type": "click", "fields_for": code, "field.currency": "EUR"}
    )
    assert changed.status_code == 200
    assert len(ids_in(changed.text, "activity")) == 1
    seen: list[str] = []
    path: str | None = f"{base}?limit=3"
    while path is not None:
        page = admin_ui.get(path)
        seen.extend(ids_in(page.text, "activity"))
        path = link_of(page.text)
        if path is not None:
            assert path.endswith("#activity-log")
    assert len(seen) == len(set(seen)) == 4


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-01-05", "until": "2026-01-01"}, "until"),
        ({"limit": "-1"}, None),
        ({"cursor": "@@@"}, None),
        ({"field.amount": "1"}, None),  # field filters need the type
        ({"type": "TYPE", "field.nope": "1"}, "field.nope"),
    ],
)
def test_bad_log_filters_are_400_pages(
    admin_ui: UI, seeded: Seeded, query: dict[str, str], field: str | None
) -> None:
    query = {k: (seeded.deposit.code_name if v == "TYPE" else v) for k, v in query.items()}
    page = admin_ui.get(f"/admin/contacts/{seeded.jane}", params=query)
    assert page.status_code == 400, page.text
    assert "Cannot show this list" in page.text
    assert "<h1>Jane Doe" in page.text  # the rest of the page is there
    if field is not None:
        assert f'name="{field}"' in page.text
        assert 'aria-invalid="true"' in page.text


def test_missing_and_malformed_contacts_are_404(admin_ui: UI) -> None:
    for path in (f"/admin/contacts/{uuid.uuid4()}", "/admin/contacts/not-an-id"):
        answer = admin_ui.get(path)
        assert answer.status_code == 404
        assert "No contact" in answer.text


def test_a_merged_contact_leads_to_the_survivor(admin_ui: UI, hub: Hub, seeded: Seeded) -> None:
    with hub.store.write() as conn:
        merge_contacts(conn, seeded.john, seeded.jane, "identify")
    page = admin_ui.get(f"/admin/contacts/{seeded.john}")
    assert page.status_code == 200
    assert "This contact was merged" in page.text
    assert f'href="/admin/contacts/{seeded.jane}">Jane Doe</a>' in page.text
    assert 'id="activity-log"' not in page.text
    found = admin_ui.get("/admin/contacts", params={"q": "john@"})
    assert ids_in(found.text, "contact") == [str(seeded.john)]
    assert "merged</span>" in found.text
    survivor = admin_ui.get(f"/admin/contacts/{seeded.jane}")
    assert len(ids_in(survivor.text, "activity")) == 5  # John's click moved here


def test_the_whole_consent_history_is_paged(marketer_ui: UI, seeded: Seeded) -> None:
    path: str | None = f"/admin/contacts/{seeded.jane}/consents?limit=2"
    rows = 0
    while path is not None:
        page = marketer_ui.get(path)
        assert page.status_code == 200, page.text
        rows += page.text.count("<td>Agreed</td>") + page.text.count("<td>Revoked</td>")
        path = link_of(page.text)
    assert rows == 3
    bad = marketer_ui.get(f"/admin/contacts/{seeded.jane}/consents?cursor=x")
    assert bad.status_code == 400


def test_the_contact_pages_need_a_login(client: TestClient, seeded: Seeded) -> None:
    answer = client.get(f"/admin/contacts/{seeded.jane}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login?next=")


def test_the_list_offers_the_contacts_it_finds_as_files(marketer_ui: UI, tracker: Tracker) -> None:
    tracker.log(
        [{"type": "datainput", "value": "f", "contactFields": {"ContactEmail": "kim@example.com"}}]
    )
    tracker.new_contact()
    page = marketer_ui.get("/admin/contacts", params={"q": "kim"}).text
    links = [
        html.unescape(link) for link in re.findall(r'href="(/api/contacts/export\?[^"]+)"', page)
    ]
    assert links[0] == "/api/contacts/export?format=csv&q=kim"
    found = marketer_ui.get(links[1])
    assert found.status_code == 200
    assert [line.count("kim@example.com") for line in found.text.splitlines()] == [1]
