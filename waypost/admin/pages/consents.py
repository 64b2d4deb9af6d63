"""Consents: code name, display name and texts (short and full) per language.

Admins create and change them; marketers may read them (see roles.py). A changed text raises
the consent's version, which the agreements made from then on record.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from waypost.admin.forms import Form
from waypost.admin.views import NavItem, Page, View, every
from waypost.errors import ApiError, from_validation_error, invalid
from waypost.pagination import ListQuery
from waypost.services.consents import MAX_LANGUAGES, Consent, ConsentCreate, ConsentUpdate

NAV = NavItem("Consents", "/admin/consents", "consents", 90, "settings")

BLANK_TEXT = {"language": "", "short_text": "", "full_text": ""}


def values_of(found: Consent | None) -> dict[str, Any]:
    texts = [
        {"language": language, "short_text": text.short_text, "full_text": text.full_text}
        for language, text in sorted((found.texts if found else {}).items())
    ]
    return {
        "code_name": found.code_name if found else "",
        "display_name": found.display_name if found else "",
        "texts": texts or [{**BLANK_TEXT, "language": "en"}],
    }


def _text_rows(form: Form) -> list[dict[str, str]]:
    rows = form.rows("texts")
    return [r for r in rows if r.get("language") or r.get("short_text") or r.get("full_text")]


def values_from(form: Form) -> dict[str, Any]:
    return {
        "code_name": form.get("code_name"),
        "display_name": form.get("display_name"),
        "texts": [{**BLANK_TEXT, **row} for row in _text_rows(form)] or [dict(BLANK_TEXT)],
    }


def texts_from(form: Form) -> dict[str, dict[str, str]]:
    rows = _text_rows(form)
    if len(rows) > MAX_LANGUAGES:
        raise invalid(
            f"A consent has texts in at most {MAX_LANGUAGES} languages (got {len(rows)}).",
            "texts",
        )
    texts: dict[str, dict[str, str]] = {}
    for row in rows:
        language = row.get("language", "")
        if not language:
            raise invalid("Each text needs its language code, like en.", "texts")
        if language in texts:
            raise invalid(f"The language {language!r} has two texts; keep one.", "texts")
        texts[language] = {
            "short_text": row.get("short_text", ""),
            "full_text": row.get("full_text", ""),
        }
    return texts


def body_from(form: Form, creating: bool) -> ConsentCreate | ConsentUpdate:
    raw: dict[str, object] = {"display_name": form.get("display_name"), "texts": texts_from(form)}
    if creating:
        raw["code_name"] = form.get("code_name")
    target: type[ConsentCreate | ConsentUpdate] = ConsentCreate if creating else ConsentUpdate
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc, target, raw) from None


def _form(page: Page, found: Consent | None, values: dict[str, Any], **extra: Any) -> Response:
    return page.render(
        "consents/form.html",
        extra.pop("status", 200),
        found=found,
        values=values,
        blank=BLANK_TEXT,
        error=extra.pop("error", None),
    )


def list_consents(page: Page) -> Response:
    consents = every(lambda cursor: page.hub.consents.list_page(ListQuery(cursor=cursor)))
    consents.sort(key=lambda c: c.display_name.lower())
    return page.render("consents/list.html", consents=consents)


def new_consent(page: Page) -> Response:
    if page.request.method == "GET":
        return _form(page, None, values_of(None))
    try:
        body = body_from(page.form, creating=True)
        assert isinstance(body, ConsentCreate)
        created = page.hub.consents.create(body)
    except ApiError as exc:
        return _form(page, None, values_from(page.form), error=exc, status=exc.status)
    return page.redirect("/admin/consents", f"Created the consent {created.display_name}.")


def edit_consent(page: Page) -> Response:
    found = page.hub.consents.get(page.uuid_param("consent_id", "consent"))
    if page.request.method == "GET":
        return _form(page, found, values_of(found))
    try:
        body = body_from(page.form, creating=False)
        assert isinstance(body, ConsentUpdate)
        changed = page.hub.consents.update(found.id, body)
    except ApiError as exc:
        values = values_from(page.form) | {"code_name": found.code_name}
        return _form(page, found, values, error=exc, status=exc.status)
    note = (
        f" Its texts changed: version {changed.version}." if changed.version > found.version else ""
    )
    return page.redirect("/admin/consents", f"Saved the consent {changed.display_name}.{note}")


def delete_consent(page: Page) -> Response:
    consent_id = page.uuid_param("consent_id", "consent")
    found = page.hub.consents.get(consent_id)
    page.hub.consents.delete(consent_id)
    return page.redirect("/admin/consents", f"Deleted the consent {found.display_name}.")


ITEM = "/admin/consents/{consent_id}"
VIEWS = [
    View("/admin/consents", list_consents, "consents"),
    View("/admin/consents/new", new_consent, "consents", ("GET", "POST"), write=True),
    View(ITEM, edit_consent, "consents", ("GET", "POST")),
    View(ITEM + "/delete", delete_consent, "consents", ("POST",)),
]
