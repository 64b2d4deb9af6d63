"""/api/consents, and the tracking API's consent routes (Kentico's), on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.consents import MAX_LANGUAGES, ConsentCreate, ConsentText

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker

TEXTS = {
    "en": {"short_text": "<p>We track you.</p>", "full_text": "<p>We record the pages…</p>"},
    "cs": {"short_text": "<p>Sledujeme vás.</p>", "full_text": "<p>Zaznamenáváme…</p>"},
}


def languages(count: int) -> dict[str, dict[str, str]]:
    """Texts in ``count`` languages: ``aa``, ``ab``, ... (codes in the shape, not real ones)."""
    codes = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(count)]
    return dict.fromkeys(codes, TEXTS["en"])


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("code_name", "TrackingConsent")
    body.setdefault("display_name", "Tracking")
    answer = client.post("/api/consents", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


# -- /api/consents -----------------------------------------------------------------------


def test_create_read_list_update_delete(client: TestClient, admin_headers: dict[str, str]) -> None:
    consent = create(client, admin_headers, texts=TEXTS)
    assert uuid.UUID(consent["id"])
    assert consent["code_name"] == "TrackingConsent"
    assert consent["display_name"] == "Tracking"
    assert consent["version"] == 1
    assert consent["texts"] == TEXTS
    assert {"created_at", "updated_at"} <= set(consent)
    item = f"/api/consents/{consent['id']}"
    assert client.get(item, headers=admin_headers).json() == consent
    listed = client.get("/api/consents", headers=admin_headers).json()
    assert listed == {"data": [consent], "next": None}

    renamed = client.patch(item, json={"display_name": "Tracking cookies"}, headers=admin_headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["display_name"] == "Tracking cookies"
    assert renamed.json()["version"] == 1

    deleted = client.delete(item, headers=admin_headers)
    assert deleted.status_code == 204
    assert client.get(item, headers=admin_headers).status_code == 404
    assert client.get("/api/consents", headers=admin_headers).json()["data"] == []


def test_the_version_goes_up_when_a_text_changes_and_only_then(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    consent = create(client, admin_headers, texts={"en": TEXTS["en"]})
    item = f"/api/consents/{consent['id']}"

    def patch(body: dict[str, Any]) -> int:
        answer = client.patch(item, json=body, headers=admin_headers)
        assert answer.status_code == 200, answer.text
        version: int = answer.json()["version"]
        return version

    assert patch({"texts": {"en": TEXTS["en"]}}) == 1
    assert patch({"display_name": "Renamed"}) == 1
    assert patch({}) == 1
    assert patch({"texts": TEXTS}) == 2
    changed = {"en": {**TEXTS["en"], "full_text": "<p>Now more.</p>"}, "cs": TEXTS["cs"]}
    assert patch({"texts": changed}) == 3
    assert patch({"texts": changed, "display_name": "Again"}) == 3
    assert patch({"texts": {"cs": TEXTS["cs"]}}) == 4
    final = client.get(item, headers=admin_headers).json()
    assert final["texts"] == {"cs": TEXTS["cs"]}
    assert final["version"] == 4


def test_a_duplicate_code_name_is_409(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    create(client, admin_headers)
    answer = client.post(
        "/api/consents",
        json={"code_name": "TrackingConsent", "display_name": "Other"},
        headers=admin_headers,
    )
    expect_error(answer, 409, "conflict", "code_name")


def test_bad_bodies_are_400(
    client: TestClient,
    admin_headers: dict[str, str],
    subtests: pytest.Subtests,
    expect_error: ErrorCheck,
) -> None:
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"display_name": "x"}, "missing_field", "code_name"),
        ({"code_name": "x"}, "missing_field", "display_name"),
        ({"code_name": "", "display_name": "x"}, "invalid_field", "code_name"),
        ({"code_name": "has space", "display_name": "x"}, "invalid_field", "code_name"),
        ({"code_name": "Consent\n", "display_name": "x"}, "invalid_field", "code_name"),
        ({"code_name": "x", "display_name": "x", "colour": 1}, "unknown_field", "colour"),
        (
            {"code_name": "x", "display_name": "x", "texts": {"english": TEXTS["en"]}},
            "invalid_field",
            "texts.english",
        ),
        (
            {"code_name": "x", "display_name": "x", "texts": {"en": {"short_text": "s"}}},
            "missing_field",
            None,
        ),
        # The sizes of docs/admin-api.md#consents.
        (
            {
                "code_name": "x",
                "display_name": "x",
                "texts": {"en": {**TEXTS["en"], "short_text": "s" * 5001}},
            },
            "invalid_field",
            "texts.en.short_text",
        ),
        (
            {
                "code_name": "x",
                "display_name": "x",
                "texts": {**TEXTS, "cs": {**TEXTS["cs"], "short_text": "s" * 1_000_000}},
            },
            "invalid_field",
            "texts.cs.short_text",
        ),
        (
            {
                "code_name": "x",
                "display_name": "x",
                "texts": {"en": {**TEXTS["en"], "full_text": "f" * 100_001}},
            },
            "invalid_field",
            "texts.en.full_text",
        ),
        (
            {"code_name": "x", "display_name": "x", "texts": {"en-" + "x" * 20: TEXTS["en"]}},
            "invalid_field",
            "texts",
        ),
        # A language code: ASCII letters, digits and '-', in BCP 47's shape, 16 characters.
        *(
            (
                {"code_name": "x", "display_name": "x", "texts": {tag: TEXTS["en"]}},
                "invalid_field",
                field,
            )
            for tag, field in (
                ("en-US-abcd-efghij", "texts"),  # 17 characters
                ("én", "texts.én"),
                ("en_US", "texts.en_US"),
                ("e", "texts"),
                ("en-", "texts.en-"),
                ("en--US", "texts.en--US"),
                ("en-US\n", "texts.en-US\n"),
                ("١٢", "texts.١٢"),
            )
        ),
        (
            {"code_name": "x", "display_name": "x", "texts": languages(MAX_LANGUAGES + 1)},
            "invalid_field",
            "texts",
        ),
    ]
    for body, code, field in cases:
        with subtests.test(body=body):
            answer = client.post("/api/consents", json=body, headers=admin_headers)
            expect_error(answer, 400, code, field)
    assert client.get("/api/consents", headers=admin_headers).json()["data"] == []


def test_a_consent_has_texts_in_at_most_100_languages(
    client: TestClient, admin_headers: dict[str, str], hub: Hub, expect_error: ErrorCheck
) -> None:
    assert MAX_LANGUAGES == 100  # docs/admin-api.md#consents
    consent = create(client, admin_headers, texts=languages(MAX_LANGUAGES))
    assert len(consent["texts"]) == MAX_LANGUAGES
    longest = create(
        client, admin_headers, code_name="Longest", texts={"en-US-abcd-efghi": TEXTS["en"]}
    )
    assert list(longest["texts"]) == ["en-US-abcd-efghi"]  # 16 characters, the most
    item = f"/api/consents/{consent['id']}"
    too_many = client.patch(
        item, json={"texts": languages(MAX_LANGUAGES + 1)}, headers=admin_headers
    )
    expect_error(too_many, 400, "invalid_field", "texts")
    assert client.get(item, headers=admin_headers).json()["version"] == 1
    # A Python caller (the demo, a script) that builds the body itself is held to it too.
    text = ConsentText("short", "full")
    body = ConsentCreate(
        code_name="Other",
        display_name="Other",
        texts=dict.fromkeys(languages(MAX_LANGUAGES + 1), text),
    )
    with pytest.raises(ApiError) as raised:
        hub.consents.create(body)
    assert (raised.value.status, raised.value.code, raised.value.field) == (
        400,
        "invalid_field",
        "texts",
    )


def test_the_admin_api_needs_an_admin_key(
    client: TestClient, tracker: Tracker, expect_error: ErrorCheck
) -> None:
    expect_error(client.get("/api/consents"), 401, "unauthorized")
    expect_error(client.get("/api/consents", headers=tracker.headers), 403, "forbidden")


def test_unknown_consents_are_404(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    for path in (f"/api/consents/{uuid.uuid4()}", "/api/consents/not-a-uuid"):
        expect_error(client.get(path, headers=admin_headers), 404, "not_found")
    missing = f"/api/consents/{uuid.uuid4()}"
    expect_error(client.patch(missing, json={}, headers=admin_headers), 404, "not_found")
    expect_error(client.delete(missing, headers=admin_headers), 404, "not_found")


def test_a_consent_with_agreements_cannot_be_deleted(
    client: TestClient, admin_headers: dict[str, str], tracker: Tracker, expect_error: ErrorCheck
) -> None:
    consent = create(client, admin_headers, texts=TEXTS)
    contact = tracker.new_contact()
    agreed = client.post(
        f"/tracking/contacts/{contact}/consents/TrackingConsent",
        json={"agree": False},
        headers=tracker.headers,
    )
    assert agreed.status_code == 200
    answer = client.delete(f"/api/consents/{consent['id']}", headers=admin_headers)
    expect_error(answer, 409, "conflict")


def test_the_list_is_paged(client: TestClient, admin_headers: dict[str, str]) -> None:
    made = {
        create(client, admin_headers, code_name=f"c{i}", display_name=f"C{i}")["id"]
        for i in range(5)
    }
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/consents", params=params, headers=admin_headers).json()
        assert len(page["data"]) <= 2
        seen += [c["id"] for c in page["data"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == 5


# -- GET /tracking/consents/{consent} -------------------------------------------------------


def test_consent_texts_by_language_with_the_channels_default(
    client: TestClient,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
    expect_error: ErrorCheck,
) -> None:
    create(client, admin_headers, texts=TEXTS)
    english = make_tracker()
    czech = make_tracker(default_language="cs")

    def text(tracker: Tracker, query: str) -> Any:
        answer = client.get(f"/tracking/consents/TrackingConsent{query}", headers=tracker.headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        return answer.json()

    english_text = {"shortText": TEXTS["en"]["short_text"], "fullText": TEXTS["en"]["full_text"]}
    czech_text = {"shortText": TEXTS["cs"]["short_text"], "fullText": TEXTS["cs"]["full_text"]}
    assert text(english, "?languageName=en") == english_text
    assert text(english, "?languageName=cs") == czech_text
    assert text(czech, "?languageName=en") == english_text
    # No text in the asked language: the channel's default language.
    assert text(english, "?languageName=de") == english_text
    assert text(czech, "?languageName=de") == czech_text
    assert text(czech, "") == czech_text
    assert text(czech, "?LanguageName=en") == english_text
    # Language codes are case-insensitive, and a regional code falls back to its language.
    assert text(czech, "?languageName=EN") == english_text
    assert text(czech, "?languageName=en-GB") == english_text
    assert text(english, "?languageName=cs-CZ") == czech_text
    assert text(english, "?languageName=de-AT") == english_text
    answer = client.get(
        "/Kentico.Tracking/consents/TrackingConsent?languageName=en", headers=english.headers
    )
    assert answer.json() == english_text


def test_consent_text_404s(
    client: TestClient,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
    expect_error: ErrorCheck,
) -> None:
    create(client, admin_headers, texts={"cs": TEXTS["cs"]})
    tracker = make_tracker()
    expect_error(
        client.get("/tracking/consents/NoSuchConsent?languageName=en", headers=tracker.headers),
        404,
        "not_found",
    )
    # Neither the asked language nor the channel's default (en) has a text.
    expect_error(
        client.get("/tracking/consents/TrackingConsent?languageName=de", headers=tracker.headers),
        404,
        "not_found",
    )
    expect_error(client.get("/tracking/consents/TrackingConsent"), 401, "unauthorized")


def test_a_language_given_twice_in_another_case_is_refused(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    texts = {"en": TEXTS["en"], "EN": TEXTS["cs"]}
    error = expect_error(
        client.post(
            "/api/consents",
            json={"code_name": "Twice", "display_name": "Twice", "texts": texts},
            headers=admin_headers,
        ),
        400,
        "invalid_field",
    )
    assert error["field"] == "texts.EN"
    consent = create(client, admin_headers, texts={"en": TEXTS["en"]})
    expect_error(
        client.patch(
            f"/api/consents/{consent['id']}", json={"texts": texts}, headers=admin_headers
        ),
        400,
        "invalid_field",
    )


# -- agreements --------------------------------------------------------------------------


def test_agree_revoke_and_check(
    client: TestClient, admin_headers: dict[str, str], tracker: Tracker
) -> None:
    create(client, admin_headers, texts=TEXTS)
    contact = tracker.new_contact()
    path = f"/tracking/contacts/{contact}/consents/TrackingConsent"

    def check() -> Any:
        answer = client.get(path, headers=tracker.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def agree(body: bytes) -> Any:
        answer = client.post(
            path, content=body, headers={**tracker.headers, "Content-Type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert check() == {"isAgreed": False}
    assert agree(b'{"agree": true}') == {"isAgreed": True}
    assert check() == {"isAgreed": True}
    assert agree(b'{"Agree": false}') == {"isAgreed": False}
    assert check() == {"isAgreed": False}
    assert agree(b'{\n    "agree": true\n}') == {"isAgreed": True}
    assert check() == {"isAgreed": True}


def test_agreement_errors(
    client: TestClient,
    admin_headers: dict[str, str],
    tracker: Tracker,
    subtests: pytest.Subtests,
    expect_error: ErrorCheck,
) -> None:
    create(client, admin_headers, texts=TEXTS)
    contact = tracker.new_contact()
    path = f"/tracking/contacts/{contact}/consents/TrackingConsent"
    json_headers = {**tracker.headers, "Content-Type": "application/json"}
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        with subtests.test(content_type=content_type):
            headers = dict(tracker.headers)
            if content_type:
                headers["Content-Type"] = content_type
            answer = client.post(path, content=b'{"agree": true}', headers=headers)
            expect_error(answer, 415, "unsupported_media_type")
    for body, code in [
        (b'{"agree": "yes"}', "invalid_field"),
        (b'{"agree": 1}', "invalid_field"),
        (b"{}", "missing_field"),
        (b'{"agree": true, "when": "now"}', "unknown_field"),
        (b"{", "invalid_json"),
        (b"", "invalid_json"),
        (b"[true]", "invalid_field"),
    ]:
        with subtests.test(body=body):
            expect_error(client.post(path, content=body, headers=json_headers), 400, code)
    nobody = f"/tracking/contacts/{uuid.uuid4()}/consents/TrackingConsent"
    expect_error(
        client.post(nobody, json={"agree": True}, headers=tracker.headers), 404, "contact_not_found"
    )
    expect_error(client.get(nobody, headers=tracker.headers), 404, "contact_not_found")
    not_uuid = "/tracking/contacts/someone/consents/TrackingConsent"
    expect_error(client.get(not_uuid, headers=tracker.headers), 404, "contact_not_found")
    unknown = f"/tracking/contacts/{contact}/consents/NoSuchConsent"
    expect_error(
        client.post(unknown, json={"agree": True}, headers=tracker.headers), 404, "not_found"
    )
    expect_error(client.get(unknown, headers=tracker.headers), 404, "not_found")
    expect_error(client.post(path, json={"agree": True}), 401, "unauthorized")
    expect_error(client.get(path), 401, "unauthorized")
    # Names match whatever their case, so two that differ in case only are refused, as in
    # POST /tracking/activities: neither is the one meant (docs/tracking-api.md).
    for body, key in [
        (b'{"Agree": true, "agree": false}', "agree"),
        (b'{"agree": false, "AGREE": true}', "AGREE"),
    ]:
        with subtests.test(body=body):
            answer = client.post(path, content=body, headers=json_headers)
            assert "given twice" in expect_error(answer, 400, "invalid_field", key)["message"]
    # None of these left a row in the history.
    history = client.get(f"/api/contacts/{contact}/consents", headers=admin_headers).json()
    assert history == {"data": [], "next": None}


def test_the_agreement_history(
    client: TestClient,
    admin_headers: dict[str, str],
    make_tracker: Callable[..., Tracker],
    expect_error: ErrorCheck,
) -> None:
    consent = create(client, admin_headers, texts=TEXTS)
    create(client, admin_headers, code_name="Newsletter", display_name="Newsletter")
    app, site = make_tracker(), make_tracker()
    contact = app.new_contact()

    def agree(tracker: Tracker, code: str, agreed: bool) -> None:
        answer = client.post(
            f"/tracking/contacts/{contact}/consents/{code}",
            json={"agree": agreed},
            headers=tracker.headers,
        )
        assert answer.status_code == 200, answer.text

    agree(app, "TrackingConsent", True)
    agree(site, "Newsletter", True)
    client.patch(
        f"/api/consents/{consent['id']}",
        json={"texts": {"en": TEXTS["en"]}},
        headers=admin_headers,
    )
    agree(site, "TrackingConsent", False)
    agree(app, "TrackingConsent", True)
    answer = client.get(f"/api/contacts/{contact}/consents", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert history["next"] is None
    rows = history["data"]
    assert [(r["consent"], r["agreed"], r["version"], r["channel"]) for r in rows] == [
        ("TrackingConsent", True, 2, str(app.channel.id)),
        ("TrackingConsent", False, 2, str(site.channel.id)),
        ("Newsletter", True, 1, str(site.channel.id)),
        ("TrackingConsent", True, 1, str(app.channel.id)),
    ]
    assert {r["contact"] for r in rows} == {contact}
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    assert all(uuid.UUID(r["id"]) for r in rows)

    walked: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/contacts/{contact}/consents", params=params, headers=admin_headers)
        assert page.status_code == 200, page.text
        walked += [r["id"] for r in page.json()["data"]]
        cursor = page.json()["next"]
        if cursor is None:
            break
    assert walked == [r["id"] for r in rows]
    expect_error(
        client.get(f"/api/contacts/{uuid.uuid4()}/consents", headers=admin_headers),
        404,
        "contact_not_found",
    )


def test_the_largest_texts_are_taken_and_a_patch_is_held_to_them(
    client: TestClient, admin_headers: dict[str, str], expect_error: ErrorCheck
) -> None:
    texts = {"en": {"short_text": "s" * 5000, "full_text": "f" * 100_000}}
    body = {"code_name": "Big", "display_name": "Big", "texts": texts}
    created = client.post("/api/consents", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    too_long = {"en": {"short_text": "s" * 5001, "full_text": ""}}
    changed = client.patch(
        f"/api/consents/{created.json()['id']}", json={"texts": too_long}, headers=admin_headers
    )
    expect_error(changed, 400, "invalid_field", "texts.en.short_text")
