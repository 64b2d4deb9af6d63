"""``waypost serve`` freezes its start-up heap, so that full garbage collections skip it
(docs/performance.md, "The soak")."""

from __future__ import annotations

import gc
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


def test_a_frozen_heap_is_left_out_of_full_collections(unfrozen: None) -> None:
    heap = [Node() for _ in range(10_000)]
    frozen = freeze_startup_heap()
    assert frozen >= len(heap)
    # Frozen objects are in no generation a collection walks (the permanent one is skipped).
    walked = {id(o) for o in gc.get_objects()}
    assert not any(id(node) in walked for node in heap)
    # Garbage made afterwards is still collected.
    made = Node()
    del made
    assert gc.collect() >= 1
