"""Identify from a browser, on both databases: docs/browser-tracking.md#identifying-visitors.

As for activities, only at cookie level visitor or all and, where the channel has a tracking
consent, for a contact with a current agreement to it. An email nobody has is set on the
visitor's contact, or, when that contact has another email already, on a new contact that gets
the browser's tracking agreement; an email another contact has merges the visitor into that
contact only with a valid identity hash (HMAC-SHA256 of the lower-cased email with the channel's
identity secret), and otherwise is only recorded as a claim.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from waypost.hub import Hub
from waypost.records.contacts import identity_hash, insert_contact
from waypost.services.activity_types import ActivityType
from waypost.services.channels import Channel
from waypost.services.consents import ConsentCreate
from waypost.services.keys import CreatedKey
from waypost.store.schema import (
    activities,
    activity_rollups,
    consent_agreements,
    contact_external_ids,
    contact_merges,
    contacts,
)

if TYPE_CHECKING:
    from tests.conftest import ErrorCheck, Tracker

ORIGIN = "https://bank.example"
SECOND_ORIGIN = "https://loans.example"
CONSENT = "TrackingConsent"
EMAIL = "john.apple@example.com"


def sign(secret: str, email: str) -> str:
    """What the site's backend computes: the docs' recipe, character for character."""
    return hmac.new(secret.encode(), email.lower().encode(), hashlib.sha256).hexdigest()


@dataclass
class Site:
    client: TestClient
    hub: Hub
    channel: Channel
    key: str

    def post(self, route: str, body: dict[str, Any], origin: str = ORIGIN) -> httpx2.Response:
        return self.client.post(
            f"/browser/{route}",
            params={"key": self.key},
            content=json.dumps(body),
            headers={"Origin": origin, "Content-Type": "text/plain"},
        )

    def visitor(self, origin: str = ORIGIN) -> str:
        answer = self.post("consent", {"consent": CONSENT, "agree": True}, origin)
        assert answer.status_code == 200, answer.text
        contact = answer.json()["contact"]
        assert isinstance(contact, str)
        return contact

    def log(self, contact: str, activity: dict[str, Any]) -> str:
        body = {"contact": contact, "cookieLevel": "visitor", "activity": activity}
        answer = self.post("activity", body)
        assert answer.status_code == 202, answer.text
        activity_id = answer.json()["id"]
        assert isinstance(activity_id, str)
        return activity_id

    def identify(
        self, contact: str | None, email: str, *, origin: str | None = None, **more: str | None
    ) -> httpx2.Response:
        body: dict[str, Any] = {"cookieLevel": "visitor", "email": email, **more}
        if contact is not None:
            body["contact"] = contact
        return self.post("identify", body, origin or ORIGIN)

    def identified(self, contact: str | None, email: str, **more: str | None) -> tuple[str, bool]:
        answer = self.identify(contact, email, **more)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"contact", "merged"}
        return body["contact"], body["merged"]

    def secret(self) -> str:
        return self.hub.channels.get(self.channel.id).identity_secret


@pytest.fixture
def site(
    client: TestClient,
    hub: Hub,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Site:
    hub.consents.create(ConsentCreate(code_name=CONSENT, display_name="Tracking"))
    channel = make_channel(
        kind="website", allowed_origins=[ORIGIN, SECOND_ORIGIN], tracking_consent=CONSENT
    )
    key = make_key("publishable", channel.id).key
    hub.catalog.invalidate()
    return Site(client, hub, channel, key)


@pytest.fixture
def open_site(
    client: TestClient,
    hub: Hub,
    site: Site,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
) -> Site:
    """A website channel without a tracking consent: the cookie level alone allows tracking."""
    channel = make_channel(kind="website", allowed_origins=[ORIGIN])
    key = make_key("publishable", channel.id).key
    hub.catalog.invalidate()
    return Site(client, hub, channel, key)


def count(hub: Hub, table: sa.Table) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def loan(make_type: Callable[..., ActivityType], hub: Hub) -> ActivityType:
    kind = make_type(
        name="Loan calculator usage", code_name="custom_loan_calculator", client_side=True
    )
    hub.catalog.invalidate()
    return kind


def row(hub: Hub, contact: str) -> sa.Row[Any]:
    with hub.store.read() as conn:
        return conn.execute(sa.select(contacts).where(contacts.c.id == uuid.UUID(contact))).one()


def owned(hub: Hub, table: sa.Table, contact: str) -> int:
    with hub.store.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.contact_id == uuid.UUID(contact))
            ).scalar_one()
        )


def merges(hub: Hub) -> list[sa.Row[Any]]:
    with hub.store.read() as conn:
        return list(conn.execute(sa.select(contact_merges)).all())


# -- an email nobody has --------------------------------------------------------------------------


def test_an_email_nobody_has_is_set_on_the_visitors_contact(site: Site, hub: Hub) -> None:
    visitor = site.visitor()
    assert site.identified(visitor, "John.Apple@Example.com", first=" John ", last="Apple") == (
        visitor,
        False,
    )
    contact = hub.contacts.get(uuid.UUID(visitor))
    assert (contact.email, contact.first_name, contact.last_name) == (
        "John.Apple@Example.com",
        "John",
        "Apple",
    )
    assert row(hub, visitor).email_key == EMAIL
    # The same email again, in another case: the same contact, names updated, blanks ignored.
    assert site.identified(visitor, EMAIL.upper(), first="  ", last="Appleseed") == (
        visitor,
        False,
    )
    contact = hub.contacts.get(uuid.UUID(visitor))
    assert (contact.first_name, contact.last_name) == ("John", "Appleseed")
    assert contact.attributes == {}
    assert merges(hub) == []


def test_without_a_contact_identify_makes_one_where_no_consent_is_required(
    site: Site, open_site: Site, hub: Hub, expect_error: ErrorCheck
) -> None:
    created, merged = open_site.identified(None, "new@example.com", first="Nina")
    assert not merged
    contact = hub.contacts.get(uuid.UUID(created))
    assert (contact.email, contact.first_name) == ("new@example.com", "Nina")
    # Where the channel requires its tracking consent, a visitor without a contact has not
    # agreed to anything yet: nothing is made.
    before = count(hub, contacts)
    expect_error(site.identify(None, "other@example.com"), 403, "consent_required")
    assert count(hub, contacts) == before


def test_an_identify_that_lost_a_race_for_its_email_runs_again(
    open_site: Site, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two visitors naming one new email at once both found no contact with it and made one:
    the second insert broke the unique email key, a 500 on PostgreSQL. The identify now runs
    again, whole, and then finds the contact the other one made (here, none: the conflict is
    made up, once)."""
    real_insert = insert_contact
    raced: list[bool] = []

    def insert(conn: sa.Connection, **values: Any) -> uuid.UUID:
        made = real_insert(conn, **values)
        if values.get("email") and not raced:
            raced.append(True)
            raise sa.exc.IntegrityError("INSERT", None, Exception("duplicate key"))
        return made

    monkeypatch.setattr("waypost.services.contacts.insert_contact", insert)
    created, merged = open_site.identified(None, "same@example.com")
    assert raced == [True]
    assert not merged
    with hub.store.read() as conn:
        owners = conn.execute(
            sa.select(contacts.c.id).where(contacts.c.email_key == "same@example.com")
        ).all()
    assert [str(owner.id) for owner in owners] == [created]


def test_a_contact_with_another_email_gets_a_new_contact_with_the_tracking_agreement(
    site: Site, hub: Hub, loan: ActivityType
) -> None:
    """Another person in the same browser: the email of the first one never changes, the
    second is a new contact, and the tracking agreement given in this browser carries over."""
    hub.consents.create(ConsentCreate(code_name="Newsletter", display_name="Newsletter"))
    visitor = site.visitor()
    site.post("consent", {"contact": visitor, "consent": "Newsletter", "agree": True})
    site.log(visitor, {"type": "custom_loan_calculator", "value": "1"})
    site.identified(visitor, "first@example.com", first="Fiona")
    history_before = hub.consents.history(uuid.UUID(visitor))

    other, merged = site.identified(visitor, "second@example.com", first="Sam", last="Second")
    assert not merged
    assert other != visitor
    new = hub.contacts.get(uuid.UUID(other))
    assert (new.email, new.first_name, new.last_name) == ("second@example.com", "Sam", "Second")
    old = hub.contacts.get(uuid.UUID(visitor))
    assert (old.email, old.first_name, old.last_name) == ("first@example.com", "Fiona", None)
    assert row(hub, visitor).merged_into is None
    assert merges(hub) == []
    # The new contact may be tracked: the browser's agreement, on this channel, for the text
    # version the visitor agreed to; the newsletter stays Fiona's.
    [carried] = hub.consents.history(uuid.UUID(other))
    assert (carried.consent, carried.agreed, carried.channel) == (CONSENT, True, site.channel.id)
    assert carried.version == hub.consents.state(uuid.UUID(visitor), CONSENT).version
    assert not hub.consents.state(uuid.UUID(other), "Newsletter").agreed
    assert hub.consents.history(uuid.UUID(visitor)) == history_before
    site.log(other, {"type": "custom_loan_calculator", "value": "2"})
    assert owned(hub, activities, other) == 1
    assert owned(hub, activities, visitor) == 1
    # Back to the first email: it names Fiona's contact (a claim, without a hash) ...
    assert site.identified(other, "first@example.com") == (other, False)
    # ... and the new contact keeps its email when named again.
    assert site.identified(other, "Second@example.com") == (other, False)


def test_a_new_contact_on_a_channel_without_a_tracking_consent_gets_no_agreement(
    open_site: Site, hub: Hub
) -> None:
    visitor, _ = open_site.identified(None, "first@example.com")
    other, _ = open_site.identified(visitor, "second@example.com")
    assert other != visitor
    assert hub.consents.history(uuid.UUID(other)) == []


# -- cookie level and tracking consent -------------------------------------------------------------


def test_identify_needs_the_cookie_level_visitor_or_all(
    site: Site, hub: Hub, expect_error: ErrorCheck
) -> None:
    visitor = site.visitor()
    for level in ("none", "essential", "Visitor", ""):
        answer = site.identify(visitor, EMAIL, cookieLevel=level)
        expect_error(answer, 403, "consent_required", "cookieLevel")
    expect_error(
        site.post("identify", {"contact": visitor, "email": EMAIL}),
        400,
        "missing_field",
        "cookieLevel",
    )
    assert hub.contacts.get(uuid.UUID(visitor)).email is None
    for level in ("visitor", "all"):
        assert site.identified(visitor, EMAIL, cookieLevel=level) == (visitor, False)
    assert hub.contacts.get(uuid.UUID(visitor)).email == EMAIL


def test_identify_needs_a_current_tracking_agreement(
    site: Site, hub: Hub, owner: str, expect_error: ErrorCheck
) -> None:
    hub.consents.create(ConsentCreate(code_name="Newsletter", display_name="Newsletter"))
    answer = site.post("consent", {"consent": "Newsletter", "agree": True})
    other_consent = answer.json()["contact"]
    visitor = site.visitor()
    site.post("consent", {"contact": visitor, "consent": CONSENT, "agree": False})
    contacts_before, merges_before = count(hub, contacts), merges(hub)
    for contact in (other_consent, visitor):
        expect_error(site.identify(contact, "new@example.com"), 403, "consent_required")
        signed = sign(site.secret(), EMAIL)
        expect_error(site.identify(contact, EMAIL, hash=signed), 403, "consent_required")
        person = hub.contacts.get(uuid.UUID(contact))
        assert (person.email, person.attributes) == (None, {})
        assert row(hub, contact).merged_into is None
    assert (count(hub, contacts), merges(hub)) == (contacts_before, merges_before)
    # Agreeing again allows it.
    site.post("consent", {"contact": visitor, "consent": CONSENT, "agree": True})
    assert site.identified(visitor, "new@example.com") == (visitor, False)


def test_without_a_tracking_consent_the_cookie_level_alone_counts(
    open_site: Site, hub: Hub, expect_error: ErrorCheck
) -> None:
    contact, _ = open_site.identified(None, "open@example.com")
    answer = open_site.identify(contact, "open@example.com", cookieLevel="essential", first="O")
    expect_error(answer, 403, "consent_required", "cookieLevel")
    assert hub.contacts.get(uuid.UUID(contact)).first_name is None


def test_identify_checks_its_body(site: Site, expect_error: ErrorCheck) -> None:
    visitor = site.visitor()
    for email in ("", "john", "john@", "@example.com", "a b@example.com", "x" * 250 + "@e.com"):
        expect_error(site.identify(visitor, email), 400, "invalid_field", "email")
    # 212 characters, 412 lower-cased (İ is two): a key the column cannot hold, which was a
    # 500 on PostgreSQL.
    expect_error(site.identify(visitor, "\u0130" * 200 + "@e.com"), 400, "invalid_field", "email")
    expect_error(site.identify(visitor, EMAIL, first="x" * 101), 400, "invalid_field", "first")
    expect_error(site.identify(visitor, EMAIL, last="x" * 101), 400, "invalid_field", "last")
    expect_error(site.post("identify", {"contact": visitor}), 400, "missing_field", "email")
    expect_error(site.identify(visitor, EMAIL, middle="x"), 400, "unknown_field", "middle")
    assert site.hub.contacts.get(uuid.UUID(visitor)).email is None


# -- an email another contact has, without a valid hash -----------------------------------------


@pytest.fixture
def owner(site: Site, hub: Hub, loan: ActivityType) -> str:
    """John, known already: identified on the site, with a page visit of his own."""
    contact = site.visitor()
    assert site.identified(contact, EMAIL, first="John", last="Apple") == (contact, False)
    site.log(contact, {"type": "pagevisit", "url": "https://bank.example/"})
    return contact


def bad_hashes(site: Site, other_secret: str) -> dict[str, str | None]:
    good = sign(site.secret(), EMAIL)
    return {
        "none": None,
        "empty": "",
        "another email's": sign(site.secret(), "mallory@example.com"),
        "another channel's": sign(other_secret, EMAIL),
        "of the email as typed": hmac.new(
            site.secret().encode(), EMAIL.title().encode(), hashlib.sha256
        ).hexdigest(),
        "cut short": good[:-1],
        "one digit off": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "the secret itself": site.secret(),
        "not hex": "z" * 64,
        "not ascii": "é" * 64,
    }


def test_without_a_valid_hash_the_claim_is_recorded_and_nothing_merges(
    site: Site,
    hub: Hub,
    owner: str,
    loan: ActivityType,
    make_channel: Callable[..., Channel],
) -> None:
    other = make_channel(kind="website", allowed_origins=["https://other.example"])
    mallory = site.visitor()
    site.log(mallory, {"type": "custom_loan_calculator", "value": "9000"})
    for why, given in bad_hashes(site, other.identity_secret).items():
        answer = site.identify(mallory, EMAIL.title(), first="Mallory", hash=given)
        assert answer.status_code == 200, (why, answer.text)
        assert answer.json() == {"contact": mallory, "merged": False}, why
    claimant = hub.contacts.get(uuid.UUID(mallory))
    assert claimant.email is None
    assert claimant.first_name is None
    assert claimant.attributes == {
        "claimed_email": EMAIL.title(),
        "claimed_first_name": "Mallory",
    }
    assert row(hub, mallory).merged_into is None
    # John is untouched: his names, his history, his consent; the claimant keeps theirs.
    john = hub.contacts.get(uuid.UUID(owner))
    assert (john.email, john.first_name, john.last_name) == (EMAIL, "John", "Apple")
    assert john.attributes == {}
    assert owned(hub, activities, owner) == 1
    assert owned(hub, activities, mallory) == 1
    assert owned(hub, consent_agreements, mallory) == 1
    assert merges(hub) == []


def test_a_claim_without_a_contact_never_names_the_owner(
    open_site: Site, hub: Hub, owner: str
) -> None:
    claimant, merged = open_site.identified(None, EMAIL, first="Mallory")
    assert not merged
    assert claimant != owner
    assert hub.contacts.get(uuid.UUID(claimant)).attributes["claimed_email"] == EMAIL
    assert hub.contacts.get(uuid.UUID(claimant)).email is None
    # With the hash, the site's backend vouches for the visitor: the owner, nothing to merge.
    signed = sign(open_site.secret(), EMAIL)
    assert open_site.identified(None, EMAIL, hash=signed) == (owner, False)
    assert merges(hub) == []


# -- a valid hash merges ---------------------------------------------------------------------------


def test_the_hash_recipe_of_the_docs(site: Site) -> None:
    assert identity_hash(site.secret(), "John.Apple@Example.COM") == sign(site.secret(), EMAIL)


def rollups(hub: Hub, contact: str) -> dict[tuple[uuid.UUID, dt.date], int]:
    with hub.store.read() as conn:
        rows = conn.execute(
            sa.select(
                activity_rollups.c.type_id, activity_rollups.c.day, activity_rollups.c.count
            ).where(activity_rollups.c.contact_id == uuid.UUID(contact))
        ).all()
    return {(r.type_id, r.day): int(r._mapping["count"]) for r in rows}


def type_id(hub: Hub, code: str) -> uuid.UUID:
    return hub.catalog.get().types[code].id


def test_a_valid_hash_merges_the_visitor_into_the_owner(
    site: Site,
    hub: Hub,
    loan: ActivityType,
    make_tracker: Callable[..., Tracker],
) -> None:
    """John logged in at the bank's backend long ago (a headless channel); today he browses
    anonymously, then logs in on the site, whose backend signs his email."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    today, two_days_ago = now, now - dt.timedelta(days=2)
    backend = make_tracker()
    hub.catalog.invalidate()
    john = backend.new_contact()
    results = backend.log(
        [
            {
                "type": "datainput",
                "value": "Login",
                "contactFields": {"ContactEmail": "John.Apple@Example.com"},
            },
            *[
                {"type": "pagevisit", "url": "https://bank.example/", "occurredAt": t.isoformat()}
                for t in (today, today, today)
            ],
            {"type": "click", "value": "btnCTA", "occurredAt": today.isoformat()},
        ],
        john,
    )
    assert [r["status"] for r in results] == [202] * 5
    hub.consents.agree(uuid.UUID(john), CONSENT, True, site.channel.id)

    visitor = site.visitor(SECOND_ORIGIN)
    for t in (today, today, two_days_ago):
        site.log(
            visitor,
            {"type": "pagevisit", "url": "https://loans.example/", "occurredAt": t.isoformat()},
        )
    loan_id = site.log(visitor, {"type": "custom_loan_calculator", "value": "5000"})
    with hub.store.write() as conn:
        conn.execute(
            contact_external_ids.insert().values(
                contact_id=uuid.UUID(visitor),
                kind="crm",
                value="CRM-1",
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    john_agreements = owned(hub, consent_agreements, john)
    visitor_activities = owned(hub, activities, visitor)
    assert visitor_activities == 4

    answer = site.identify(
        visitor,
        "JOHN.Apple@example.com",
        origin=SECOND_ORIGIN,
        hash=sign(site.secret(), EMAIL).upper(),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"contact": john, "merged": True}

    # Activities, agreements, external ids: all John's now.
    assert owned(hub, activities, visitor) == 0
    assert owned(hub, activities, john) == 5 + visitor_activities
    with hub.store.read() as conn:
        moved = conn.execute(
            sa.select(activities.c.contact_id).where(activities.c.id == uuid.UUID(loan_id))
        ).scalar_one()
    assert moved == uuid.UUID(john)
    assert owned(hub, consent_agreements, visitor) == 0
    assert owned(hub, consent_agreements, john) == john_agreements + 1
    assert owned(hub, contact_external_ids, visitor) == 0
    assert hub.contacts.get(uuid.UUID(john)).external_ids == {"crm": ["CRM-1"]}
    # Daily counts: summed where day and type meet, moved where they do not.
    pagevisit, click = type_id(hub, "pagevisit"), type_id(hub, "click")
    datainput = type_id(hub, "datainput")
    assert rollups(hub, visitor) == {}
    counts = rollups(hub, john)
    assert counts[(pagevisit, today.date())] == 5
    assert counts[(pagevisit, two_days_ago.date())] == 1
    assert counts[(click, today.date())] == 1
    assert counts[(loan.id, dt.datetime.now(dt.UTC).date())] == 1
    assert sum(counts.values()) == 5 + visitor_activities
    assert datainput in {t for t, _ in counts}
    # The visitor's contact stays, marked; the merge is on record.
    assert row(hub, visitor).merged_into == uuid.UUID(john)
    assert row(hub, john).merged_into is None
    [merge] = merges(hub)
    assert (merge.source_id, merge.target_id) == (uuid.UUID(visitor), uuid.UUID(john))
    assert merge.reason == "identify"
    assert merge.channel_id == site.channel.id
    john_now = hub.contacts.get(uuid.UUID(john))
    assert john_now.email == "John.Apple@Example.com"  # an email never changes


def test_a_merge_never_turns_the_visitors_unverified_claims_into_the_owners_data(
    site: Site, hub: Hub, owner: str
) -> None:
    """Mallory types John's email and her name in a shared browser (a claim); later John logs
    in there and his site signs his email: the visitor's contact merges into John's, and
    what Mallory claimed stays behind on the merged contact."""
    shared = site.visitor()
    assert site.identified(shared, EMAIL, first="Mallory", last="Evil") == (shared, False)
    with hub.store.write() as conn:
        conn.execute(
            contacts.update()
            .where(contacts.c.id == uuid.UUID(shared))
            .values(attributes={**row(hub, shared).attributes, "newsletter": "weekly"})
        )
    assert site.identified(shared, EMAIL, hash=sign(site.secret(), EMAIL)) == (owner, True)
    john = hub.contacts.get(uuid.UUID(owner))
    assert (john.email, john.first_name, john.last_name) == (EMAIL, "John", "Apple")
    # The visitor's other attributes are John's now; the claims are not.
    assert john.attributes == {"newsletter": "weekly"}
    assert hub.contacts.get(uuid.UUID(shared)).attributes["claimed_first_name"] == "Mallory"


def test_requests_naming_the_merged_contact_land_on_the_survivor(
    site: Site,
    hub: Hub,
    owner: str,
    loan: ActivityType,
    make_tracker: Callable[..., Tracker],
) -> None:
    earlier = site.visitor()
    visitor = site.visitor()
    # An earlier visit of the same person was merged into this visitor already (cross-site).
    assert site.identified(visitor, "v@example.com") == (visitor, False)
    assert site.identified(earlier, "v@example.com", hash=sign(site.secret(), "v@example.com")) == (
        visitor,
        True,
    )
    assert site.identified(visitor, EMAIL, hash=sign(site.secret(), EMAIL)) == (owner, True)
    assert row(hub, earlier).merged_into == uuid.UUID(owner)  # chains are flattened

    for old in (visitor, earlier):
        before = owned(hub, activities, owner)
        site.log(old, {"type": "custom_loan_calculator", "value": "1"})
        assert owned(hub, activities, owner) == before + 1
        assert owned(hub, activities, old) == 0
        consent = site.post("consent", {"contact": old, "consent": CONSENT, "agree": True})
        assert consent.json() == {"contact": owner, "isAgreed": True}
        assert site.identified(old, EMAIL, first="Johnny") == (owner, False)

    backend = make_tracker()
    hub.catalog.invalidate()
    for prefix in ("/tracking", "/Kentico.Tracking"):
        results = backend.log([{"type": "click", "value": "app"}], visitor, prefix)
        assert results[0]["status"] == 202
        state = backend.client.get(
            f"{prefix}/contacts/{earlier}/consents/{CONSENT}", headers=backend.headers
        )
        assert state.status_code == 200, state.text
        assert state.json() == {"isAgreed": True}
    assert owned(hub, activities, visitor) == owned(hub, activities, earlier) == 0
    assert hub.contacts.resolve(uuid.UUID(earlier)) == uuid.UUID(owner)
    assert hub.contacts.get(uuid.UUID(owner)).first_name == "Johnny"
    assert len(merges(hub)) == 2


def test_email_case_never_matters_to_a_match(site: Site, hub: Hub, loan: ActivityType) -> None:
    owner = site.visitor()
    site.identified(owner, "John.Apple@Example.com")
    for typed in ("john.apple@example.com", "JOHN.APPLE@EXAMPLE.COM", " John.Apple@example.com "):
        visitor = site.visitor()
        assert site.identified(visitor, typed) == (visitor, False)  # a claim only
        assert site.identified(visitor, typed, hash=sign(site.secret(), typed.strip())) == (
            owner,
            True,
        )
    assert len(merges(hub)) == 3
    assert hub.contacts.get(uuid.UUID(owner)).email == "John.Apple@Example.com"


def test_cross_site_identify_joins_the_visitors_of_both_origins(
    site: Site, hub: Hub, loan: ActivityType
) -> None:
    """Each site keeps its own first-party contact; a signed identify on both joins them."""
    on_bank, on_loans = site.visitor(ORIGIN), site.visitor(SECOND_ORIGIN)
    site.log(on_bank, {"type": "custom_loan_calculator", "value": "1"})
    site.log(on_loans, {"type": "custom_loan_calculator", "value": "2"})
    signed = sign(site.secret(), EMAIL)
    assert site.identified(on_bank, EMAIL, hash=signed) == (on_bank, False)  # first: email set
    answer = site.identify(on_loans, EMAIL, origin=SECOND_ORIGIN, hash=signed)
    assert answer.json() == {"contact": on_bank, "merged": True}
    assert owned(hub, activities, on_bank) == 2


def test_the_email_of_a_merged_contact_leads_to_the_survivor(
    site: Site,
    hub: Hub,
    owner: str,
    loan: ActivityType,
    make_tracker: Callable[..., Tracker],
) -> None:
    """A merged contact keeps its email (emails never move), so that email now names the
    survivor: a signed identify joins the survivor, a data input logs there."""
    visitor = site.visitor()
    assert site.identified(visitor, "work@example.com") == (visitor, False)
    assert site.identified(visitor, EMAIL, hash=sign(site.secret(), EMAIL)) == (owner, True)

    later = site.visitor()
    site.log(later, {"type": "custom_loan_calculator", "value": "3"})
    signed = sign(site.secret(), "work@example.com")
    assert site.identified(later, "work@example.com", hash=signed) == (owner, True)
    assert row(hub, later).merged_into == uuid.UUID(owner)
    assert owned(hub, activities, later) == owned(hub, activities, visitor) == 0
    assert site.identified(owner, "Work@example.com", hash=signed) == (owner, False)

    backend = make_tracker()
    hub.catalog.invalidate()
    before = owned(hub, activities, owner)
    [result] = backend.log(
        [
            {
                "type": "datainput",
                "value": "Newsletter form",
                "contactFields": {"ContactEmail": "work@example.com", "ContactJobTitle": "CFO"},
            }
        ]
    )
    assert result["status"] == 202
    assert owned(hub, activities, owner) == before + 1
    assert owned(hub, activities, visitor) == 0
    assert hub.contacts.get(uuid.UUID(owner)).job_title == "CFO"
