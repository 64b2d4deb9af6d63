"""Consents: texts per language with a version, and contacts' agreements (append-only)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.channels import is_valid_language, pick_language, same_language_twice
from waypost.domain.display_names import DisplayName
from waypost.error_words import quoted
from waypost.errors import ApiError, conflict, invalid, not_found
from waypost.ids import new_id, utcnow
from waypost.pagination import ListQuery, Page, cursor_id, page_by_id
from waypost.records.consents import Agreement, ConsentState, current_states, insert_agreement
from waypost.services.channels import Language
from waypost.store import Store, announce
from waypost.store.schema import consent_agreements, consent_texts, consents

# "$(?!\n)": Python's "$" also matches before a final newline; the OpenAPI document's regex
# dialect (ECMA-262) has no "\Z", and there "$" is the end already.
CodeName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$(?!\n)")
]
Name = DisplayName
# The short text is the sentence or paragraph shown beside the checkbox or banner; the full
# text the whole terms, in HTML (a long privacy policy is some 50,000 characters of HTML).
MAX_SHORT_TEXT = 5_000
MAX_FULL_TEXT = 100_000
ShortText = Annotated[str, msgspec.Meta(max_length=MAX_SHORT_TEXT)]
FullText = Annotated[str, msgspec.Meta(max_length=MAX_FULL_TEXT)]
# How many languages a consent has texts in: a site in every language of the European Union
# and then some; more is a mistake (or a body built to fill the table), not a translation.
MAX_LANGUAGES = 100


class ConsentText(msgspec.Struct, forbid_unknown_fields=True):
    """The texts of a consent in one language; both may hold HTML."""

    short_text: ShortText
    full_text: FullText


Texts = Annotated[dict[Language, ConsentText], msgspec.Meta(max_length=MAX_LANGUAGES)]


class ConsentCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new consent, with its texts keyed by language code (``en``, ``cs``, ...)."""

    code_name: CodeName
    display_name: Name
    texts: Texts = msgspec.field(default_factory=dict)


class ConsentUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change. New ``texts`` replace all texts and raise the version if they differ."""

    display_name: Name | msgspec.UnsetType = msgspec.UNSET
    texts: Texts | msgspec.UnsetType = msgspec.UNSET


class Consent(msgspec.Struct):
    """A consent. ``version`` goes up by one each time a text changes."""

    id: uuid.UUID
    code_name: str
    display_name: str
    version: int
    texts: dict[Language, ConsentText]
    created_at: dt.datetime
    updated_at: dt.datetime


def _check_texts(texts: dict[Language, ConsentText]) -> None:
    if len(texts) > MAX_LANGUAGES:  # the body's type says so too; a Python caller may not
        raise invalid(
            f"A consent has texts in at most {MAX_LANGUAGES} languages (got {len(texts)}).",
            "texts",
        )
    for language in texts:
        if not is_valid_language(language):
            raise invalid(
                f"{quoted(language)} is not a language code like 'en'.", f"texts.{language}"
            )
    twice = same_language_twice(texts)
    if twice is not None:
        raise invalid(
            f"{quoted(twice)} is a language given already in another letter case.",
            f"texts.{twice}",
        )


class ConsentService:
    """Consents and agreements on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, body: ConsentCreate) -> Consent:
        _check_texts(body.texts)
        with self.store.write() as conn:
            taken = conn.execute(
                sa.select(consents.c.id).where(consents.c.code_name == body.code_name)
            ).first()
            if taken is not None:
                raise conflict(f"A consent {quoted(body.code_name)} exists already.", "code_name")
            consent_id = new_id()
            now = utcnow()
            conn.execute(
                consents.insert().values(
                    id=consent_id,
                    code_name=body.code_name,
                    display_name=body.display_name,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._write_texts(conn, consent_id, body.texts)
            announce(conn, "consent", consent_id)
            return self._get_in(conn, consents.c.id == consent_id)

    def list_page(self, query: ListQuery) -> Page[Consent]:
        with self.store.read() as conn:
            stmt = sa.select(consents.c.id).order_by(consents.c.id).limit(query.limit + 1)
            if (after := cursor_id(query.cursor)) is not None:
                stmt = stmt.where(consents.c.id > after)
            ids = list(conn.execute(stmt).scalars())
            items = [self._get_in(conn, consents.c.id == i) for i in ids]
        return page_by_id(items, query.limit, lambda c: c.id)

    def get(self, consent_id: uuid.UUID) -> Consent:
        with self.store.read() as conn:
            return self._get_in(conn, consents.c.id == consent_id)

    def get_by_code(self, code_name: str) -> Consent:
        with self.store.read() as conn:
            return self._get_in(conn, consents.c.code_name == code_name)

    def update(self, consent_id: uuid.UUID, body: ConsentUpdate) -> Consent:
        with self.store.write() as conn:
            current = self._get_in(conn, consents.c.id == consent_id)
            values: dict[str, object] = {}
            if body.display_name is not msgspec.UNSET:
                values["display_name"] = body.display_name
            if body.texts is not msgspec.UNSET and body.texts != current.texts:
                _check_texts(body.texts)
                self._write_texts(conn, consent_id, body.texts)
                values["version"] = current.version + 1
            if values:
                values["updated_at"] = utcnow()
                conn.execute(consents.update().where(consents.c.id == consent_id).values(**values))
                announce(conn, "consent", consent_id)
            return self._get_in(conn, consents.c.id == consent_id)

    def delete(self, consent_id: uuid.UUID) -> None:
        with self.store.write() as conn:
            current = self._get_in(conn, consents.c.id == consent_id)
            used = conn.execute(
                sa.select(consent_agreements.c.id)
                .where(consent_agreements.c.consent_id == consent_id)
                .limit(1)
            ).first()
            if used is not None:
                raise conflict(
                    f"Contacts have agreed to or revoked {quoted(current.code_name)}; its history "
                    "is an audit trail, so it cannot be deleted."
                )
            conn.execute(consents.delete().where(consents.c.id == consent_id))
            announce(conn, "consent", consent_id)

    def text_for(self, code_name: str, language: str | None, fallback: str) -> ConsentText:
        """The text in ``language``, else in ``fallback`` (the channel's default language)."""
        consent = self.get_by_code(code_name)
        found = pick_language(consent.texts, language, fallback)
        if found is not None:
            return consent.texts[found]
        raise ApiError(
            404,
            "not_found",
            f"Consent {quoted(code_name)} has no text in {quoted(language or fallback)} nor in "
            f"the channel's default language {quoted(fallback)}.",
        )

    # -- agreements ----------------------------------------------------------------------

    def agree(
        self, contact_id: uuid.UUID, code_name: str, agreed: bool, channel_id: uuid.UUID | None
    ) -> Agreement:
        """Append an agreement (or a revocation) for the consent's current text version."""
        with self.store.write() as conn:
            return insert_agreement(conn, contact_id, code_name, agreed, channel_id)

    def state(self, contact_id: uuid.UUID, code_name: str) -> ConsentState:
        from waypost.records.contacts import require_contact

        with self.store.read() as conn:
            contact_id = require_contact(conn, contact_id)
            found = conn.execute(
                sa.select(consents.c.id).where(consents.c.code_name == code_name)
            ).scalar_one_or_none()
            if found is None:
                raise not_found("consent")
            return current_states(conn, [contact_id], found).get(
                contact_id, ConsentState(False, None)
            )

    def history(self, contact_id: uuid.UUID) -> list[Agreement]:
        """A contact's agreements and revocations, newest first."""
        return self.history_page(contact_id, ListQuery(limit=1000)).data

    def history_page(self, contact_id: uuid.UUID, query: ListQuery) -> Page[Agreement]:
        """The history a page at a time; ids are UUIDv7, so their order is the time order."""
        from waypost.records.contacts import require_contact

        a = consent_agreements
        with self.store.read() as conn:
            contact_id = require_contact(conn, contact_id)
            stmt = (
                sa.select(a, consents.c.code_name)
                .join(consents, consents.c.id == a.c.consent_id)
                .where(a.c.contact_id == contact_id)
                .order_by(a.c.id.desc())
                .limit(query.limit + 1)
            )
            if (before := cursor_id(query.cursor)) is not None:
                stmt = stmt.where(a.c.id < before)
            rows = conn.execute(stmt).all()
        items = [
            Agreement(
                id=r.id,
                contact=r.contact_id,
                consent=r.code_name,
                agreed=r.agreed,
                version=r.version,
                channel=r.channel_id,
                created_at=r.created_at,
            )
            for r in rows
        ]
        return page_by_id(items, query.limit, lambda agreement: agreement.id)

    def _get_in(self, conn: Connection, where: sa.ColumnElement[bool]) -> Consent:
        row = conn.execute(sa.select(consents).where(where)).first()
        if row is None:
            raise not_found("consent")
        texts = {
            t.language: ConsentText(t.short_text, t.full_text)
            for t in conn.execute(
                sa.select(consent_texts).where(consent_texts.c.consent_id == row.id)
            )
        }
        return Consent(
            id=row.id,
            code_name=row.code_name,
            display_name=row.display_name,
            version=row.version,
            texts=texts,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _write_texts(
        self, conn: Connection, consent_id: uuid.UUID, texts: dict[Language, ConsentText]
    ) -> None:
        conn.execute(consent_texts.delete().where(consent_texts.c.consent_id == consent_id))
        if texts:
            conn.execute(
                consent_texts.insert(),
                [
                    {
                        "consent_id": consent_id,
                        "language": language,
                        "short_text": text.short_text,
                        "full_text": text.full_text,
                    }
                    for language, text in texts.items()
                ],
            )
