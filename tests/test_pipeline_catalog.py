"""The ingest catalog follows every change the services commit, at once, whichever way it came
(service call, admin API, admin UI form, CLI), and nothing else makes it reload: not a read,
not a change that failed. The periodic reload is set far away here so that only the change
feed can refresh it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from waypost import cli, console
from waypost.domain.keys import hash_key
from waypost.domain.suppressions import CONTACT, EMAIL
from waypost.hub import Hub
from waypost.pipeline.catalog import Catalog, Snapshot
from waypost.records.contacts import insert_contact
from waypost.services.activity_types import ActivityTypeCreate, ActivityTypeUpdate
from waypost.services.channels import Channel, ChannelCreate, ChannelUpdate
from waypost.services.consents import ConsentCreate, ConsentText, ConsentUpdate
from waypost.services.erasure import Actor
from waypost.services.groups import GroupCreate
from waypost.services.keys import CreatedKey, KeyCreate, KeyUpdate
from waypost.services.suppressions import SuppressionQuery
from waypost.settings import Settings
from waypost.store import Change, StorageUnavailable

if TYPE_CHECKING:
    from tests.admin_support import UI
    from tests.conftest import Tracker

PAGE_VISIT = [{"type": "pagevisit", "url": "https://example.com/"}]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(catalog_ttl_seconds=3600)


@dataclass(frozen=True)
class Case:
    """Something to change through a service, and how the catalog shows it changed."""

    change: Callable[[Hub, Channel], Any]
    shows: Callable[[Snapshot, Any], bool]


def _new_key(hub: Hub, channel: Channel) -> CreatedKey:
    return hub.keys.create(KeyCreate(access="tracking", channel=channel.id, name="k"))


def _deleted_key(hub: Hub, channel: Channel) -> uuid.UUID:
    key_id = _new_key(hub, channel).id
    hub.keys.delete(key_id)
    return key_id


def _new_type(hub: Hub, channel: Channel) -> str:
    return hub.types.create(ActivityTypeCreate(name="Quote requested")).code_name


def _texts(text: str) -> dict[str, ConsentText]:
    return {"en": ConsentText(short_text=text, full_text=text)}


CASES = {
    "channel created": Case(
        lambda hub, _: hub.channels.create(
            ChannelCreate(name="New", kind="website", allowed_origins=["https://new.example"])
        ),
        lambda snap, _: "https://new.example" in snap.all_origins,
    ),
    "channel changed": Case(
        lambda hub, channel: hub.channels.update(
            channel.id, ChannelUpdate(allowed_origins=["https://moved.example"])
        ),
        lambda snap, channel: "https://moved.example" in snap.channels[channel.id].allowed_origins,
    ),
    "channel deleted": Case(
        lambda hub, channel: hub.channels.delete(channel.id),
        lambda snap, _: not snap.channels,
    ),
    "key created": Case(
        _new_key,
        lambda snap, key: hash_key(key.key) in snap.keys,
    ),
    "key disabled": Case(
        lambda hub, channel: hub.keys.update(_new_key(hub, channel).id, KeyUpdate(enabled=False)),
        lambda snap, key: not next(k for k in snap.keys.values() if k.id == key.id).enabled,
    ),
    "key deleted": Case(
        _deleted_key,
        lambda snap, key_id: all(k.id != key_id for k in snap.keys.values()),
    ),
    "type created": Case(_new_type, lambda snap, code: code in snap.types),
    "type disabled": Case(
        lambda hub, _: hub.types.set_enabled(hub.types.get_by_code("click").id, False),
        lambda snap, _: not snap.types["click"].enabled,
    ),
    "type changed": Case(
        lambda hub, _: hub.types.update(
            hub.types.get_by_code("click").id, ActivityTypeUpdate(aliases=["Button Clicked"])
        ),
        lambda snap, _: snap.aliases["Button Clicked"].code_name == "click",
    ),
    "consent created": Case(
        lambda hub, _: hub.consents.create(ConsentCreate("newsletter", "Newsletter")),
        lambda snap, _: "newsletter" in snap.consents,
    ),
    "consent text changed": Case(
        lambda hub, _: hub.consents.update(
            hub.consents.create(ConsentCreate("terms", "Terms", _texts("v1"))).id,
            ConsentUpdate(texts=_texts("v2")),
        ),
        lambda snap, _: snap.consents["terms"][1] == 2,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_change_through_a_service_is_in_the_catalog_at_once(
    hub: Hub, make_channel: Callable[..., Channel], case: Case
) -> None:
    channel = make_channel()
    before = hub.catalog.get()
    assert hub.catalog.fresh() is before
    result = case.change(hub, channel)
    assert hub.catalog.fresh() is None
    assert case.shows(hub.catalog.get(), result)


def test_a_type_deleted_through_its_service_leaves_the_catalog_at_once(hub: Hub) -> None:
    created = hub.types.create(ActivityTypeCreate(name="Short lived"))
    assert created.code_name in hub.catalog.get().types
    hub.types.delete(created.id)
    assert created.code_name not in hub.catalog.get().types


def test_a_consent_deleted_through_its_service_leaves_the_catalog_at_once(hub: Hub) -> None:
    created = hub.consents.create(ConsentCreate("short_lived", "Short lived"))
    assert "short_lived" in hub.catalog.get().consents
    hub.consents.delete(created.id)
    assert "short_lived" not in hub.catalog.get().consents


def _key_id(hub: Hub, secret: str) -> uuid.UUID:
    return hub.catalog.get().keys[hash_key(secret)].id


def test_a_key_disabled_through_the_admin_api_is_refused_at_once(
    client: TestClient, hub: Hub, tracker: Tracker, admin_headers: dict[str, str]
) -> None:
    contact = tracker.new_contact()
    assert tracker.post(PAGE_VISIT, contact).status_code == 207
    key_id = _key_id(hub, tracker.key)
    answer = client.patch(f"/api/keys/{key_id}", json={"enabled": False}, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert tracker.post(PAGE_VISIT, contact).status_code == 403


def test_a_key_disabled_through_an_admin_ui_form_is_refused_at_once(
    hub: Hub, tracker: Tracker, admin_ui: UI
) -> None:
    contact = tracker.new_contact()
    assert tracker.post(PAGE_VISIT, contact).status_code == 207
    answer = admin_ui.post(f"/admin/keys/{_key_id(hub, tracker.key)}/disable")
    assert answer.status_code == 303, answer.text
    assert tracker.post(PAGE_VISIT, contact).status_code == 403


def test_a_key_disabled_through_the_cli_is_in_that_process_catalog_at_once(
    database_url: str,
    make_channel: Callable[..., Channel],
    make_key: Callable[..., CreatedKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = make_key("tracking", make_channel().id)
    seen: list[object] = []

    class WatchedHub(Hub):
        def __init__(self, settings: Settings, *args: Any) -> None:
            super().__init__(settings, *args)
            self.catalog.get()  # a copy from before the command's change

        def close(self) -> None:
            seen.append(self.catalog.fresh())
            seen.append(self.catalog.get().keys[hash_key(key.key)].enabled)
            super().close()

    monkeypatch.setattr(console, "Hub", WatchedHub)
    runner = CliRunner(
        env={"WAYPOST_DATABASE_URL": database_url, "WAYPOST_CATALOG_TTL_SECONDS": "3600"}
    )
    result = runner.invoke(cli.main, ["keys", "disable", str(key.id)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [None, False]


def test_reads_never_reload_the_catalog(
    client: TestClient, hub: Hub, admin_headers: dict[str, str], admin_ui: UI, tracker: Tracker
) -> None:
    before = hub.catalog.get()
    for path in ("/api/keys", "/api/channels", "/api/activity-types", "/api/consents"):
        assert client.get(path, headers=admin_headers).status_code == 200
    for page in ("/admin/keys", "/admin/channels", "/admin/types", "/admin/consents"):
        assert admin_ui.get(page).status_code == 200
    assert hub.catalog.fresh() is before


def test_a_change_that_failed_keeps_the_catalog(
    client: TestClient,
    hub: Hub,
    admin_headers: dict[str, str],
    admin_ui: UI,
    make_channel: Callable[..., Channel],
) -> None:
    taken = make_channel(name="Taken")
    make_channel(name="Other")
    before = hub.catalog.get()
    duplicate = client.post(
        "/api/channels", json={"name": "Taken", "kind": "headless"}, headers=admin_headers
    )
    assert duplicate.status_code == 409
    renamed = client.patch(
        f"/api/channels/{taken.id}", json={"name": "Other"}, headers=admin_headers
    )
    assert renamed.status_code == 409
    unknown = client.patch(
        f"/api/keys/{uuid.uuid4()}", json={"enabled": False}, headers=admin_headers
    )
    assert unknown.status_code == 404
    assert admin_ui.post(f"/admin/keys/{uuid.uuid4()}/disable").status_code == 404
    assert hub.catalog.fresh() is before


def test_a_rolled_back_change_publishes_nothing(hub: Hub) -> None:
    # As the first run's bootstrap does: several services' changes in one transaction.
    seen: list[Change] = []
    hub.store.changes.subscribe(seen.append)
    before = hub.catalog.get()

    def create_then_fail() -> None:
        with hub.store.write() as conn:
            channel = hub.channels.create_in(conn, ChannelCreate(name="Never", kind="headless"))
            hub.keys.create_in(conn, KeyCreate(access="tracking", channel=channel.id, name="k"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert seen == []
    assert hub.catalog.fresh() is before
    assert hub.catalog.get().channels == {}


def test_group_changes_reach_the_group_plans_not_the_catalog(hub: Hub) -> None:
    seen: list[Change] = []
    hub.store.changes.subscribe(seen.append)
    before = hub.catalog.get()
    group = hub.groups.create(
        GroupCreate(name="Everyone", condition={"contact": {"field": "city", "equals": "Brno"}})
    )
    assert seen == [Change("group", group.id)]
    assert hub.catalog.fresh() is before


def test_suppressions_reach_the_catalog_at_once_and_leave_it_when_lifted(hub: Hub) -> None:
    assert not hub.catalog.get().suppressed
    with hub.store.write() as conn:
        contact = insert_contact(conn, email="Gone@Example.com")
    hub.erasure.erase(contact, Actor("key", None))
    suppressed = hub.catalog.get().suppressed
    assert suppressed.names(EMAIL, " gone@EXAMPLE.com")
    assert suppressed.names(CONTACT, contact)
    assert not suppressed.names(EMAIL, "other@example.com")
    [email] = hub.suppressions.list_page(SuppressionQuery(kind="email")).data
    hub.suppressions.lift(email.id)
    assert not hub.catalog.get().suppressed.names(EMAIL, "gone@example.com")
    assert hub.catalog.get().suppressed.names(CONTACT, contact)


def test_suppressions_are_read_again_only_when_they_changed(hub: Hub) -> None:
    with hub.store.write() as conn:
        contact = insert_contact(conn, email="kept@example.com")
        other = insert_contact(conn)
    hub.erasure.erase(contact, Actor("key", None))
    first = hub.catalog.get().suppressed
    hub.catalog.invalidate()
    assert hub.catalog.get().suppressed is first
    hub.erasure.erase(other, Actor("key", None))
    second = hub.catalog.get().suppressed
    assert second is not first
    assert second.names(CONTACT, other)


@dataclass
class SlowLoads:
    """The catalog's loads, each taking 0.2 s, failing as an outage while ``down``."""

    count: int = 0
    down: bool = False
    started: threading.Event = field(default_factory=threading.Event)


def _slow_loads(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> SlowLoads:
    load = catalog._load
    loads = SlowLoads()

    def slow_load() -> Snapshot:
        loads.count += 1
        loads.started.set()
        time.sleep(0.2)
        if loads.down:
            raise StorageUnavailable("the database cannot be reached")
        return load()

    monkeypatch.setattr(catalog, "_load", slow_load)
    catalog.invalidate()
    return loads


def _while_one_loads(get: Callable[[], None], callers: int, loads: SlowLoads) -> None:
    """``callers`` calls of ``get`` at once: the first starts a load, the others come
    while it runs."""
    threads = [threading.Thread(target=get) for _ in range(callers)]
    threads[0].start()
    assert loads.started.wait(5)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(10)


def test_callers_that_find_the_catalog_stale_together_load_it_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = hub.catalog
    loads = _slow_loads(catalog, monkeypatch)
    got: list[Snapshot] = []

    def get() -> None:
        got.append(catalog.get())

    _while_one_loads(get, 8, loads)
    assert loads.count == 1
    assert len(got) == 8
    assert all(one is got[0] for one in got)
    # A change made while it loads is not hidden by that load: the next use loads again.
    loads.started.clear()
    catalog.invalidate()
    first = threading.Thread(target=get)
    first.start()
    assert loads.started.wait(5)
    catalog.invalidate()
    first.join(10)
    assert catalog.fresh() is None
    catalog.get()
    assert loads.count == 3


def test_callers_waiting_on_a_load_that_found_the_database_down_fail_with_it(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = hub.catalog
    loads = _slow_loads(catalog, monkeypatch)
    loads.down = True
    failures: list[str] = []

    def get() -> None:
        try:
            catalog.get()
        except StorageUnavailable as exc:
            failures.append(str(exc))

    _while_one_loads(get, 6, loads)
    # One load found it down, and every caller that waited for it failed with it at once
    # (not each after a failed load of its own).
    assert loads.count == 1
    assert failures == ["the database cannot be reached"] * 6
    # The next call tries again.
    loads.down = False
    assert catalog.get() is catalog.fresh()
    assert loads.count == 2
