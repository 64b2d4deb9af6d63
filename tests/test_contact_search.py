"""Contact search (hub.contacts.search): prefixes of emails and names, paging, indexes."""

from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import MAX_CURSOR_LENGTH, encode_cursor
from waypost.records.contacts import insert_contact, merge_contacts
from waypost.services.contact_search import ContactSummary, search_words

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck

People = dict[str, uuid.UUID]
PEOPLE = {
    "jane": ("jane.doe@example.com", "Jane", "Doe"),
    "janet": ("janet@example.org", "Janet", "Smith"),
    "jan": ("novak@example.cz", "Jan", "Novák"),
    "doe": ("john@example.com", "John", "Doe"),
    "bjanssen": ("bjanssen@example.com", "Bart", "Janssen"),
    "anonymous": (None, None, None),
    "percent": ("100%_off@example.com", "Per_cent", None),
}


@pytest.fixture
def people(hub: Hub) -> People:
    ids: People = {}
    with hub.store.write() as conn:
        for name, (email, first, last) in PEOPLE.items():
            ids[name] = insert_contact(conn, email=email, first_name=first, last_name=last)
    return ids


def found(hub: Hub, text: str, limit: int = 100) -> list[uuid.UUID]:
    page = hub.contacts.search(text, limit)
    assert page.next is None
    return [contact.id for contact in page.data]


def names(people: People, ids: list[uuid.UUID]) -> list[str]:
    by_id = {contact_id: name for name, contact_id in people.items()}
    return [by_id[contact_id] for contact_id in ids]


def test_the_words_of_a_search() -> None:
    assert search_words("  Jane   Doe ") == ["Jane", "Doe"]
    assert search_words("Doe, Jane") == ["Doe", "Jane"]
    assert search_words(" ,  ") == []
    with pytest.raises(ApiError) as nul:
        search_words("a\x00b")
    assert (nul.value.status, nul.value.field) == (400, "q")
    with pytest.raises(ApiError) as long:
        search_words("a" * 255)
    assert long.value.status == 400


def test_one_word_starts_an_email_or_a_name_in_any_case(hub: Hub, people: People) -> None:
    matched = names(people, found(hub, "jan"))
    assert sorted(matched) == ["bjanssen", "jan", "jane", "janet"]
    # Each contact once, at its first match: jan (first name "jan"), jane (first name
    # "jane" comes before its email "jane.doe@..."), janet, then Janssen's last name.
    assert matched == ["jan", "jane", "janet", "bjanssen"]
    assert names(people, found(hub, "JaN")) == matched
    assert names(people, found(hub, "doe")) == sorted(["jane", "doe"], key=lambda n: people[n])
    assert names(people, found(hub, "novak@")) == ["jan"]
    assert names(people, found(hub, "NOVAK@EXAMPLE.CZ")) == ["jan"]
    assert found(hub, "example") == []  # a prefix, not "contains"
    assert found(hub, "oe") == []
    assert found(hub, "jane.doe@example.com.") == []


def test_wildcards_are_plain_characters(hub: Hub, people: People) -> None:
    assert names(people, found(hub, "100%")) == ["percent"]
    assert names(people, found(hub, "per_")) == ["percent"]
    assert found(hub, "%") == []
    assert found(hub, "_") == []


def test_two_words_are_a_first_and_a_last_name(hub: Hub, people: People) -> None:
    assert names(people, found(hub, "Jane Doe")) == ["jane"]
    assert names(people, found(hub, "ja do")) == ["jane"]
    assert names(people, found(hub, "Doe, Jane")) == ["jane"]
    assert names(people, found(hub, "j d")) == ["jane", "doe"]  # "jane" before "john"
    assert names(people, found(hub, "Jane Smith")) == ["janet"]  # "Jane" starts "Janet"
    assert found(hub, "Jane Novak") == []


def test_an_empty_search_lists_every_contact_newest_first(hub: Hub, people: People) -> None:
    assert found(hub, "") == sorted(people.values(), reverse=True)
    assert found(hub, "   ") == sorted(people.values(), reverse=True)


@pytest.mark.parametrize("text", ["", "j", "ja", "jane doe", "d"])
def test_pages_put_together_are_the_whole_list(hub: Hub, people: People, text: str) -> None:
    whole = found(hub, text)
    for limit in (1, 2, 3):
        collected: list[ContactSummary] = []
        cursor = None
        while True:
            page = hub.contacts.search(text, limit, cursor)
            assert len(page.data) <= limit
            collected.extend(page.data)
            if page.next is None:
                break
            assert len(page.data) == limit
            cursor = page.next
        assert [contact.id for contact in collected] == whole


def test_many_contacts_with_one_name_page_by_id(hub: Hub) -> None:
    with hub.store.write() as conn:
        made = [insert_contact(conn, first_name="Eva", last_name="Eva") for _ in range(7)]
        made.append(insert_contact(conn, email="eva@example.com", first_name="Eve"))
    ids: list[uuid.UUID] = []
    cursor = None
    while True:
        page = hub.contacts.search("eva", 3, cursor)
        ids.extend(contact.id for contact in page.data)
        if page.next is None:
            break
        cursor = page.next
    # "eva" (first name, then the same last name of the same contacts: listed once), then
    # the email "eva@example.com".
    assert ids == [*sorted(made[:7]), made[7]]


def _cursor(value: object) -> str:
    return encode_cursor(json.dumps(value))


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",
        "é",
        _cursor([]),
        _cursor(["a", 1, "x"]),
        _cursor({"a": 1, "b": 2, "c": 3}),
        _cursor(7),
        _cursor(["a\u0000", 1, str(uuid.UUID(int=1))]),
        _cursor(["\ud800", 1, str(uuid.UUID(int=1))]),
        _cursor([1, 1, str(uuid.UUID(int=1))]),
    ],
)
def test_a_cursor_not_given_out_is_a_400(hub: Hub, cursor: str) -> None:
    with pytest.raises(ApiError) as error:
        hub.contacts.search("j", 10, cursor)
    assert (error.value.status, error.value.field) == (400, "cursor")
    with pytest.raises(ApiError):
        hub.contacts.search("", 10, cursor)


def test_merged_contacts_are_found_and_say_where_they_went(hub: Hub, people: People) -> None:
    with hub.store.write() as conn:
        merge_contacts(conn, people["janet"], people["jane"], "test")
    [janet] = hub.contacts.search("janet@").data
    assert janet.id == people["janet"]
    assert janet.merged_into == people["jane"]
    assert hub.contacts.get(people["janet"]).merged_into == people["jane"]
    assert hub.contacts.get(people["jane"]).merged_into is None


def test_case_folds_as_the_database_folds_it(hub: Hub) -> None:
    with hub.store.write() as conn:
        emile = insert_contact(conn, first_name="Émile", last_name="Zola")
    assert found(hub, "Émi") == [emile]
    # PostgreSQL lowers every letter; SQLite only ASCII letters (documented).
    expected = [emile] if hub.store.dialect == "postgresql" else []
    assert found(hub, "émi") == expected


@pytest.mark.usefixtures("people")
def test_searches_read_the_search_indexes(hub: Hub) -> None:
    stmts: list[tuple[str, object]] = []
    # The hub's background threads (the group updater) query contacts too: only this
    # thread's statements are the searches'.
    searcher = threading.get_ident()

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "FROM contacts" in statement and threading.get_ident() == searcher:
            stmts.append((statement, params))

    engine = hub.store.engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        hub.contacts.search("jan", 10)
        hub.contacts.search("jane doe", 10)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(stmts) == 5, "\n\n".join(statement for statement, _ in stmts)
    plans: list[str] = []
    with engine.connect() as conn:
        if hub.store.dialect == "postgresql":
            # A handful of rows, and statistics of whatever earlier tests on this database left
            # before they were deleted: the planner may well sort them. Whether an index gives
            # each search its rows in order is what is asked, so the alternatives are priced out.
            for path in ("seqscan", "bitmapscan", "sort"):
                conn.exec_driver_sql(f"SET enable_{path} = off")
            explain = "EXPLAIN "
        else:
            explain = "EXPLAIN QUERY PLAN "
        for statement, params in stmts:
            rows = conn.exec_driver_sql(explain + statement, params)  # type: ignore[arg-type]
            plans.append(" ".join(str(value) for row in rows for value in row))
        conn.rollback()
    if hub.store.dialect == "postgresql":
        expected = ["ix_contacts_search_email", "ix_contacts_search_first_name"]
        expected += ["ix_contacts_search_last_name", "ix_contacts_search_first_name"]
        expected += ["ix_contacts_search_last_name"]
    else:
        expected = ["(email_key>? AND email_key<?)", "ix_contacts_search_first_name"]
        expected += ["ix_contacts_search_last_name", "ix_contacts_search_first_name"]
        expected += ["ix_contacts_search_last_name"]
    for plan, index in zip(plans, expected, strict=True):
        assert index in plan, plan
        assert "SCAN contacts" not in plan, plan
        assert "Seq Scan" not in plan, plan
        # Read in index order: no sort of the matches (a tie-break of equal keys at most).
        assert "TEMP B-TREE" not in plan, plan
        assert "Sort" not in plan.replace("Incremental Sort", ""), plan


def test_the_admin_api_searches_contacts(
    client: TestClient, admin_headers: dict[str, str], people: People, expect_error: ErrorCheck
) -> None:
    answer = client.get("/api/contacts", params={"q": "Jane D", "limit": 5}, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next"] is None
    assert [item["id"] for item in body["data"]] == [str(people["jane"])]
    assert body["data"][0]["email"] == "jane.doe@example.com"
    assert body["data"][0]["merged_into"] is None
    first = client.get("/api/contacts", params={"limit": 2}, headers=admin_headers).json()
    assert len(first["data"]) == 2
    rest = client.get(
        "/api/contacts", params={"limit": 1000, "cursor": first["next"]}, headers=admin_headers
    ).json()
    assert len(first["data"]) + len(rest["data"]) == len(people)
    bad = client.get("/api/contacts", params={"q": "x", "cursor": "zzz"}, headers=admin_headers)
    expect_error(bad, 400, "invalid_field", "cursor")
    expect_error(
        client.get("/api/contacts", params={"limit": 0}, headers=admin_headers),
        400,
        "invalid_field",
    )
    expect_error(
        client.get("/api/contacts", params={"q": "a\x00"}, headers=admin_headers),
        400,
        "invalid_field",
        "q",
    )
    assert client.get("/api/contacts").status_code == 401


def test_the_longest_cursor_the_search_gives_out_is_taken_back(
    client: TestClient, admin_headers: dict[str, str], hub: Hub
) -> None:
    """A cursor holds the email it stopped at; the longest email, of characters that JSON
    writes as two escapes each, still fits the API's longest cursor (MAX_CURSOR_LENGTH)."""
    local = "\U00010428" * 240  # DESERET SMALL LETTER LONG I, lower-case already
    with hub.store.write() as conn:
        for domain in ("aaa.io", "bbb.io"):
            email = f"{local}@{'x' * (254 - 241 - len(domain))}{domain}"
            assert len(email) == 254
            insert_contact(conn, email=email)
    params = {"q": "\U00010428", "limit": "1"}
    first = client.get("/api/contacts", params=params, headers=admin_headers)
    assert first.status_code == 200, first.text
    cursor = first.json()["next"]
    assert 3500 < len(cursor) <= MAX_CURSOR_LENGTH
    rest = client.get("/api/contacts", params={**params, "cursor": cursor}, headers=admin_headers)
    assert rest.status_code == 200, rest.text
    assert len(rest.json()["data"]) == 1


def test_summaries_name_the_contacts_that_exist(hub: Hub, people: People) -> None:
    missing = uuid.uuid4()
    found_ = hub.contacts.summaries([people["jane"], people["jane"], missing, people["anonymous"]])
    assert set(found_) == {people["jane"], people["anonymous"]}
    assert found_[people["jane"]].first_name == "Jane"
    assert found_[people["anonymous"]].email is None
    assert hub.contacts.summaries([]) == {}
