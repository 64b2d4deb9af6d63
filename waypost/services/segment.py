"""The database side of Segment messages: contacts by external id, traits, aliases, drafts.

One transaction per request resolves every message's contact (by ``userId`` and
``anonymousId``, creating contacts as needed), applies identify, group and alias messages,
and creates draft types for unknown events when the channel asks for that, as long as fewer
than ``WAYPOST_MAX_DRAFT_TYPES`` drafts await approval (docs/segment.md#unknown-events). What
it plans to store goes to the group-commit writer like any other activity: the activities of
track, page and screen messages, and the messages that cannot be mapped, as rejected
activities.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from waypost.domain.codenames import derive_code_name
from waypost.domain.collected import split_claims
from waypost.domain.field_values import ORTTO_EMAIL
from waypost.domain.segment import (
    MappingError,
    Message,
    activity_object,
    check_text,
    ident,
    map_traits,
    occurred_at,
    traits_of,
)
from waypost.domain.suppressions import ANONYMOUS_ID, EMAIL, USER_ID, Suppressed
from waypost.error_words import quoted
from waypost.errors import ErrorDetail
from waypost.ids import new_id, utcnow
from waypost.pipeline.catalog import ChannelInfo, Snapshot
from waypost.pipeline.prepare import Rejected
from waypost.records.activity_type_numbers import hold_numbers, issue_number
from waypost.services.collectors import REJECTION_STATUS, SEGMENT_IDS, Resolver, apply_traits
from waypost.store import Store
from waypost.store.schema import activity_types

MAX_EXTERNAL_ID = 200  # contact_external_ids.value
MAX_TYPE_CODE = 200  # rejected_activities.type_code


@dataclass
class Planned:
    """An activity to hand to the writer: its contact and the activity object as JSON; or,
    with ``refused``, the rejected activity to keep instead, its rules unchecked (an unknown
    event for which no draft type could be made)."""

    contact: uuid.UUID
    activity: bytes
    refused: Rejected | None = None


@dataclass
class Drafts:
    """The draft types one request made or found, by event name, and how many draft types
    await approval (None until the request makes its first)."""

    made: dict[str, str] = field(default_factory=dict)
    waiting: int | None = None


@dataclass
class Plan:
    """What one request's messages turned into."""

    activities: list[Planned] = field(default_factory=list)
    # Messages that cannot be mapped, kept as rejected activities of no contact.
    rejected: list[Rejected] = field(default_factory=list)
    drafts_created: bool = False
    # Contacts merged, (source, target), once committed: rate limits follow them.
    merges: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    # Messages naming an erased contact: applied to nothing and stored nowhere.
    erased: int = 0
    # How many contacts the messages created.
    created: int = 0


class SegmentService:
    """Applies Segment messages to contacts and types."""

    def __init__(self, store: Store, max_drafts: int) -> None:
        self.store = store
        # The most draft types awaiting approval; past it, an unknown event makes none.
        self.max_drafts = max_drafts

    def plan(
        self,
        channel: ChannelInfo,
        snapshot: Snapshot,
        messages: list[tuple[Message, bytes]],
        sent_at: str | None,
        received_at: dt.datetime,
        *,
        page: bool = False,
        may_create: int | None = None,
    ) -> Plan:
        """Apply ``messages``. With ``page`` (analytics.js with a publishable key) no draft
        type is made and Ortto's system keys in properties are claims; at most
        ``may_create`` new contacts are created (None: any number), and a message that needs
        one past those is kept as rejected (``rate_limited``). Run again, whole, when a
        concurrent request made a contact's external id (or a draft type) first."""

        def apply(conn: Connection) -> Plan:
            plan = Plan()
            resolver = Resolver(conn, SEGMENT_IDS, channel.id, may_create, page=page)
            drafts = Drafts()
            for message, raw in messages:
                if snapshot.suppressed and names_erased(snapshot.suppressed, message):
                    plan.erased += 1
                    continue
                try:
                    check_text(raw)
                    self._one(
                        conn,
                        resolver,
                        channel,
                        snapshot,
                        drafts,
                        message,
                        sent_at,
                        received_at,
                        plan,
                        page,
                    )
                except MappingError as exc:
                    plan.rejected.append(_rejected(message, raw, exc))
            plan.merges, plan.created = resolver.merges, resolver.created
            return plan

        return self.store.write_retrying(apply, unique=True)

    def _one(
        self,
        conn: Connection,
        resolver: Resolver,
        channel: ChannelInfo,
        snapshot: Snapshot,
        drafts: Drafts,
        message: Message,
        sent_at: str | None,
        received_at: dt.datetime,
        plan: Plan,
        page: bool,
    ) -> None:
        kind = message.type
        user_id = _external_id(message.user_id, "userId")
        anonymous_id = _external_id(message.anonymous_id, "anonymousId")
        if kind == "alias":
            previous = _external_id(message.previous_id, "previousId")
            if previous is None or user_id is None:
                raise MappingError("alias needs previousId and userId.", "missing_field")
            resolver.alias(previous, user_id)
            return
        if user_id is None and anonymous_id is None:
            raise MappingError("A message needs userId or anonymousId.", "missing_field", "userId")
        contact = resolver.by_ids(user_id, anonymous_id, merge=kind == "identify")
        if kind == "identify":
            fields, attributes = map_traits(traits_of(message))
            apply_traits(conn, contact, fields, attributes)
            return
        if kind == "group":
            group_id = ident(message.group_id)
            if group_id is None:
                raise MappingError("group needs groupId.", "missing_field", "groupId")
            apply_traits(conn, contact, {}, {"groups": {group_id: traits_of(message)}})
            return
        when = occurred_at(message, sent_at, received_at)
        no_draft = False  # an unknown event for which no draft type could be made
        if kind == "track":
            event = (message.event or "").strip()
            if not event:
                raise MappingError("track needs an event name.", "missing_field", "event")
            found = self._type_for(conn, channel, snapshot, drafts, event, plan, page)
            code, no_draft = (event, True) if found is None else (found, False)
            properties = message.properties or None
            if page and properties:
                # A page's str::email names the visitor: a claim, never a move (see
                # waypost.domain.collected.split_claims).
                properties, claimed = split_claims(properties)
                if claimed:
                    apply_traits(conn, contact, *map_traits(claimed))
            activity = activity_object(message, code, when, properties or None)
        elif kind in ("page", "screen"):
            code = "pagevisit"
            if kind == "screen" and ("screen" in snapshot.types or "screen" in snapshot.aliases):
                info = snapshot.types.get("screen") or snapshot.aliases["screen"]
                code = info.code_name
            # A screen without a URL becomes a page visit without one, which the activity
            # rules reject (kept, replayable once a "screen" type exists).
            activity = activity_object(message, code, when, None)
        else:
            raise MappingError(
                f"Unknown message type {quoted(str(kind))}; use track, identify, page, screen, "
                "group or alias.",
                field="type",
            )
        encoded = msgspec.json.encode(activity)
        refused = self._no_draft(encoded, code, drafts) if no_draft else None
        plan.activities.append(Planned(contact, encoded, refused))

    def _type_for(
        self,
        conn: Connection,
        channel: ChannelInfo,
        snapshot: Snapshot,
        drafts: Drafts,
        event: str,
        plan: Plan,
        page: bool,
    ) -> str | None:
        """The code name of the event's type; None when there is none and no draft type may
        be made for it, past the limit of those awaiting approval."""
        found = snapshot.types.get(event) or snapshot.aliases.get(event)
        if found is not None:
            return found.code_name
        # A publishable key is public: pages make no types.
        if channel.unknown_events != "draft" or page:
            return event  # rejected by the activity rules as activity_type_not_found
        if event in drafts.made:
            return drafts.made[event]
        existing = conn.execute(
            sa.select(activity_types.c.code_name, activity_types.c.aliases)
        ).all()
        for row in existing:
            if event in (row.aliases or []):
                drafts.made[event] = str(row.code_name)
                return drafts.made[event]
        if not self._room_for_draft(conn, drafts):
            return None
        taken = {row.code_name for row in existing}
        names = set(conn.execute(sa.select(activity_types.c.name)).scalars())
        code = derive_code_name(event, taken)
        name = event[:200]
        n = 1
        while name in names:
            n += 1
            name = f"{event[:190]} ({n})"
        now = utcnow()
        conn.execute(
            activity_types.insert().values(
                id=new_id(),
                code_name=code,
                name=name,
                description=f"Created from the Segment event {quoted(event)}; approve or edit it.",
                enabled=True,
                client_side=False,
                builtin=False,
                aliases=[event],
                rate_limits=None,
                retention_days=None,
                unknown_fields="accept_and_flag",
                draft=True,
                number=issue_number(conn),
                created_at=now,
                updated_at=now,
            )
        )
        drafts.made[event] = code
        drafts.waiting = (drafts.waiting or 0) + 1
        plan.drafts_created = True
        return code

    def _room_for_draft(self, conn: Connection, drafts: Drafts) -> bool:
        """Whether fewer draft types than the limit await approval. Counted once a request,
        then kept as it makes them: counted again once this transaction alone makes types
        (another request's drafts made meanwhile are counted), and without waiting for that
        when the limit is reached already (an approval frees room for later requests)."""
        if drafts.waiting is None:
            drafts.waiting = _waiting(conn)
            if drafts.waiting >= self.max_drafts:
                return False
            hold_numbers(conn)
            drafts.waiting = _waiting(conn)
        return drafts.waiting < self.max_drafts

    def _no_draft(self, activity: bytes, event: str, drafts: Drafts) -> Rejected:
        """The rejected activity of an unknown event past the limit of draft types: kept under
        its contact, to replay once a type has its name (docs/segment.md#unknown-events)."""
        message = (
            f"No activity type has the code name or alias {quoted(event)}, and no draft type "
            f"was made for it: {drafts.waiting} draft types await approval, the most "
            f"WAYPOST_MAX_DRAFT_TYPES ({self.max_drafts}) allows. Approve or delete draft "
            "types so that new events make drafts again; give a type this name as an alias to "
            "replay this one."
        )
        code = "activity_type_not_found"
        error = ErrorDetail(code, message, "type")
        return Rejected(REJECTION_STATUS[code], error, activity, event[:MAX_TYPE_CODE])


def _waiting(conn: Connection) -> int:
    """How many draft types await approval, in the whole workspace."""
    count = sa.select(sa.func.count()).select_from(activity_types)
    return int(conn.execute(count.where(activity_types.c.draft == sa.true())).scalar_one())


def names_erased(suppressed: Suppressed, message: Message) -> bool:
    """Whether the message names an erased contact: by its userId, anonymousId or previousId
    (an alias's, which may be either), or by an email in its traits or, as Ortto's
    ``str::email``, in its properties (a page's claim, which would set the email; in a
    message of any type, since one that cannot be mapped is kept with them)."""
    user_id, anonymous_id = ident(message.user_id), ident(message.anonymous_id)
    previous = ident(message.previous_id)
    emails = [traits_of(message).get("email")]
    if message.properties:
        emails.append(message.properties.get(ORTTO_EMAIL))
    return suppressed.any_of(
        [
            (USER_ID, user_id),
            (ANONYMOUS_ID, anonymous_id),
            (USER_ID, previous),
            (ANONYMOUS_ID, previous),
            *((EMAIL, email.strip()) for email in emails if isinstance(email, str)),
        ]
    )


def _external_id(value: str | int | None, name: str) -> str | None:
    # External ids are looked up whole, so one longer than the column could never be found
    # again (and PostgreSQL refuses it): such a message is kept as rejected.
    text = ident(value)
    if text is not None and len(text) > MAX_EXTERNAL_ID:
        raise MappingError(f"{name} is at most {MAX_EXTERNAL_ID} characters.", field=name)
    return text


def _rejected(message: Message, raw: bytes, error: MappingError) -> Rejected:
    status = REJECTION_STATUS.get(error.code, 400)
    type_code = (message.event or message.type or "").replace("\x00", "")
    # The payload as these rows have always held it: the message re-encoded the way
    # SQLAlchemy's JSON column encodes, not the bytes as sent.
    payload = json.dumps(msgspec.json.decode(raw)).encode()
    return Rejected(
        status,
        ErrorDetail(error.code, str(error), error.field),
        payload,
        type_code[:MAX_TYPE_CODE] if type_code else None,
    )
