"""The demo's data: its consent, activity type, website channel, contact group, keys and the
playbook of its loan alerts.

Everything goes through the hub's services, as an operator's script through the admin API
would, and preparing twice changes nothing but the keys: a key's secret is shown only when it
is created, so each start of the demo makes fresh ones and deletes the previous ones of the
same origin. The keys are named after the demo's origin, so that demos on other origins (a
second ``waypost demo`` on another port, beside ``waypost serve --demo``) keep theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from waypost.demo.alerts import prepare_alerts
from waypost.domain.channels import normalise_origin
from waypost.domain.fields import FieldSpec
from waypost.domain.keys import Access
from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.pagination import ListQuery
from waypost.services.activity_types import ActivityTypeCreate, ActivityTypeUpdate
from waypost.services.channels import Channel, ChannelCreate, ChannelUpdate
from waypost.services.consents import Consent, ConsentCreate, ConsentText, ConsentUpdate
from waypost.services.groups import Group, GroupCreate, GroupUpdate, MemberQuery
from waypost.services.keys import KeyCreate, KeyQuery

CONSENT = "TrackingConsent"
LOAN_TYPE = "custom_loan_calculator"
KEY_NAME = "Demo site"
# The demo's backend asks Waypost about group membership with this key; it never reaches a page.
ADMIN_KEY_NAME = "Demo site (personalization)"
GROUP_NAME = "Used the loan calculator"
GROUP_CONDITION: dict[str, Any] = {"activity": {"type": LOAN_TYPE, "within_days": 30}}

CONSENT_TEXT = ConsentText(
    short_text=(
        "We would like to remember you and what you do on our site, such as the loans you "
        "calculate, to offer you loans that suit you."
    ),
    full_text=(
        "<p>With your consent, Waypost Bank records the pages you visit and the tools you use on "
        "this site, and links them to you when you log in. We use this to show you offers that "
        "fit what you looked at. You can revoke your consent at any time under "
        "<em>Privacy settings</em>; from then on nothing more is recorded.</p>"
    ),
)


@dataclass(frozen=True)
class DemoSetup:
    """What the demo site needs: its channel, a publishable key, and the consent's texts; for
    its backend, the group it personalizes with and an admin key to ask about membership."""

    channel_id: uuid.UUID
    publishable_key: str
    identity_secret: str
    consent_text: ConsentText
    group_id: uuid.UUID
    admin_key: str
    # The secret of the loan alerts' webhook endpoint; None when Waypost may not call the demo.
    alerts_secret: str | None = None


def key_names(origin: str | None) -> tuple[str, str]:
    """The names of the publishable and the admin key of the demo at ``origin`` (the first of
    its origins): ``Demo site http://127.0.0.1:8001`` and ``Demo site http://127.0.0.1:8001
    (personalization)``; without an origin, :data:`KEY_NAME` and :data:`ADMIN_KEY_NAME`."""
    if origin is None:
        return KEY_NAME, ADMIN_KEY_NAME
    return f"{KEY_NAME} {origin}", f"{KEY_NAME} {origin} (personalization)"


def prepare_demo(hub: Hub, origins: Sequence[str]) -> DemoSetup:
    """Make sure the demo's data exists, allow ``origins`` on the website channel, and create
    a fresh publishable key and a fresh admin key for the demo at the first of ``origins``,
    replacing that origin's earlier ones and no other demo's."""
    consent = _consent(hub)
    _loan_type(hub)
    channel = _channel(hub, origins)
    group = _group(hub)
    origin = normalise_origin(origins[0]) if origins else None
    publishable, admin = key_names(origin)
    # Earlier versions named the keys without the origin: a demo replaces those as well.
    earlier = key_names(None)
    return DemoSetup(
        channel_id=channel.id,
        publishable_key=_fresh_key(hub, "publishable", channel.id, publishable, earlier[0]),
        identity_secret=channel.identity_secret,
        consent_text=consent.texts["en"],
        group_id=group.id,
        admin_key=_fresh_key(hub, "admin", None, admin, earlier[1]),
        alerts_secret=prepare_alerts(hub, origin, LOAN_TYPE) if origin else None,
    )


def _fresh_key(
    hub: Hub, access: Access, channel: uuid.UUID | None, name: str, *replaces: str
) -> str:
    """A new key named ``name``, the earlier keys of that name (or of a name in ``replaces``)
    deleted."""
    names = {name, *replaces}
    cursor: str | None = None
    while True:
        query = KeyQuery(limit=1000, cursor=cursor, channel=channel, access=access)
        page = hub.keys.list_page(query)
        for key in page.data:
            if key.name in names and key.channel == channel:
                hub.keys.delete(key.id)
        if (cursor := page.next) is None:
            break
    return hub.keys.create(KeyCreate(access=access, channel=channel, name=name)).key


def _group(hub: Hub) -> Group:
    """The group the offers page personalizes with, found by its name, its condition put back
    if someone changed it."""
    found = _find_group(hub)
    if found is None:
        try:
            return hub.groups.create(GroupCreate(name=GROUP_NAME, condition=GROUP_CONDITION))
        except ApiError as exc:
            # A 409: another demo starting at the same moment made it first.
            found = _find_group(hub) if exc.status == 409 else None
            if found is None:
                raise
    if found.condition != GROUP_CONDITION:
        found = hub.groups.update(found.id, GroupUpdate(condition=GROUP_CONDITION))
    return found


def _find_group(hub: Hub) -> Group | None:
    cursor: str | None = None
    while True:
        page = hub.groups.list_page(MemberQuery(limit=1000, cursor=cursor))
        for group in page.data:
            if group.name == GROUP_NAME:
                return group
        if (cursor := page.next) is None:
            return None


def _missing(exc: ApiError) -> bool:
    return exc.status == 404


def _consent(hub: Hub) -> Consent:
    try:
        consent = hub.consents.get_by_code(CONSENT)
    except ApiError as exc:
        if not _missing(exc):
            raise
        return hub.consents.create(
            ConsentCreate(
                code_name=CONSENT, display_name="Tracking consent", texts={"en": CONSENT_TEXT}
            )
        )
    if "en" not in consent.texts:
        texts = {**consent.texts, "en": CONSENT_TEXT}
        consent = hub.consents.update(consent.id, ConsentUpdate(texts=texts))
    return consent


def _loan_type(hub: Hub) -> None:
    try:
        found = hub.types.get_by_code(LOAN_TYPE)
    except ApiError as exc:
        if not _missing(exc):
            raise
        hub.types.create(
            ActivityTypeCreate(
                name="Loan calculator usage",
                code_name=LOAN_TYPE,
                description="A visitor ran the loan calculator; amount is the loan asked for.",
                client_side=True,
                fields=[FieldSpec(name="amount", type="decimal", primary=True)],
            )
        )
        return
    if not (found.enabled and found.client_side):
        hub.types.update(found.id, ActivityTypeUpdate(enabled=True, client_side=True))


def _channel(hub: Hub, origins: Sequence[str]) -> Channel:
    """The oldest website channel (the one ``waypost serve`` made), or a new one."""
    websites: list[Channel] = []
    cursor: str | None = None
    while True:
        page = hub.channels.list_page(ListQuery(limit=1000, cursor=cursor))
        websites += [c for c in page.data if c.kind == "website"]
        if (cursor := page.next) is None:
            break
    if not websites:
        return hub.channels.create(
            ChannelCreate(
                name="Website",
                kind="website",
                allowed_origins=list(origins),
                tracking_consent=CONSENT,
            )
        )
    channel = min(websites, key=lambda c: c.id)  # UUIDv7: the smallest is the oldest
    missing = [o for o in map(normalise_origin, origins) if o not in channel.allowed_origins]
    change = ChannelUpdate()
    if missing:
        change.allowed_origins = [*channel.allowed_origins, *missing]
    if channel.tracking_consent != CONSENT:
        change.tracking_consent = CONSENT
    if change == ChannelUpdate():
        return channel
    return hub.channels.update(channel.id, change)
