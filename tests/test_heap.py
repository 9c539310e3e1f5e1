"""`settle_young`: recent cyclic garbage is collected before the rest is frozen out of future
full collections, and it runs at most every SETTLE_EVERY_S."""

from __future__ import annotations

import gc
import weakref

import pytest

from ftrag_desktop.app import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_settle_young_collects_recent_cycles_then_freezes_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "_last_settled", [0.0])
    kept = [Node() for _ in range(1000)]
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    frozen_before = gc.get_freeze_count()
    try:
        assert heap.settle_young("test") is True
        assert gone() is None  # the cycle dropped before was collected, not frozen
        assert gc.get_freeze_count() >= frozen_before + len(kept)
        assert heap.settle_young("again at once") is False  # rate-limited
    finally:
        gc.unfreeze()
