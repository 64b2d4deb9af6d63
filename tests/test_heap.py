"""``waypost serve`` freezes its start-up heap, so that full garbage collections skip it
(docs/performance.md, "The soak")."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from waypost.servers import freeze_startup_heap


class Node:
    """An object in a reference cycle, as much of a server's heap is."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def full_collection_seconds() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def test_a_frozen_heap_is_left_out_of_full_collections(unfrozen: None) -> None:
    heap = [Node() for _ in range(300_000)]
    before = full_collection_seconds()
    frozen = freeze_startup_heap()
    after = full_collection_seconds()
    assert frozen >= len(heap)
    assert gc.get_freeze_count() == frozen
    # The 300,000 objects are no longer walked: a full collection takes a fraction of the time.
    assert after < before / 3
    # Garbage made afterwards is still collected.
    made = Node()
    del made
    assert gc.collect() >= 1
