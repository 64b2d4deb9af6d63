"""The playbook service on both databases: definitions saved, read, changed, enabled, disabled
and deleted; every reference checked against what exists (a 400 naming the part at fault);
the trigger cache following changes; runs listed newest first."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from starlette.testclient import TestClient

from waypost.errors import ApiError
from waypost.hub import Hub
from waypost.services.activity_types import ActivityType
from waypost.services.playbooks import (
    ListQuery,
    PlaybookCreate,
    PlaybookUpdate,
    RunQuery,
)

if TYPE_CHECKING:
    from tests.conftest import Tracker
    from tests.group_support import Groups, make_groups
    from tests.playbook_support import LOANS, insert_endpoint, loan_trigger, runs, webhook
else:
    from group_support import Groups, make_groups
    from playbook_support import LOANS, insert_endpoint, loan_trigger, runs, webhook


@pytest.fixture
def groups(client: TestClient, admin_headers: dict[str, str], tracker: Tracker) -> Groups:
    return make_groups(client, admin_headers, tracker)


@pytest.fixture
def loans(make_type: Callable[..., ActivityType]) -> ActivityType:
    return make_type(
        name="Loan calculator usage",
        code_name=LOANS,
        fields=[{"name": "amount", "type": "decimal"}, {"name": "product", "type": "text"}],
    )


@pytest.fixture
def endpoint(hub: Hub) -> uuid.UUID:
    return insert_endpoint(hub)


def body(endpoint: uuid.UUID, **fields: Any) -> PlaybookCreate:
    fields.setdefault("name", f"Playbook {uuid.uuid4().hex[:8]}")
    fields.setdefault("trigger", loan_trigger())
    fields.setdefault("cadence", {"mode": "every_time"})
    fields.setdefault("actions", webhook(endpoint))
    return msgspec.convert(fields, PlaybookCreate)


def refused(work: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        work()
    return caught.value


# -- definitions -------------------------------------------------------------------------------


def test_create_get_list_and_delete(hub: Hub, loans: ActivityType, endpoint: uuid.UUID) -> None:
    created = hub.playbooks.create(
        body(endpoint, name="Big loans", description="Calls the CRM", enabled=False)
    )
    assert (created.name, created.description, created.enabled) == (
        "Big loans",
        "Calls the CRM",
        False,
    )
    assert msgspec.to_builtins(created.trigger) == loan_trigger()
    assert msgspec.to_builtins(created.cadence) == {"mode": "every_time"}
    assert [a.endpoint for a in created.actions] == [endpoint]
    assert created.audience is None
    assert created.created_at == created.updated_at
    assert hub.playbooks.get(created.id) == created
    other = hub.playbooks.create(body(endpoint))
    first = hub.playbooks.list_page(ListQuery(limit=1))
    assert [p.id for p in first.data] == [created.id]
    assert first.next is not None
    second = hub.playbooks.list_page(ListQuery(limit=1, cursor=first.next))
    assert ([p.id for p in second.data], second.next) == ([other.id], None)
    hub.playbooks.delete(created.id)
    assert refused(lambda: hub.playbooks.get(created.id)).status == 404
    assert refused(lambda: hub.playbooks.delete(created.id)).status == 404


def test_a_name_is_taken_once(hub: Hub, loans: ActivityType, endpoint: uuid.UUID) -> None:
    hub.playbooks.create(body(endpoint, name="Big loans"))
    other = hub.playbooks.create(body(endpoint, name="Small loans"))
    error = refused(lambda: hub.playbooks.create(body(endpoint, name="Big loans")))
    assert (error.status, error.code, error.field) == (409, "conflict", "name")
    error = refused(lambda: hub.playbooks.update(other.id, PlaybookUpdate(name="Big loans")))
    assert (error.status, error.code, error.field) == (409, "conflict", "name")


def test_update_changes_what_is_given_and_null_audience_is_everyone(
    hub: Hub, loans: ActivityType, endpoint: uuid.UUID, groups: Groups
) -> None:
    second = insert_endpoint(hub)
    groups.create_consent("Newsletter")
    created = hub.playbooks.create(body(endpoint, audience={"consent": "Newsletter"}))
    changed = hub.playbooks.update(
        created.id,
        msgspec.convert(
            {
                "description": "now",
                "cadence": {"mode": "once_per", "days": 30},
                "actions": webhook(endpoint) + webhook(second),
            },
            PlaybookUpdate,
        ),
    )
    assert (changed.name, changed.description) == (created.name, "now")
    assert msgspec.to_builtins(changed.cadence) == {"mode": "once_per", "days": 30}
    assert [a.endpoint for a in changed.actions] == [endpoint, second]
    assert changed.audience == {"consent": "Newsletter"}
    cleared = hub.playbooks.update(created.id, msgspec.convert({"audience": None}, PlaybookUpdate))
    assert cleared.audience is None
    assert hub.playbooks.disable(created.id).enabled is False
    assert hub.playbooks.enable(created.id).enabled is True


def test_update_of_a_missing_playbook_is_a_404(hub: Hub) -> None:
    error = refused(lambda: hub.playbooks.update(uuid.uuid4(), PlaybookUpdate(enabled=False)))
    assert (error.status, error.code) == (404, "not_found")


# -- references --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger": {"event": "activity", "type": "nope"}}, "trigger.type"),
        ({"trigger": loan_trigger(colour={"eq": "red"})}, "trigger.fields.colour"),
        ({"trigger": loan_trigger(amount={"gte": "a lot"})}, "trigger.fields.amount"),
        ({"trigger": loan_trigger(amount={"contains": "1"})}, "trigger.fields.amount"),
        ({"trigger": loan_trigger(product={"gt": "a"})}, "trigger.fields.product"),
        ({"trigger": {"event": "group_entered", "group": str(uuid.uuid4())}}, "trigger.group"),
        ({"trigger": {"event": "group_exited", "group": str(uuid.uuid4())}}, "trigger.group"),
        ({"trigger": {"event": "consent_agreed", "consent": "nope"}}, "trigger.consent"),
        ({"trigger": {"event": "consent_revoked", "consent": "nope"}}, "trigger.consent"),
        ({"audience": {"everyone": True}}, "audience.everyone"),
        ({"audience": {"all": [{"activity": {"type": "nope"}}]}}, "audience.all[0].activity.type"),
        ({"audience": {"any": [{"group": str(uuid.uuid4())}]}}, "audience.any[0].group"),
        ({"audience": {"not": {"consent": "nope"}}}, "audience.not.consent"),
        (
            {"audience": {"activity": {"type": LOANS, "fields": {"colour": {"eq": "red"}}}}},
            "audience.activity.fields.colour",
        ),
        ({"actions": webhook(uuid.uuid4())}, "actions[0].endpoint"),
    ],
)
def test_what_does_not_exist_is_a_422_naming_it(
    hub: Hub, loans: ActivityType, endpoint: uuid.UUID, fields: dict[str, Any], field: str
) -> None:
    error = refused(lambda: hub.playbooks.create(body(endpoint, **fields)))
    assert (error.status, error.code, error.field) == (400, "invalid_field", field)
    assert hub.playbooks.list_page(ListQuery()).data == []


def test_an_endpoint_twice_is_a_422_naming_the_second(
    hub: Hub, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    error = refused(lambda: hub.playbooks.create(body(endpoint, actions=webhook(endpoint) * 2)))
    assert (error.status, error.field) == (400, "actions[1].endpoint")


def test_a_change_is_checked_as_a_whole(hub: Hub, loans: ActivityType, endpoint: uuid.UUID) -> None:
    created = hub.playbooks.create(body(endpoint))
    change = msgspec.convert({"actions": webhook(uuid.uuid4())}, PlaybookUpdate)
    error = refused(lambda: hub.playbooks.update(created.id, change))
    assert (error.status, error.field) == (400, "actions[0].endpoint")
    change = msgspec.convert({"audience": {"group": str(uuid.uuid4())}}, PlaybookUpdate)
    assert refused(lambda: hub.playbooks.update(created.id, change)).field == "audience.group"
    assert hub.playbooks.get(created.id) == created


def test_a_group_a_playbook_uses_cannot_be_deleted(
    hub: Hub, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    trigger_group = groups.create({"activity": {"type": LOANS}})
    audience_group = groups.create({"activity": {"type": "click"}})
    book = hub.playbooks.create(
        body(
            endpoint,
            name="Uses both",
            trigger={"event": "group_entered", "group": trigger_group["id"]},
            audience={"not": {"group": audience_group["id"]}},
        )
    )
    for group in (trigger_group, audience_group):
        group_id = uuid.UUID(group["id"])
        error = refused(lambda: hub.groups.delete(group_id))  # noqa: B023
        assert (error.status, error.code) == (409, "conflict")
        assert "Uses both" in error.message
    hub.playbooks.delete(book.id)
    hub.groups.delete(uuid.UUID(audience_group["id"]))


# -- the trigger cache follows changes ---------------------------------------------------------


def test_the_triggers_follow_each_change_at_once(
    hub: Hub,
    groups: Groups,
    loans: ActivityType,
    endpoint: uuid.UUID,
    make_type: Callable[..., ActivityType],
) -> None:
    make_type(name="Quote", code_name="custom_quote")
    contact = groups.new_contact()
    groups.log(contact, {"type": LOANS})  # the cache is loaded: no playbook
    created = hub.playbooks.create(body(endpoint))
    groups.log(contact, {"type": LOANS})
    assert len(runs(hub)) == 1
    hub.playbooks.update(
        created.id,
        msgspec.convert({"trigger": {"event": "activity", "type": "custom_quote"}}, PlaybookUpdate),
    )
    groups.log(contact, {"type": LOANS})
    quote = groups.log(contact, {"type": "custom_quote"})
    assert [r["subject"] for r in runs(hub)][1:] == quote
    hub.playbooks.delete(created.id)
    groups.log(contact, {"type": "custom_quote"})
    assert runs(hub) == []  # the runs went with the playbook


# -- runs --------------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_per_playbook_and_per_contact(
    hub: Hub, groups: Groups, loans: ActivityType, endpoint: uuid.UUID
) -> None:
    first = hub.playbooks.create(body(endpoint))
    second = hub.playbooks.create(body(endpoint))
    ann, bob = groups.new_contact(), groups.new_contact()
    groups.log(ann, {"type": LOANS})
    groups.log(bob, {"type": LOANS})
    groups.log(ann, {"type": LOANS})
    mine = hub.playbooks.runs(first.id, RunQuery())
    assert len(mine.data) == 3
    assert mine.next is None
    assert [r.contact for r in mine.data] == [uuid.UUID(c) for c in (ann, bob, ann)]
    assert [r.at for r in mine.data] == sorted((r.at for r in mine.data), reverse=True)
    assert {r.playbook for r in mine.data} == {first.id}
    assert {r.event for r in mine.data} == {"activity"}
    pages, cursor = [], None
    while True:
        page = hub.playbooks.contact_runs(uuid.UUID(ann), RunQuery(limit=1, cursor=cursor))
        pages += page.data
        if (cursor := page.next) is None:
            break
    assert len(pages) == 4
    assert {r.playbook for r in pages} == {first.id, second.id}
    assert {r.contact for r in pages} == {uuid.UUID(ann)}
    assert len({r.id for r in pages}) == 4
    assert hub.playbooks.run_counts() == {first.id: 3, second.id: 3}


def test_runs_of_what_does_not_exist_are_a_404(hub: Hub) -> None:
    assert refused(lambda: hub.playbooks.runs(uuid.uuid4(), RunQuery())).status == 404
    error = refused(lambda: hub.playbooks.contact_runs(uuid.uuid4(), RunQuery()))
    assert (error.status, error.code) == (404, "contact_not_found")
