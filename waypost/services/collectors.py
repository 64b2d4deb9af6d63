"""The database side of the collectors (PostHog, Snowplow): contacts by external id, merges,
contact fields, and the type each event names.

One transaction per request resolves every event's contact by its ids (creating contacts as
needed), applies identifies, aliases and person properties, and finds each activity's type by
code name or alias. What it plans to store goes to the group-commit writer like any other
activity: the events' activities, and the events that cannot be mapped, as rejected
activities. The rules are a Segment identify's and alias's (docs/segment.md): an identify
merges the anonymous contact into the identified one unless the anonymous one is identified
too; an email another contact holds is kept as a claim, never merged on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.collected import Collected
from waypost.domain.conditions import FIELDS_CHANGED
from waypost.domain.contact_fields import MAX_ATTRIBUTES_BYTES, attributes_size, normalise_email
from waypost.domain.segment import MappingError, map_traits
from waypost.domain.suppressions import EMAIL, Suppressed
from waypost.errors import ErrorDetail
from waypost.ids import utcnow
from waypost.pipeline.catalog import ChannelInfo, Snapshot, TypeInfo
from waypost.pipeline.prepare import Rejected
from waypost.records.contacts import insert_contact, merge_contacts
from waypost.store import Store, touch
from waypost.store.schema import contact_external_ids, contacts

MAX_TYPE_CODE = 200  # rejected_activities.type_code
# The most external ids of one kind pages may link to a contact. A browser has one or two of
# each (its anonymous id, its user's id); a publishable key is public, and each new id of
# every event was linked: one contact grew by a thousand rows a request (Snowplow's nuid, a
# Segment anonymousId beside a known userId).
MAX_PAGE_IDS = 100


@dataclass(frozen=True)
class IdKinds:
    """How a collector's ids are stored as external ids: the kind of an identified user's id,
    of an anonymous id, and the prefix of further kinds and of merge reasons. With ``shared``
    an id may be of either kind (PostHog's distinct ids), so both are looked up."""

    source: str
    user: str
    anonymous: str
    shared: bool = False


SEGMENT_IDS = IdKinds("segment", "user_id", "anonymous_id")
POSTHOG_IDS = IdKinds("posthog", "posthog_user", "posthog_anon", shared=True)
SNOWPLOW_IDS = IdKinds("snowplow", "snowplow_uid", "snowplow_duid")
# Marketo's leads are known ones: a leadId is never anonymous.
MARKETO_IDS = IdKinds("marketo", "marketo_lead", "marketo_lead")


@dataclass
class Planned:
    """An activity to hand to the writer: its contact, the activity object as JSON, a flag
    to keep with it once it is accepted, and the position of its event in the request."""

    contact: uuid.UUID
    activity: bytes
    flag: dict[str, object] | None = None
    index: int = 0


@dataclass
class Plan:
    """What one request's events turned into."""

    activities: list[Planned] = field(default_factory=list)
    # Events that cannot be mapped, kept as rejected activities of no contact, each with
    # the position of its event in the request.
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)
    # Contacts merged, (source, target), once committed: rate limits follow them.
    merges: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    # How many contacts the events created.
    created: int = 0
    # Events naming an erased contact: applied to nothing and stored nowhere.
    erased: int = 0


class CollectorService:
    """Applies collected events to contacts, and finds their types."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def plan(
        self,
        channel: ChannelInfo,
        snapshot: Snapshot,
        events: list[Collected],
        kinds: IdKinds,
        may_create: int | None = None,
        *,
        page: bool = False,
    ) -> Plan:
        """Apply ``events``, creating at most ``may_create`` new contacts (None: any number);
        an event that needs one past those is kept as rejected (``rate_limited``) instead.
        With ``page`` (a publishable key) no contact gets more than :data:`MAX_PAGE_IDS`
        external ids of a kind: an event that would link more is stored on its contact
        without linking the new id. Run again, whole, when a concurrent request made a contact's
        external id first."""

        def apply(conn: Connection) -> Plan:
            plan = Plan()
            resolver = Resolver(conn, kinds, channel.id, may_create, page=page)
            for index, event in enumerate(events):
                if snapshot.suppressed and names_erased(snapshot.suppressed, event, kinds):
                    plan.erased += 1
                    continue
                try:
                    if event.error is not None:
                        raise event.error
                    self._one(conn, resolver, snapshot, event, plan, index)
                except MappingError as exc:
                    plan.rejected.append((index, rejection(event, exc)))
            plan.merges, plan.created = resolver.merges, resolver.created
            return plan

        return self.store.write_retrying(apply, unique=True)

    def _one(
        self,
        conn: Connection,
        resolver: Resolver,
        snapshot: Snapshot,
        event: Collected,
        plan: Plan,
        index: int,
    ) -> None:
        if event.alias is not None:
            contact = resolver.alias(*event.alias)
        else:
            contact = resolver.contact(event)
        for traits, once in ((event.traits_once, True), (event.traits, False)):
            if traits:
                fields, attributes = map_traits(traits)
                apply_traits(conn, contact, fields, attributes, once=once)
        if event.activity is None:
            return
        info = find_type(snapshot, event.type_names)
        activity = dict(event.activity)
        activity["type"] = info.code_name if info is not None else event.type_names[0]
        if info is not None and event.optional_fields:
            declared = {spec.name for spec in info.fields}
            chosen = {k: v for k, v in event.optional_fields.items() if k in declared}
            if chosen:
                activity["fields"] = {**chosen, **activity.get("fields", {})}
        plan.activities.append(Planned(contact, msgspec.json.encode(activity), event.flag, index))


def names_erased(suppressed: Suppressed, event: Collected, kinds: IdKinds) -> bool:
    """Whether the event names an erased contact: by one of its ids (of the kinds the
    collector stores them under), the ids of an alias, or an email in its traits; for an event
    that cannot be mapped, by the ids and emails it names all the same (``ids``,
    ``emails``: see :func:`waypost.domain.collected.named`)."""
    identities: list[tuple[str, object]] = [
        (kinds.user, event.user),
        (kinds.anonymous, event.anonymous),
        (kinds.user, event.person),
        (kinds.anonymous, event.person),
        # As linked: under the collector's name (snowplow_nuid).
        *((f"{kinds.source}_{name}", value) for name, value in event.others),
    ]
    # Ids of either kind: an alias's, and those an event that cannot be mapped names.
    for value in (*(event.alias or ()), *event.ids):
        identities += [(kinds.user, value), (kinds.anonymous, value)]
    for traits in (event.traits, event.traits_once):
        email = (traits or {}).get("email")
        if isinstance(email, str):
            identities.append((EMAIL, email.strip()))
    identities += [(EMAIL, email) for email in event.emails]
    return suppressed.any_of(identities)


def find_type(snapshot: Snapshot, names: tuple[str, ...]) -> TypeInfo | None:
    """The type the first of ``names`` names, by code name or alias."""
    for name in names:
        found = snapshot.types.get(name) or snapshot.aliases.get(name)
        if found is not None:
            return found
    return None


class Resolver:
    """Contacts by a collector's ids, remembered for the rest of the request."""

    def __init__(
        self,
        conn: Connection,
        kinds: IdKinds,
        channel_id: uuid.UUID,
        may_create: int | None = None,
        *,
        page: bool = False,
    ) -> None:
        self.conn = conn
        # How many contacts it may create; None: any number.
        self.may_create = may_create
        # A page's request: the ids each contact holds, per kind, counted as it links more.
        self.page = page
        self.made: set[uuid.UUID] = set()
        self.ids_of: dict[tuple[uuid.UUID, str], int] = {}
        self.kinds = kinds
        self.channel_id = channel_id
        self.cache: dict[tuple[str, str], uuid.UUID] = {}
        self.merges: list[tuple[uuid.UUID, uuid.UUID]] = []
        self.created = 0

    def contact(self, event: Collected) -> uuid.UUID:
        """The contact the event's ids name, created and linked as needed."""
        kinds = self.kinds
        if event.person is not None:
            found = self._user(event.person) or self.find(kinds.anonymous, event.person)
            if found is None:
                found = self._create()
                self.link(found, kinds.anonymous, event.person)
            contact = found
        elif event.user is not None or event.anonymous is not None:
            contact = self.by_ids(event.user, event.anonymous, event.identify)
        else:
            contact = self._by_others(event)
        for name, value in event.others:
            kind = f"{kinds.source}_{name}"
            if self.find(kind, value) is None:
                self.link(contact, kind, value)
        return contact

    def _by_others(self, event: Collected) -> uuid.UUID:
        for name, value in event.others:
            found = self.find(f"{self.kinds.source}_{name}", value)
            if found is not None:
                return found
        return self._create()

    def _user(self, value: str) -> uuid.UUID | None:
        return self.find(self.kinds.user, value)

    def _anonymous(self, value: str) -> uuid.UUID | None:
        found = self.find(self.kinds.anonymous, value)
        if found is None and self.kinds.shared:
            found = self._user(value)
        return found

    def by_ids(self, user: str | None, anonymous: str | None, merge: bool) -> uuid.UUID:
        """The contact of a user's and an anonymous id (either may be None), created and linked
        as needed; with ``merge`` (an identify) the anonymous id's contact is merged into the
        user's, unless it is another user's."""
        kinds = self.kinds
        by_user = self._user(user) if user else None
        if by_user is None and user and kinds.shared:
            # A distinct id seen before only as an event's: identifying makes it a user's.
            by_user = self.find(kinds.anonymous, user)
            if by_user is not None and merge:
                self.link(by_user, kinds.user, user)
        by_anonymous = self._anonymous(anonymous) if anonymous else None
        if by_user is not None:
            if anonymous is not None and by_anonymous is None:
                self.link(by_user, kinds.anonymous, anonymous)
            elif (
                merge
                and by_anonymous is not None
                and by_anonymous != by_user
                and not self._identified(by_anonymous)
            ):
                self._merge(by_anonymous, by_user, "identify")
            return by_user
        if by_anonymous is not None:
            if user is not None:
                self.link(by_anonymous, kinds.user, user)
            return by_anonymous
        created = self._create()
        if user is not None:
            self.link(created, kinds.user, user)
        if anonymous is not None:
            self.link(created, kinds.anonymous, anonymous)
        return created

    def alias(self, previous: str, new: str) -> uuid.UUID:
        """``previous`` (any id) and ``new`` (a user's id) are the same person."""
        kinds = self.kinds
        old = self._user(previous) or self.find(kinds.anonymous, previous)
        target = self._user(new) or (self.find(kinds.anonymous, new) if kinds.shared else None)
        if old is not None and target is not None:
            if old != target:
                if self.page and self._identified(old) and self._identified(target):
                    # Two identified people: a page's word (a public key) does not join their
                    # histories, as PostHog refuses to merge two identified users. A server's
                    # alias (a user's id that changed) does.
                    raise MappingError(
                        "A page cannot alias one identified user's id to another's; send "
                        "such an alias from a server (a tracking key).",
                        "forbidden",
                        "alias",
                    )
                self._merge(old, target, "alias")
            return target
        if old is not None:
            self.link(old, kinds.user, new)
            return old
        contact = target if target is not None else self._create()
        if target is None:
            self.link(contact, kinds.user, new)
        self.link(contact, kinds.anonymous, previous)
        return contact

    def find(self, kind: str, value: str) -> uuid.UUID | None:
        cached = self.cache.get((kind, value))
        if cached is not None:
            return cached
        row = self.conn.execute(
            sa.select(contact_external_ids.c.contact_id).where(
                contact_external_ids.c.kind == kind, contact_external_ids.c.value == value
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        contact = self._surviving(row)
        self.cache[(kind, value)] = contact
        return contact

    def link(self, contact: uuid.UUID, kind: str, value: str) -> None:
        if self.page:
            held = self.ids_of.get((contact, kind))
            if held is None and contact in self.made:
                held = 0  # made by this request: none yet
            if held is None:
                held = self.conn.execute(
                    sa.select(sa.func.count()).where(
                        contact_external_ids.c.contact_id == contact,
                        contact_external_ids.c.kind == kind,
                    )
                ).scalar_one()
            if held >= MAX_PAGE_IDS:
                # The event is still the contact's (this request resolved it); the id is not
                # linked, so a later event naming only it is a new visitor's.
                self.cache[(kind, value)] = contact
                return
            self.ids_of[(contact, kind)] = held + 1
        self.conn.execute(
            contact_external_ids.insert().values(
                contact_id=contact, kind=kind, value=value, created_at=utcnow()
            )
        )
        self.cache[(kind, value)] = contact

    def _create(self) -> uuid.UUID:
        if self.may_create is not None and self.created >= self.may_create:
            raise MappingError(
                "Too many new contacts from this address this hour; the event is kept.",
                "rate_limited",
            )
        self.created += 1
        made = insert_contact(self.conn)
        self.made.add(made)
        return made

    def _surviving(self, contact_id: uuid.UUID) -> uuid.UUID:
        for _ in range(8):
            merged = self.conn.execute(
                sa.select(contacts.c.merged_into).where(contacts.c.id == contact_id)
            ).scalar_one_or_none()
            if merged is None:
                return contact_id
            contact_id = merged
        return contact_id

    def _identified(self, contact: uuid.UUID) -> bool:
        row = self.conn.execute(
            sa.select(contact_external_ids.c.value).where(
                contact_external_ids.c.contact_id == contact,
                contact_external_ids.c.kind == self.kinds.user,
            )
        ).first()
        return row is not None

    def _merge(self, source: uuid.UUID, target: uuid.UUID, how: str) -> None:
        merge_contacts(self.conn, source, target, f"{self.kinds.source}_{how}", self.channel_id)
        self.merges.append((source, target))
        # The target now holds the source's ids too: its counts of ids are read again.
        self.made.discard(target)
        for counted in [counted for counted in self.ids_of if counted[0] in (source, target)]:
            del self.ids_of[counted]
        for key, value in list(self.cache.items()):
            if value == source:
                self.cache[key] = target


def apply_traits(
    conn: Connection,
    contact: uuid.UUID,
    fields: dict[str, object],
    attributes: dict[str, Any],
    *,
    once: bool = False,
) -> None:
    """Set contact fields and attributes; with ``once`` only those not set yet (PostHog's
    ``$set_once``). The email changes unless another contact holds it: then it is kept as a
    claim (the attribute ``claimed_email``) and nothing merges. MappingError, and nothing
    set, when the attributes would grow past :data:`MAX_ATTRIBUTES_BYTES`."""
    columns = [contacts.c.email_key, contacts.c.attributes]
    columns += [contacts.c[name] for name in fields if name in contacts.c]
    row = conn.execute(sa.select(*columns).where(contacts.c.id == contact)).one()._mapping
    values = {k: v for k, v in fields.items() if k in contacts.c}
    if once:
        values = {k: v for k, v in values.items() if row[k] is None}
    merged = dict(row["attributes"] or {})
    email = values.pop("email", None)
    if isinstance(email, str):
        key = normalise_email(email)
        owner = conn.execute(
            sa.select(contacts.c.id).where(contacts.c.email_key == key)
        ).scalar_one_or_none()
        if owner is None or owner == contact:
            values["email"], values["email_key"] = email, key
        else:
            merged["claimed_email"] = email
    for name, value in attributes.items():
        if once and name in merged:
            continue
        if name == "groups" and isinstance(value, dict):
            # Segment's group calls add to the contact's groups.
            groups = dict(merged.get("groups") or {})
            groups.update(value)
            merged["groups"] = groups
        else:
            merged[name] = value
    size = attributes_size(merged)
    if size > MAX_ATTRIBUTES_BYTES and size > attributes_size(row["attributes"] or {}):
        # Nothing of it is applied; the message or event is kept as rejected, saying why.
        raise MappingError(
            f"A contact's custom attributes take at most {MAX_ATTRIBUTES_BYTES} bytes as JSON; "
            f"these traits would take them to {size}. Send fewer or shorter ones.",
            "payload_too_large",
        )
    conn.execute(
        contacts.update()
        .where(contacts.c.id == contact)
        .values(**values, attributes=merged, updated_at=utcnow())
    )
    touch(conn, [contact], FIELDS_CHANGED)


# The status a rejected event or message is kept with, by its error's code; 400 otherwise.
REJECTION_STATUS = {
    "activity_type_not_found": 404,
    "forbidden": 403,
    "rate_limited": 429,
    "payload_too_large": 413,
}


def rejection(event: Collected, error: MappingError) -> Rejected:
    """The rejected activity of an event that cannot be mapped."""
    status = REJECTION_STATUS.get(error.code, 400)
    label = (event.label or "").replace("\x00", "")[:MAX_TYPE_CODE] or None
    return Rejected(status, ErrorDetail(error.code, str(error), error.field), event.payload, label)
