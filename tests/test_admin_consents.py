"""The consents pages: create with texts per language, edit (a changed text is a new
version), delete; marketers read them only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.consents import MAX_LANGUAGES, ConsentCreate, ConsentText

if TYPE_CHECKING:
    from tests.admin_support import UI, error_of, flash_of
else:
    from admin_support import UI, error_of, flash_of


def consent_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "code_name": "TrackingConsent",
        "display_name": "Tracking",
        "texts-0-language": "en",
        "texts-0-short_text": "We track what you do here.",
        "texts-0-full_text": "<p>We track <b>everything</b>.</p>",
        "texts-1-language": "cs",
        "texts-1-short_text": "Sledujeme vás.",
        "texts-1-full_text": "<p>Všechno.</p>",
        "texts-2-language": "",
        "texts-2-short_text": "",
        "texts-2-full_text": "",
    }
    form.update(overrides)
    return form


def test_create_a_consent_with_texts(admin_ui: UI, hub: Hub) -> None:
    answer = admin_ui.post("/admin/consents/new", consent_form(), follow=True)
    assert answer.status_code == 200
    assert "Created the consent Tracking" in flash_of(answer)
    created = hub.consents.get_by_code("TrackingConsent")
    assert created.version == 1
    assert created.texts == {
        "en": ConsentText("We track what you do here.", "<p>We track <b>everything</b>.</p>"),
        "cs": ConsentText("Sledujeme vás.", "<p>Všechno.</p>"),
    }
    assert "<code>cs</code>, <code>en</code>" in answer.text


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"code_name": ""}, 400, "code_name"),
        ({"code_name": "has spaces"}, 400, "code_name"),
        ({"display_name": ""}, 400, "display_name"),
        ({"texts-1-language": "english!"}, 400, "language code"),
        ({"texts-1-language": "en"}, 400, "two texts"),
        ({"texts-1-language": ""}, 400, "needs its language"),
    ],
)
def test_errors_are_shown_at_the_form(
    admin_ui: UI, overrides: dict[str, str], status: int, message: str
) -> None:
    answer = admin_ui.post("/admin/consents/new", consent_form(**overrides))
    assert answer.status_code == status, answer.text
    assert message in error_of(answer)
    assert "We track what you do here." in answer.text


def test_texts_in_more_than_100_languages_are_refused(admin_ui: UI, hub: Hub) -> None:
    rows = {
        f"texts-{i}-{name}": value
        for i in range(MAX_LANGUAGES + 1)
        for name, value in (
            ("language", chr(97 + i // 26) + chr(97 + i % 26)),
            ("short_text", "Short"),
            ("full_text", "Full"),
        )
    }
    answer = admin_ui.post(
        "/admin/consents/new", {"code_name": "Many", "display_name": "Many", **rows}
    )
    assert answer.status_code == 400, answer.text
    assert f"at most {MAX_LANGUAGES} languages" in error_of(answer)
    assert hub.consents.list_page(ListQuery()).data == []
    del rows[f"texts-{MAX_LANGUAGES}-language"]
    del rows[f"texts-{MAX_LANGUAGES}-short_text"]
    del rows[f"texts-{MAX_LANGUAGES}-full_text"]
    answer = admin_ui.post(
        "/admin/consents/new", {"code_name": "Many", "display_name": "Many", **rows}
    )
    assert answer.status_code == 303, error_of(answer)
    assert len(hub.consents.get_by_code("Many").texts) == MAX_LANGUAGES


def test_a_duplicate_code_name_is_a_conflict(admin_ui: UI, hub: Hub) -> None:
    hub.consents.create(ConsentCreate(code_name="TrackingConsent", display_name="Old"))
    answer = admin_ui.post("/admin/consents/new", consent_form())
    assert answer.status_code == 409
    assert "exists already" in error_of(answer)


def test_edit_texts_raises_the_version(admin_ui: UI, hub: Hub) -> None:
    found = hub.consents.create(
        ConsentCreate(
            code_name="TrackingConsent",
            display_name="Tracking",
            texts={"en": ConsentText("Old short", "Old full")},
        )
    )
    page = admin_ui.get(f"/admin/consents/{found.id}")
    assert "Old short" in page.text
    assert "readonly" in page.text
    same = admin_ui.post(
        f"/admin/consents/{found.id}",
        {
            "display_name": "Tracking cookies",
            "texts-0-language": "en",
            "texts-0-short_text": "Old short",
            "texts-0-full_text": "Old full",
        },
    )
    assert same.status_code == 303
    assert hub.consents.get(found.id).version == 1  # the name changed, not a text
    changed = admin_ui.post(f"/admin/consents/{found.id}", consent_form(code_name="Ignored"))
    assert changed.status_code == 303, error_of(changed)
    now = hub.consents.get(found.id)
    assert (now.code_name, now.version, sorted(now.texts)) == ("TrackingConsent", 2, ["cs", "en"])
    assert "version 2" in flash_of(admin_ui.get("/admin/consents"))


def test_delete_a_consent(admin_ui: UI, hub: Hub) -> None:
    found = hub.consents.create(ConsentCreate(code_name="Newsletter", display_name="Newsletter"))
    assert admin_ui.post(f"/admin/consents/{found.id}/delete").status_code == 303
    assert admin_ui.get(f"/admin/consents/{found.id}").status_code == 404


def test_marketers_read_consents_only(marketer_ui: UI, hub: Hub) -> None:
    found = hub.consents.create(
        ConsentCreate(
            code_name="TrackingConsent",
            display_name="Tracking",
            texts={"en": ConsentText("Short <b>text</b>", "Full")},
        )
    )
    listed = marketer_ui.get("/admin/consents")
    assert listed.status_code == 200
    assert "New consent" not in listed.text
    page = marketer_ui.get(f"/admin/consents/{found.id}")
    assert page.status_code == 200
    assert "Short &lt;b&gt;text&lt;/b&gt;" in page.text  # shown as written, never as HTML
    assert '<form method="post" class="stack"' not in page.text
    assert marketer_ui.post(f"/admin/consents/{found.id}", consent_form()).status_code == 403
    assert marketer_ui.post(f"/admin/consents/{found.id}/delete").status_code == 403
    assert marketer_ui.get("/admin/consents/new").status_code == 403
