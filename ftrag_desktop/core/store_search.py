"""What a `Store` remembers between searches, so that a search reads only what it searches.

Every search needs the active chunk table (from ``meta``), whether that table has vectors, and
its vector index (if any).  Reading ``meta`` takes several milliseconds, and asking whether any
row has a vector scans the vector column (about 90 ms at 100k rows); a table's version number
costs a fraction of a millisecond.  So the answers are kept and asked again only when the table
they came from has a new version (the vector index: every few seconds, see `ann`).  That holds
across processes too: a reader's connection sees another process's commits at once
(``read_consistency_interval=0``), version numbers included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ftrag_desktop.core import store_ann
from ftrag_desktop.core.store_ann import AnnIndex

__all__ = ["SearchCache"]

TableInfo = tuple[str, str, int]
ANN_RECHECK_S = 5.0


class SearchCache:
    """Answers kept between searches, each tagged with the table version it was read at (or,
    for the vector index, the time it was looked at)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: tuple[int, TableInfo] | None = None
        self._with_vectors: set[str] = set()
        self._ann: dict[str, tuple[float, AnnIndex | None]] = {}  # name -> (looked at, index)
        self._maintained: dict[str, int] = {}  # table -> version last checked for its index

    def active(self, meta_tbl: Any | None, read: Callable[[], TableInfo]) -> TableInfo:
        """The active table per `read()` (which reads ``meta``), cached by meta's version."""
        if meta_tbl is None:
            return read()
        version = int(meta_tbl.version)
        with self._lock:
            cached = self._active
        if cached is not None and cached[0] == version:
            return cached[1]
        info = read()  # a commit after `version` is read now: the next call reads it again
        with self._lock:
            self._active = (version, info)
        return info

    def has_vectors(self, name: str, probe: Callable[[], bool]) -> bool:
        """Whether table `name` holds a vector.  Once true it stays true: vectors are only
        removed with their rows, and a table emptied of them just finds nothing."""
        if name in self._with_vectors:
            return True
        found = probe()
        if found:
            with self._lock:
                self._with_vectors.add(name)
        return found

    def ann(self, name: str, tbl: Any) -> AnnIndex | None:
        """Table `name`'s vector index, looked up again `ANN_RECHECK_S` after the last look.
        Stale for a moment is harmless: LanceDB searches with whatever index the table has
        now; only the probe count, taken from the index's name, may lag one rebuild behind."""
        now = time.monotonic()
        with self._lock:
            cached = self._ann.get(name)
        if cached is not None and now - cached[0] < ANN_RECHECK_S:
            return cached[1]
        index = store_ann.find(tbl)
        with self._lock:
            self._ann[name] = (now, index)
        return index

    def maintenance_due(self, name: str, version: int) -> bool:
        """Whether table `name` changed since its vector index was last looked after."""
        with self._lock:
            return self._maintained.get(name) != version

    def maintained(self, name: str, version: int) -> None:
        with self._lock:
            self._maintained[name] = version

    def forget(self) -> None:
        with self._lock:
            self._active = None
            self._with_vectors.clear()
            self._ann.clear()
