"""The contact groups pages: list, builder form (JSON fallback, count), a group's page, delete."""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.admin.pages import groups as groups_page
from waypost.hub import Hub
from waypost.ids import new_id, utcnow
from waypost.services.groups import Group, GroupCreate, MemberQuery
from waypost.store.schema import activity_rollups, contacts

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
else:
    from admin_support import UI, error_of, flash_of

CLICKED = {"activity": {"type": "click", "at_least": 2}}


def add_contacts(hub: Hub, clicks: list[int]) -> list[uuid.UUID]:
    """Contacts in id order, each with that many clicks today; the first ones named."""
    click = hub.types.get_by_code("click").id
    made = sorted(new_id() for _ in clicks)
    now = utcnow()
    with hub.store.write() as conn:
        for n, (contact, count) in enumerate(zip(made, clicks, strict=True)):
            conn.execute(
                contacts.insert().values(
                    id=contact,
                    attributes={},
                    created_at=now,
                    updated_at=now,
                    email=f"person{n}@example.com" if n < 2 else None,
                    first_name="Ann" if n == 0 else None,
                )
            )
            if count:
                conn.execute(
                    activity_rollups.insert().values(
                        contact_id=contact, type_id=click, day=now.date(), count=count
                    )
                )
    return made


def make_group(hub: Hub, name: str = "Clickers", condition: Any = None) -> Group:
    return hub.groups.create(GroupCreate(name=name, condition=condition or CLICKED))


def group_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "name": "Frequent clickers",
        "description": "Clicked twice or more.",
        "condition": json.dumps(CLICKED),
        "intent": "save",
    }
    form.update(overrides)
    return form


def textarea_of(page: str, name: str) -> str:
    match = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match is not None
    return html.unescape(match.group(1))


def catalog_of(page: str) -> Any:
    match = re.search(r"data-catalog='([^']*)'", page)
    assert match is not None
    return json.loads(html.unescape(match.group(1)))


# -- the list --------------------------------------------------------------------------------


def test_the_list_shows_member_counts(marketer_ui: UI, hub: Hub) -> None:
    empty = marketer_ui.get("/admin/groups")
    assert empty.status_code == 200
    assert "No contact groups yet." in empty.text
    add_contacts(hub, [2, 3, 1])
    group = make_group(hub)
    page = marketer_ui.get("/admin/groups")
    row = re.search(rf'<tr id="group-{group.id}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert f'href="/admin/groups/{group.id}"' in row.group(1)
    assert '<td class="num">2</td>' in row.group(1)
    assert "UTC" in row.group(1)  # computed at
    assert 'href="/admin/groups/new"' in page.text
    assert '<a href="/admin/groups" aria-current="page">Contact groups</a>' in page.text


# -- the form --------------------------------------------------------------------------------


def test_the_form_offers_types_consents_and_the_other_groups(
    marketer_ui: UI, hub: Hub, make_type: Any
) -> None:
    make_type(name="Loan calculator", fields=[{"name": "amount", "type": "decimal"}])
    other = make_group(hub, "Others")
    page = marketer_ui.get("/admin/groups/new")
    assert page.status_code == 200
    assert re.search(r'<script src="/admin/static/group-builder\.js\?v=\w+" defer>', page.text)
    catalog = catalog_of(page.text)
    loan = next(t for t in catalog["types"] if t["code"] == "loan_calculator")
    # With the operators the service takes for the field's type: no contains on a number.
    assert loan["fields"] == [
        {"name": "amount", "type": "decimal", "operators": ["eq", "gt", "gte", "lt", "lte"]}
    ]
    assert catalog["groups"] == [{"id": str(other.id), "name": "Others"}]
    assert {"name": "birthday", "label": "Birthday", "date": True} in catalog["contact_fields"]
    # Without scripts: the JSON, with an example to start from.
    assert '"type": "pagevisit"' in textarea_of(page.text, "condition")
    edit = marketer_ui.get(f"/admin/groups/{other.id}/edit")
    assert catalog_of(edit.text)["groups"] == []  # not itself


def test_create_a_group(marketer_ui: UI, hub: Hub) -> None:
    add_contacts(hub, [2, 3, 1])
    answer = marketer_ui.post("/admin/groups/new", group_form())
    assert answer.status_code == 303, answer.text
    [group] = hub.groups.list_page(MemberQuery()).data
    assert answer.headers["location"] == f"/admin/groups/{group.id}"
    assert (group.name, group.description, group.condition) == (
        "Frequent clickers",
        "Clicked twice or more.",
        CLICKED,
    )
    page = marketer_ui.get(answer.headers["location"])
    assert flash_of(page) == "Created the group Frequent clickers: 2 contacts are in it."


@pytest.mark.parametrize(
    ("condition", "status", "message"),
    [
        ("", 400, "Give the group a condition."),
        ('{"all": [', 400, "The condition is not valid JSON: Expecting value (line 1, column 10)."),
        ("[1, 2]", 400, "A condition is a JSON object"),
        ('{"activity": {"type": "nope"}}', 400, "activity: no activity type 'nope'."),
        ('{"all": []}', 400, "all: takes a non-empty list of conditions"),
        ('{"group": "' + str(uuid.UUID(int=1)) + '"}', 400, "group: no group"),
        ('{"consent": "Unknown"}', 400, "consent: no consent 'Unknown'"),
        # More digits than Python turns into an int: was a 500.
        ('{"activity": {"type": "x", "at_least": 1' + "0" * 5000 + "}}", 400, "too long to read"),
    ],
)
def test_a_bad_condition_comes_back_with_the_input_kept(
    marketer_ui: UI, hub: Hub, condition: str, status: int, message: str
) -> None:
    answer = marketer_ui.post("/admin/groups/new", group_form(condition=condition))
    assert answer.status_code == status
    assert message in error_of(answer)
    assert 'aria-invalid="true"' in answer.text  # on the condition's textarea
    assert 'value="Frequent clickers"' in answer.text
    assert textarea_of(answer.text, "condition") == condition
    assert hub.groups.list_page(MemberQuery()).data == []


@pytest.mark.parametrize("depth", [65, 100_000])
def test_a_condition_nested_too_deep_is_a_400(marketer_ui: UI, hub: Hub, depth: int) -> None:
    condition = '{"all": ' + "[" * depth + "]" * depth + "}"
    answer = marketer_ui.post("/admin/groups/new", group_form(condition=condition))
    assert answer.status_code == 400
    assert "nested deeper than 64 levels" in error_of(answer)
    assert hub.groups.list_page(MemberQuery()).data == []


def test_a_bad_name_or_a_taken_one(marketer_ui: UI, hub: Hub) -> None:
    make_group(hub, "Taken")
    answer = marketer_ui.post("/admin/groups/new", group_form(name=""))
    assert answer.status_code == 400
    assert "name" in error_of(answer)
    taken = marketer_ui.post("/admin/groups/new", group_form(name="Taken"))
    assert taken.status_code == 409
    assert "A group named 'Taken' exists already." in html.unescape(error_of(taken))
    too_long = marketer_ui.post("/admin/groups/new", group_form(name="x" * 201))
    assert too_long.status_code == 400


def test_count_contacts_without_saving(marketer_ui: UI, hub: Hub) -> None:
    add_contacts(hub, [2, 3, 1, 0])
    answer = marketer_ui.post("/admin/groups/new", group_form(intent="count"))
    assert answer.status_code == 200
    assert "<strong>2</strong> contacts match this condition now." in answer.text
    assert 'value="Frequent clickers"' in answer.text
    one = group_form(intent="count", condition='{"activity": {"type": "click", "at_least": 3}}')
    assert "<strong>1</strong> contact matches" in marketer_ui.post("/admin/groups/new", one).text
    bad = marketer_ui.post("/admin/groups/new", group_form(intent="count", condition="{}"))
    assert bad.status_code == 400
    assert hub.groups.list_page(MemberQuery()).data == []


def test_edit_a_group(marketer_ui: UI, hub: Hub) -> None:
    add_contacts(hub, [2, 3, 1])
    group = make_group(hub)
    form = marketer_ui.get(f"/admin/groups/{group.id}/edit")
    assert form.status_code == 200
    assert json.loads(textarea_of(form.text, "condition")) == CLICKED
    # The same condition (in other spacing) is not a change: the group is not recomputed.
    same = group_form(name="Renamed", condition=json.dumps(CLICKED, indent=4))
    answer = marketer_ui.post(f"/admin/groups/{group.id}/edit", same)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/groups/{group.id}"
    renamed = hub.groups.get(group.id)
    assert renamed.name == "Renamed"
    assert renamed.computed_at == group.computed_at
    wider = group_form(condition='{"activity": {"type": "click"}}')
    marketer_ui.post(f"/admin/groups/{group.id}/edit", wider)
    changed = hub.groups.get(group.id)
    assert changed.member_count == 3
    assert changed.condition == {"activity": {"type": "click"}}
    refused = marketer_ui.post(
        f"/admin/groups/{group.id}/edit", group_form(condition=f'{{"group": "{group.id}"}}')
    )
    assert refused.status_code == 400
    assert "cycle" in error_of(refused)


# -- a group's page --------------------------------------------------------------------------


def test_a_groups_page_shows_its_condition_members_and_chart(
    marketer_ui: UI, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = add_contacts(hub, [2, 3, 1, 5])
    base = make_group(hub, "Base")
    group = make_group(hub, "Named", {"all": [CLICKED, {"group": str(base.id)}]})
    monkeypatch.setattr(groups_page, "MEMBERS_PER_PAGE", 2)
    page = marketer_ui.get(f"/admin/groups/{group.id}")
    assert page.status_code == 200
    text = page.text
    assert '<dd id="member-count">3</dd>' in text
    assert "Click at least twice ever" in text
    assert f'<a href="/admin/groups/{base.id}">In the group Base</a>' in text
    assert 'role="img"' in text
    assert "Members per day, last 30 days" in text
    assert f'<a href="/admin/contacts/{made[0]}">Ann</a>' in text
    assert f'<a href="/admin/contacts/{made[1]}">person1@example.com</a>' in text
    assert f'href="/admin/contacts/{made[3]}"' not in text
    more = re.search(r'href="\?days=30&amp;cursor=([^"]+)" rel="next"', text)
    assert more is not None
    second = marketer_ui.get(f"/admin/groups/{group.id}?days=30&cursor={more.group(1)}")
    assert f'<a href="/admin/contacts/{made[3]}">Anonymous contact</a>' in second.text
    assert 'rel="next"' not in second.text
    assert 'href="?days=30">First page</a>' in second.text
    year = marketer_ui.get(f"/admin/groups/{group.id}?days=365")
    assert "Members per day, last 365 days" in year.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("days=5", "The chart covers 7, 30, 90, 365 days (got &#39;5&#39;)."),
        ("days=x", "got &#39;x&#39;"),
        ("cursor=nonsense", "The cursor is not one this API gave out."),
    ],
)
def test_a_bad_query_is_a_400_page(marketer_ui: UI, hub: Hub, query: str, message: str) -> None:
    group = make_group(hub)
    answer = marketer_ui.get(f"/admin/groups/{group.id}?{query}")
    assert answer.status_code == 400
    assert message in answer.text


@pytest.mark.parametrize("path", ["", "/edit"])
def test_a_group_that_does_not_exist_is_a_404_page(marketer_ui: UI, path: str) -> None:
    for ident in (new_id(), "not-a-uuid"):
        answer = marketer_ui.get(f"/admin/groups/{ident}{path}")
        assert answer.status_code == 404
        assert "No group has that identifier." in answer.text


# -- deleting --------------------------------------------------------------------------------


def test_delete_a_group_unless_another_uses_it(marketer_ui: UI, hub: Hub) -> None:
    base = make_group(hub, "Base")
    user = make_group(hub, "User", {"group": str(base.id)})
    refused = marketer_ui.post(f"/admin/groups/{base.id}/delete")
    assert refused.status_code == 409
    assert "Groups User use this group; change them first." in refused.text
    assert "Not deleted" in refused.text
    assert hub.groups.get(base.id).name == "Base"
    assert marketer_ui.post(f"/admin/groups/{user.id}/delete").status_code == 303
    deleted = marketer_ui.post(f"/admin/groups/{base.id}/delete", follow=True)
    assert flash_of(deleted) == "Deleted the group Base."
    assert hub.groups.list_page(MemberQuery()).data == []
    assert marketer_ui.post(f"/admin/groups/{base.id}/delete").status_code == 404


# -- security --------------------------------------------------------------------------------


def test_every_post_needs_the_csrf_token(marketer_ui: UI, hub: Hub) -> None:
    group = make_group(hub)
    for path, form in [
        ("/admin/groups/new", group_form(name="Other")),
        (f"/admin/groups/{group.id}/edit", group_form(name="Changed")),
        (f"/admin/groups/{group.id}/delete", {}),
    ]:
        for token in ("", "wrong"):
            answer = marketer_ui.post(path, form, csrf=token)
            assert answer.status_code == 403, path
            assert "This form has expired" in answer.text
    assert [g.name for g in hub.groups.list_page(MemberQuery()).data] == ["Clickers"]


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_both_roles_use_groups(make_ui: Any, hub: Hub, role: str) -> None:
    ui = make_ui(role)
    group = make_group(hub)
    for path in ("/admin/groups", "/admin/groups/new", f"/admin/groups/{group.id}"):
        assert ui.get(path).status_code == 200, path
    assert ui.post("/admin/groups/new", group_form(name=role)).status_code == 303
    # The builder's live count: the dry run of the admin API, with the session.
    answer = ui.api("POST", "/api/groups/validate", json={"condition": CLICKED})
    assert answer.status_code == 200
    assert answer.json() == {"valid": True, "count": 0}


def test_logged_out_visitors_go_to_the_login_page(client: TestClient, hub: Hub) -> None:
    group = make_group(hub)
    for path in ("/admin/groups", f"/admin/groups/{group.id}", "/admin/groups/new"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/login?next=")


def test_pages_run_no_inline_script_or_style(marketer_ui: UI, hub: Hub) -> None:
    group = make_group(hub)
    for path in ("/admin/groups", "/admin/groups/new", f"/admin/groups/{group.id}"):
        answer = marketer_ui.get(path)
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert re.findall(r"<script(?![^>]*\bsrc=)", answer.text) == [], path
        assert " style=" not in answer.text, path
    script = marketer_ui.get("/admin/static/group-builder.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


def test_a_groups_page_offers_its_members_as_files(marketer_ui: UI, hub: Hub) -> None:
    made = add_contacts(hub, [2, 3, 1])
    group = make_group(hub, "Clickers")
    page = marketer_ui.get(f"/admin/groups/{group.id}").text
    path = f"/api/groups/{group.id}/members/export"
    links = [html.unescape(link) for link in re.findall(f'href="({path}[^"]*)"', page)]
    assert links == [f"{path}?format={fmt}" for fmt in ("csv", "ndjson", "parquet")]
    members = marketer_ui.get(links[0])
    assert members.status_code == 200
    assert sorted(line.split(",")[0] for line in members.text.splitlines()[1:]) == sorted(
        str(contact) for contact in made[:2]
    )
