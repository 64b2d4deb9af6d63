"""The activity log across contacts (filters, field filters, paging, bad filters as 400
pages) and the list helpers behind every list page."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from waypost.admin import listing
from waypost.admin.pages.activities import activity_query, chosen_field_filters
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType

if TYPE_CHECKING:
    from tests.admin_log_support import Seeded, ids_in, link_of, seed
    from tests.admin_support import UI, error_of
    from tests.conftest import Tracker
else:
    from admin_log_support import Seeded, ids_in, link_of, seed
    from admin_support import UI, error_of

MakeUI = Callable[..., UI]


@pytest.fixture
def seeded(hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]) -> Seeded:
    return seed(hub, tracker, make_type)


# -- the list helpers -------------------------------------------------------------------------


def test_times_are_utc_unless_they_say_otherwise() -> None:
    utc = dt.UTC
    assert listing.when({"t": "2026-05-01"}, "t", "T") == dt.datetime(2026, 5, 1, tzinfo=utc)
    assert listing.when({"t": "2026-05-01T14:30"}, "t", "T") == dt.datetime(
        2026, 5, 1, 14, 30, tzinfo=utc
    )
    assert listing.when({"t": "2026-05-01 14:30:05"}, "t", "T") == dt.datetime(
        2026, 5, 1, 14, 30, 5, tzinfo=utc
    )
    plus_two = listing.when({"t": "2026-05-01T14:30+02:00"}, "t", "T")
    assert plus_two == dt.datetime(2026, 5, 1, 12, 30, tzinfo=utc)
    assert listing.when({"t": " "}, "t", "T") is None
    assert listing.when({}, "t", "T") is None
    with pytest.raises(ApiError) as error:
        listing.when({"t": "soon"}, "t", "From")
    assert (error.value.status, error.value.field) == (400, "t")
    assert "From: 'soon' is not a date" in error.value.message
    # Shown again as short as it can be, in UTC.
    assert listing.form_time(plus_two) == "2026-05-01T12:30"
    assert listing.time_value({"t": "2026-05-01T14:30+02:00"}, "t") == "2026-05-01T12:30"
    assert listing.time_value({"t": "2026-05-01"}, "t") == "2026-05-01"
    assert listing.time_value({"t": "2026-05-01T14:30:05"}, "t") == "2026-05-01T14:30:05"
    assert listing.time_value({"t": "soon"}, "t") == "soon"
    # A time with no UTC form (Python's datetime ends at the years 1 and 9999) is a 400.
    for edge in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
        with pytest.raises(ApiError) as error:
            listing.when({"t": edge}, "t", "From")
        assert "outside the years 1 to 9999" in error.value.message
        assert listing.time_value({"t": edge}, "t") == edge


@pytest.mark.parametrize("text", ["05/01/2026", "20260501", "2026-W18", "2026-05-01T14", "2026"])
def test_times_are_iso_8601_only(text: str) -> None:
    with pytest.raises(ApiError) as error:
        listing.when({"t": text}, "t", "From")
    assert error.value.message == (
        f"From: {text!r} is not a date in ISO 8601; write it as 2026-05-01 or "
        "2026-05-01T14:30 (UTC)."
    )


def test_identifiers_numbers_and_texts() -> None:
    ident = uuid.uuid4()
    assert listing.identifier({"c": f" {ident} "}, "c", "C") == ident
    assert listing.identifier({"c": ""}, "c", "C") is None
    with pytest.raises(ApiError, match="not an identifier"):
        listing.identifier({"c": "x"}, "c", "C")
    assert listing.limit({}) == listing.PAGE_SIZE
    assert listing.limit({"limit": "1000"}) == 1000
    for bad in ("0", "1001", "-1", "1.5", "x", "٣", "9" * 400):
        with pytest.raises(ApiError, match="whole number from 1 to 1,000"):
            listing.limit({"limit": bad})
    with pytest.raises(ApiError, match="NUL"):
        listing.text({"q": "a\x00"}, "q", "Q")
    with pytest.raises(ApiError, match="at most 500"):
        listing.text({"q": "a" * 501}, "q", "Q")
    assert listing.field_filters(
        {"field.a": " 1 ", "field.b.gt": "2", "field.c": "", "x": "3"}
    ) == {
        "a": "1",
        "b.gt": "2",
    }


def test_paging_links_keep_the_filters() -> None:
    first = listing.paging("/admin/x", {"type": "click", "cursor": "", "limit": "5"}, "abc")
    assert first.number == 1
    assert first.first is None
    assert first.next == "/admin/x?type=click&limit=5&cursor=abc&page=2"
    later = listing.paging("/admin/x", {"type": "a b&c", "cursor": "abc", "page": "2"}, None, "log")
    assert later.number == 2
    assert later.first == "/admin/x?type=a+b%26c#log"
    assert later.next is None
    assert listing.query_string({"a": "1", "b": None, "c": "", "d": 2}) == "a=1&d=2"


def test_the_log_query_from_the_filters() -> None:
    contact = uuid.uuid4()
    query = activity_query({"type": "click", "since": "2026-01-01", "limit": "7"}, contact)
    assert query.contact == contact
    assert query.type == "click"
    assert query.limit == 7
    assert query.since == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ApiError, match="Until must be later"):
        activity_query({"since": "2026-01-02", "until": "2026-01-02"}, None)
    assert chosen_field_filters({"type": "a", "fields_for": "a", "field.x": "1"}) == {"x": "1"}
    assert chosen_field_filters({"type": "b", "fields_for": "a", "field.x": "1"}) == {}
    assert chosen_field_filters({"type": "b", "field.x": "1"}) == {"x": "1"}


# -- the page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_the_log_across_contacts(make_ui: MakeUI, seeded: Seeded, role: str) -> None:
    ui = make_ui(role)
    page = ui.get("/admin/activities")
    assert page.status_code == 200, page.text
    assert len(ids_in(page.text, "activity")) == 5
    # Newest first: John's click (5 Jan) before Jane's deposits.
    assert page.text.index("john-cta") < page.text.index("CZK") < page.text.index("cta-1")
    assert f'href="/admin/contacts/{seeded.john}">John Smith</a>' in page.text
    assert f'href="/admin/contacts/{seeded.jane}">Jane Doe</a>' in page.text
    assert seeded.tracker.channel.name in page.text
    assert '<th scope="col">Occurred (UTC)</th>' in page.text
    assert 'aria-current="page">Activities</a>' in page.text


def test_filters_by_type_channel_contact_time_and_fields(
    admin_ui: UI, hub: Hub, seeded: Seeded, make_tracker: Callable[..., Tracker]
) -> None:
    other = make_tracker()
    hub.catalog.invalidate()  # the new key, before the catalog's cache would expire
    other.log([{"type": "click", "value": "elsewhere"}], str(seeded.john))

    def count(**params: str) -> int:
        page = admin_ui.get("/admin/activities", params=params)
        assert page.status_code == 200, page.text
        return len(ids_in(page.text, "activity"))

    assert count() == 6
    assert count(type="click") == 3
    assert count(channel=str(other.channel.id)) == 1
    assert count(channel=str(seeded.tracker.channel.id), type="click") == 2
    assert count(contact=str(seeded.john)) == 2
    assert count(since="2026-01-03T00:00", until="2026-01-05T00:00") == 2
    code = seeded.deposit.code_name
    assert count(type=code) == 2
    assert count(type=code, **{"field.currency": "CZK"}) == 1
    assert count(type=code, **{"field.amount": "100.5"}) == 1  # compared as a number
    assert count(type=code, **{"field.amount.gt": "50"}) == 1
    shown = admin_ui.get("/admin/activities", params={"type": code, "field.amount.gt": "50"})
    assert 'name="field.amount" value="50"' in shown.text  # an operator filter is kept
    assert '<option value="gt" selected>' in shown.text
    assert count(type="no_such_type") == 0


def test_booleans_show_and_filter_as_true_and_false(
    admin_ui: UI, hub: Hub, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    make_type(name="Order", code_name="custom_order", fields=[{"name": "gift", "type": "boolean"}])
    hub.catalog.invalidate()
    contact = tracker.new_contact()
    tracker.log(
        [{"type": "custom_order", "fields": {"gift": flag}} for flag in (True, False, False)],
        contact,
    )
    for path in ("/admin/activities", f"/admin/contacts/{contact}"):
        page = admin_ui.get(path)
        assert page.status_code == 200, page.text
        assert "<code>gift</code> true" in page.text
        assert "<code>gift</code> false" in page.text
        assert "True" not in page.text
        assert "False" not in page.text

    def count(value: str) -> int:
        page = admin_ui.get(
            "/admin/activities", params={"type": "custom_order", "field.gift": value}
        )
        assert page.status_code == 200, page.text
        return len(ids_in(page.text, "activity"))

    # What the log shows filters, in any letter case.
    assert [count(v) for v in ("true", "false", "False", "TRUE", "")] == [1, 2, 2, 1, 3]
    # The form offers any / true / false for a boolean field, showing the one chosen.
    page = admin_ui.get("/admin/activities", params={"type": "custom_order", "field.gift": "False"})
    form = page.text.split('<select id="filter-field-1" name="field.gift"', 1)[1].split(
        "</select>"
    )[0]
    options = [o.split(">", 1)[1].split("<", 1)[0] for o in form.split("<option")[1:]]
    assert options == ["Any", "true", "false"]
    assert '<option value="false" selected>' in form


def operators_of(page: str, name: str) -> list[str]:
    match = re.search(rf'<select [^>]*name="field_op.{name}"[^>]*>(.*?)</select>', page, re.S)
    assert match is not None, f"no operator for {name}"
    return re.findall(r'<option value="([^"]*)"', match[1])


def test_ordered_fields_take_the_apis_range_operators(
    admin_ui: UI,
    hub: Hub,
    seeded: Seeded,
    make_type: Callable[..., ActivityType],
    tracker: Tracker,
) -> None:
    code = seeded.deposit.code_name

    def count(**params: str) -> int:
        page = admin_ui.get("/admin/activities", params=params)
        assert page.status_code == 200, page.text
        return len(ids_in(page.text, "activity"))

    page = admin_ui.get("/admin/activities", params={"type": code})
    assert operators_of(page.text, "amount") == ["eq", "gt", "gte", "lt", "lte"]
    assert 'name="field_op.currency"' not in page.text  # text: equality only
    for op, value, expected in [
        ("eq", "20", 1), ("gt", "20", 1), ("gte", "20", 2), ("lt", "100.5", 1),
        ("lte", "100.5", 2), ("", "20", 1),
    ]:  # fmt: skip
        assert count(type=code, **{"field.amount": value, "field_op.amount": op}) == expected, op
    chosen = {"type": code, "field.amount": "20", "field_op.amount": "gte", "limit": "1"}
    shown = admin_ui.get("/admin/activities", params=chosen)
    assert '<option value="gte" selected>' in shown.text
    assert 'name="field.amount" value="20"' in shown.text
    following = link_of(shown.text)
    assert following is not None
    assert "field.amount.gte=20" in following  # the next page asks as the admin API does
    assert "field_op" not in following
    assert len(ids_in(admin_ui.get(following).text, "activity")) == 1
    bad = admin_ui.get(
        "/admin/activities", params={"type": code, "field.amount": "1", "field_op.amount": "near"}
    )
    assert bad.status_code == 400
    assert "Unknown operator" in error_of(bad)

    # Integer and datetime fields too; a datetime is typed in UTC, as the other times.
    booked = make_type(
        name="Seat booked",
        fields=[{"name": "seats", "type": "integer"}, {"name": "starts", "type": "datetime"}],
    )
    hub.catalog.invalidate()
    results = tracker.log(
        [
            {"type": booked.code_name, "fields": {"seats": 2, "starts": "2026-05-01T10:00:00Z"}},
            {"type": booked.code_name, "fields": {"seats": 5, "starts": "2026-06-01T00:00:00Z"}},
        ],
        str(seeded.john),
    )
    assert [r["status"] for r in results] == [202, 202], results
    page = admin_ui.get("/admin/activities", params={"type": booked.code_name})
    assert operators_of(page.text, "seats") == operators_of(page.text, "starts")
    starts = re.search(r'<input [^>]*name="field.starts"[^>]*>', page.text)
    assert starts is not None
    assert 'placeholder="YYYY-MM-DD or YYYY-MM-DDTHH:MM"' in starts[0]
    booked_code = booked.code_name
    assert count(type=booked_code, **{"field.seats": "3", "field_op.seats": "gte"}) == 1
    assert count(type=booked_code, **{"field.starts": "2026-05-15", "field_op.starts": "lt"}) == 1
    assert count(type=booked_code, **{"field.starts": "2026-05-01T10:00"}) == 1
    late = {"type": booked_code, "field.starts": "01/06/2026", "field_op.starts": "gt"}
    refused = admin_ui.get("/admin/activities", params=late)
    assert refused.status_code == 400
    assert "not a date in ISO 8601" in html.unescape(error_of(refused))


@pytest.mark.parametrize("path", ["/admin/activities", "/admin/rejected"])
def test_time_filters_are_iso_utc_text(admin_ui: UI, seeded: Seeded, path: str) -> None:
    page = admin_ui.get(path)
    assert 'type="datetime-local"' not in page.text
    for name in ("since", "until"):
        tag = re.search(rf'<input [^>]*name="{name}"[^>]*>', page.text)
        assert tag is not None
        assert 'type="text"' in tag[0]
        assert 'placeholder="YYYY-MM-DD or YYYY-MM-DDTHH:MM"' in tag[0]
    kept = admin_ui.get(path, params={"since": "2026-01-03", "until": "2026-01-05T14:30"})
    assert kept.status_code == 200
    assert 'name="since" value="2026-01-03"' in kept.text
    assert 'name="until" value="2026-01-05T14:30"' in kept.text
    us = admin_ui.get(path, params={"since": "01/03/2026"})
    assert us.status_code == 400
    assert "From: '01/03/2026' is not a date in ISO 8601" in html.unescape(error_of(us))
    tag = re.search(r'<input [^>]*name="since"[^>]*>', us.text)
    assert tag is not None
    assert 'aria-invalid="true"' in tag[0]


def test_the_log_is_paged_with_its_filters(admin_ui: UI, seeded: Seeded) -> None:
    seen: list[str] = []
    numbers: list[str] = []
    path: str | None = "/admin/activities?type=click&limit=1"
    while path is not None:
        page = admin_ui.get(path)
        assert page.status_code == 200, page.text
        seen.extend(ids_in(page.text, "activity"))
        numbers.append(page.text.split('aria-current="page" class="current">', 1)[1][:7])
        path = link_of(page.text)
        if path is not None:
            assert "type=click" in path
    assert len(seen) == len(set(seen)) == 2
    assert numbers == ["Page 1<", "Page 2<"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "click", "contact": "jane"}, "Contact: 'jane' is not an identifier"),
        ({"channel": "x"}, "Channel: 'x' is not an identifier"),
        ({"since": "2026-02-30"}, "From: '2026-02-30' is not a date"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor is not one"),
        ({"limit": "5000"}, "Rows per page"),
        ({"page": "x"}, "Page"),
        ({"field.amount": "1"}, "need the activity type"),
        ({"type": "TYPE", "field.amount": "lots"}, "not a decimal value. (in field.amount"),
        ({"type": "TYPE", "field.amount.near": "1"}, "Unknown operator"),
        ({"type": "TYPE", "field.currency.gt": "A"}, "ranges apply"),
        ({"type": "no_such_type", "field.x": "1"}, "No activity type has code name"),
    ],
)
def test_bad_filters_are_400_pages(
    marketer_ui: UI, seeded: Seeded, params: dict[str, str], message: str
) -> None:
    params = {k: (seeded.deposit.code_name if v == "TYPE" else v) for k, v in params.items()}
    page = marketer_ui.get("/admin/activities", params=params)
    assert page.status_code == 400, page.text
    assert message in html.unescape(error_of(page))
    assert 'class="filters"' in page.text  # the form is there to correct it
    assert "<table" not in page.text


def test_the_log_offers_its_activities_as_files_with_its_filters(
    marketer_ui: UI, tracker: Tracker, make_type: Callable[..., ActivityType]
) -> None:
    kind = make_type(name="Quote", fields=[{"name": "amount", "type": "integer"}])
    tracker.log([{"type": kind.code_name, "fields": {"amount": n}} for n in (5, 50)])
    page = marketer_ui.get(
        "/admin/activities",
        params={"type": kind.code_name, "field.amount": "50", "since": "2020-01-01"},
    ).text
    links = [
        html.unescape(link) for link in re.findall(r'href="(/api/activities/export\?[^"]+)"', page)
    ]
    assert [link.split("?")[1].split("&")[0] for link in links] == [
        "format=csv",
        "format=ndjson",
        "format=parquet",
    ]
    ndjson = marketer_ui.get(links[1])
    assert ndjson.status_code == 200, ndjson.text
    assert [line.count('"amount":50') for line in ndjson.text.splitlines()] == [1]
    assert "since=2020-01-01T00%3A00%3A00%2B00%3A00" in links[0]
