"""How a `Store` runs its search queries, and what it remembers between searches, so that a
search reads only what it searches.

Running a query.  LanceDB's synchronous API drives its async core through a background event
loop, and one `to_list()` crosses to that loop and back about six times (the query, each result
batch, the end of the stream, schema look-ups); each crossing wakes two threads, which costs
0.3 ms on an idle machine and much more on a busy one.  `fetch_rows` builds the query with the
same synchronous builder (so it means exactly what `to_list()` would run, less the full-text
query's check for a legacy tantivy index, which this project never makes) and executes it and
collects every batch in one crossing: 1-4 ms less per query at 100k rows.  It relies on two
internals of lancedb 0.40 (`lancedb.background_loop.LOOP` and the sync table's async twin,
`LanceTable._table`); if a later lancedb lacks them it falls back to `to_list()`.

Building a query.  `tbl.search(...)` reads the table's schema first (another crossing) only to
infer the vector column when none is named; `search_query` names it and skips that read.

What is remembered.  Every search needs the active chunk table (from ``meta``), whether that
table has vectors, and its vector index (if any).  Reading ``meta`` takes several milliseconds,
and asking whether any row has a vector scans the vector column (about 90 ms at 100k rows); a
table's version number costs a fraction of a millisecond.  So the answers are kept and asked
again only when the table they came from has a new version (the vector index: every few
seconds, see `ann`).  That holds across processes too: a reader's connection sees another
process's commits at once (``read_consistency_interval=0``), version numbers included.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ftrag_desktop.core import store_ann
from ftrag_desktop.core.store_ann import AnnIndex

__all__ = ["SearchCache", "fetch_rows", "search_query"]

TableInfo = tuple[str, str, int]
ANN_RECHECK_S = 5.0
Rows = list[dict[str, Any]]


@functools.cache
def _event_loop() -> Any | None:
    """LanceDB's background event loop, or None if this lancedb has none we can use."""
    try:
        from lancedb.background_loop import LOOP
    except ImportError:
        return None
    return LOOP if callable(getattr(LOOP, "run", None)) else None


@functools.cache
def _create_builder() -> Callable[..., Any] | None:
    """`LanceQueryBuilder.create`, what `tbl.search` ends with, if this lancedb has it."""
    try:
        from lancedb.query import LanceQueryBuilder
    except ImportError:
        return None
    create = getattr(LanceQueryBuilder, "create", None)
    return create if callable(create) else None


def search_query(
    tbl: Any,
    query: str | list[float],
    query_type: str,
    *,
    vector_column: str | None = None,
    fts_columns: str | None = None,
) -> Any:
    """`tbl.search(query, query_type=..., vector_column_name=..., fts_columns=...)`, without
    the schema read `tbl.search` does to infer the vector column: a full-text query has none,
    and a vector query names it."""
    create = _create_builder()
    if create is None or (query_type == "vector" and not vector_column):
        return tbl.search(
            query, query_type=query_type, vector_column_name=vector_column, fts_columns=fts_columns
        )
    return create(
        tbl, query, query_type, vector_column_name=vector_column, fts_columns=fts_columns or []
    )


async def _collect(async_table: Any, query: Any) -> pa.Table:
    reader = await async_table._execute_query(query)
    return pa.Table.from_batches(await reader.read_all(), schema=reader.schema)


def fetch_rows(builder: Any) -> Rows:
    """The rows of a query built with LanceDB's synchronous API (`tbl.search(...)...`), as
    `builder.to_list()` returns them, fetched in one crossing to LanceDB's event loop.

    Never call it on that loop's own thread (LanceDB's sync API would deadlock there too)."""
    loop = _event_loop()
    async_table = getattr(getattr(builder, "_table", None), "_table", None)
    if loop is None or not callable(getattr(async_table, "_execute_query", None)):
        rows: Rows = builder.to_list()
        return rows
    query = builder.to_query_object()  # what to_list() would run, built the same way
    table: pa.Table = loop.run(_collect(async_table, query))
    out: Rows = table.to_pylist()
    return out


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
