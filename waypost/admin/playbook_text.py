"""A playbook in words, for its pages: "When a contact performs Loan calculator usage with
amount ≥ 10000", "At most once per contact in 7 days", with types, groups and consents by
their names (the names of waypost/admin/condition_text.py)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from waypost.admin.condition_text import FIELD_OPS, Names
from waypost.domain.playbooks import (
    ActivityTrigger,
    Cadence,
    ConsentAgreedTrigger,
    ConsentRevokedTrigger,
    EveryTime,
    GroupEnteredTrigger,
    GroupExitedTrigger,
    Once,
    Trigger,
)

EVENT_LABELS = {
    "activity": "A contact performs an activity",
    "group_entered": "A contact enters a contact group",
    "group_exited": "A contact leaves a contact group",
    "consent_agreed": "A contact agrees to a consent",
    "consent_revoked": "A contact revokes a consent",
}
CADENCE_LABELS = {
    "every_time": "Every time the trigger fires",
    "once": "Once per contact, ever",
    "once_per": "At most once per contact in a number of days",
}
RUN_EVENTS = {
    "activity": "Activity",
    "group_entered": "Entered group",
    "group_exited": "Left group",
    "consent_agreed": "Agreed",
    "consent_revoked": "Revoked",
}


def trigger_text(trigger: Trigger, names: Names) -> str:
    """When the playbook fires, in a sentence."""
    if isinstance(trigger, ActivityTrigger):
        what = names.types.get(trigger.type, trigger.type)
        filters = [
            f"{name} {FIELD_OPS.get(op, op)} {value}"
            for name, ops in (trigger.fields or {}).items()
            for op, value in ops.items()
        ]
        where = f" with {' and '.join(filters)}" if filters else ""
        return f"When a contact performs {what}{where}"
    if isinstance(trigger, GroupEnteredTrigger | GroupExitedTrigger):
        group = names.groups.get(str(trigger.group), "a group that no longer exists")
        verb = "enters" if isinstance(trigger, GroupEnteredTrigger) else "leaves"
        return f"When a contact {verb} {group}"
    assert isinstance(trigger, ConsentAgreedTrigger | ConsentRevokedTrigger)
    consent = names.consents.get(trigger.consent, trigger.consent)
    verb = "agrees to" if isinstance(trigger, ConsentAgreedTrigger) else "revokes"
    return f"When a contact {verb} {consent}"


def cadence_text(cadence: Cadence) -> str:
    """How often the playbook may run for one contact."""
    if isinstance(cadence, EveryTime):
        return "Every time"
    if isinstance(cadence, Once):
        return "Once per contact"
    if cadence.days == 1:
        return "At most once per contact per day"
    return f"At most once per contact in {cadence.days:,} days"


def subject_text(event: str, subject: str | None, names: Names) -> str:
    """What a run fired on: the activity's id, the group's or the consent's name."""
    if subject is None:
        return ""
    if event in ("group_entered", "group_exited"):
        return names.groups.get(subject, subject)
    if event in ("consent_agreed", "consent_revoked"):
        return names.consents.get(subject, subject)
    return subject


def endpoint_labels(choices: Mapping[uuid.UUID, str], endpoints: list[uuid.UUID]) -> list[str]:
    """The URLs of the endpoints a playbook calls (an endpoint deleted since: its id)."""
    return [choices.get(e, f"{e} (deleted)") for e in endpoints]
