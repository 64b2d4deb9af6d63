"""First runs: several nodes starting at once on one empty database make one starting set."""

from __future__ import annotations

import threading
from collections.abc import Callable

import sqlalchemy as sa

from waypost.bootstrap import FirstAdmin, FirstRun, bootstrap, bootstrap_admin
from waypost.hub import Hub
from waypost.settings import Settings
from waypost.store.schema import api_keys, channels


def _race(work: Callable[[], object], nodes: int) -> list[object]:
    results: list[object] = []
    errors: list[BaseException] = []
    start = threading.Barrier(nodes)

    def node() -> None:
        start.wait()
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_nodes_starting_together_bootstrap_once(settings: Settings, hub: Hub) -> None:
    hubs = [Hub(settings) for _ in range(4)]
    nodes = list(hubs)
    try:
        runs = _race(lambda: bootstrap(nodes.pop()), 4)
        assert sum(isinstance(r, FirstRun) for r in runs) == 1
        with hub.store.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(channels)).scalar() == 2
            assert conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar() == 3
    finally:
        for node in hubs:
            node.close()


def test_nodes_starting_together_make_one_first_admin(settings: Settings, hub: Hub) -> None:
    hubs = [Hub(settings) for _ in range(4)]
    nodes = list(hubs)
    try:
        admins = _race(lambda: bootstrap_admin(nodes.pop()), 4)
        assert sum(isinstance(a, FirstAdmin) for a in admins) == 1
        assert [u.email for u in hub.users.list()] == ["admin@localhost"]
    finally:
        for node in hubs:
            node.close()
