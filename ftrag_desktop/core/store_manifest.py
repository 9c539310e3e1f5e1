"""The index's bookkeeping tables: the ``documents`` manifest and the ``meta`` key/values.

``documents`` holds one row per file (`DocumentRecord`): what the indexer diffs a folder
against.  ``meta`` names the active chunk table with its embedding model and dimension and,
while a model switch runs, the table being built with its model and dimension.  The chunk
tables themselves, and the order of writes across tables, belong to `Store` (store.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pyarrow as pa

from ftrag_desktop.core.store_lance import LanceTables, batches, in_filter, sql_quote
from ftrag_desktop.core.types import DocStatus, DocumentRecord

__all__ = [
    "DOCUMENTS",
    "DOCUMENT_SCHEMA",
    "META",
    "META_SCHEMA",
    "NO_BUILD",
    "Manifest",
    "Meta",
    "Move",
    "TableInfo",
]

DOCUMENTS = "documents"
META = "meta"

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("chunks", pa.int32()),
        pa.field("parser_version", pa.int32()),
        pa.field("embed_model", pa.string()),
        pa.field("indexed_at", pa.float64()),
        pa.field("title", pa.string()),
        pa.field("pages", pa.int32(), nullable=True),
    ]
)
META_SCHEMA = pa.schema(
    [pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())]
)
# The meta values that say no model switch is running.
NO_BUILD = {"building_chunks_table": "", "building_model": "", "building_dim": "0"}

# (chunk table name, its embedding model or "", its vector dimension or 0)
TableInfo = tuple[str, str, int]


class Move(NamedTuple):
    """A renamed or moved file: its document, the new path, and the file's size and mtime."""

    doc_id: str
    path: str
    size: int
    mtime_ns: int


def _doc_to_row(rec: DocumentRecord) -> dict[str, Any]:
    return {
        "doc_id": rec.doc_id,
        "path": rec.path,
        "size": rec.size,
        "mtime_ns": rec.mtime_ns,
        "sha256": rec.sha256,
        "status": DocStatus(rec.status).value,
        "error": rec.error,
        "chunks": rec.chunks,
        "parser_version": rec.parser_version,
        "embed_model": rec.embed_model,
        "indexed_at": rec.indexed_at,
        "title": rec.title,
        "pages": rec.pages,
    }


def _row_to_doc(row: dict[str, Any]) -> DocumentRecord:
    return DocumentRecord(
        doc_id=row["doc_id"],
        path=row["path"] or "",
        size=int(row["size"] or 0),
        mtime_ns=int(row["mtime_ns"] or 0),
        sha256=row["sha256"] or "",
        status=DocStatus(row["status"]),
        error=row["error"] or "",
        chunks=int(row["chunks"] or 0),
        parser_version=int(row["parser_version"] or 0),
        embed_model=row["embed_model"] or "",
        indexed_at=float(row["indexed_at"] or 0.0),
        title=row["title"] or "",
        pages=None if row["pages"] is None else int(row["pages"]),
    )


class Manifest:
    """The ``documents`` table: one `DocumentRecord` per file, keyed by ``doc_id``."""

    def __init__(self, tables: LanceTables) -> None:
        self._tables = tables

    def create_if_missing(self) -> None:
        self._tables.create_if_missing(DOCUMENTS, DOCUMENT_SCHEMA)

    def all(self) -> list[DocumentRecord]:
        tbl = self._tables.try_open(DOCUMENTS)
        if tbl is None:
            return []
        return [_row_to_doc(r) for r in self._tables.read(tbl, DOCUMENT_SCHEMA.names)]

    def by_path(self, path: str) -> DocumentRecord | None:
        return self._first(f"path = {sql_quote(path)}")

    def at_paths(self, paths: Sequence[str]) -> list[DocumentRecord]:
        tbl = self._tables.try_open(DOCUMENTS)
        if tbl is None:
            return []
        found: list[DocumentRecord] = []
        for batch in batches(paths):
            rows = self._tables.read(tbl, DOCUMENT_SCHEMA.names, in_filter("path", batch))
            found.extend(_row_to_doc(r) for r in rows)
        return found

    def by_id(self, doc_id: str) -> DocumentRecord | None:
        return self._first(f"doc_id = {sql_quote(doc_id)}")

    def _first(self, where: str) -> DocumentRecord | None:
        tbl = self._tables.try_open(DOCUMENTS)
        if tbl is None:
            return None
        rows = self._tables.read(tbl, DOCUMENT_SCHEMA.names, where, 1)
        return _row_to_doc(rows[0]) if rows else None

    def put(self, recs: Sequence[DocumentRecord]) -> None:
        """Insert or update the rows of `recs` in one commit."""
        rows = pa.Table.from_pylist([_doc_to_row(r) for r in recs], schema=DOCUMENT_SCHEMA)
        self._tables.merge(self._tables.open(DOCUMENTS), "doc_id", rows)

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Delete these rows in one commit (the caller keeps the list to an `IN` batch)."""
        self._tables.delete(self._tables.open(DOCUMENTS), in_filter("doc_id", doc_ids))

    def move(self, moves: Sequence[Move]) -> None:
        """Set the path, size and mtime of these rows in one commit; other columns stay."""
        rows = pa.table(
            {
                "doc_id": pa.array([m.doc_id for m in moves], pa.string()),
                "path": pa.array([m.path for m in moves], pa.string()),
                "size": pa.array([m.size for m in moves], pa.int64()),
                "mtime_ns": pa.array([m.mtime_ns for m in moves], pa.int64()),
            }
        )
        self._tables.merge(self._tables.open(DOCUMENTS), "doc_id", rows, insert=False)

    def mark_pending(self, doc_ids: Sequence[str]) -> None:
        """Mark documents pending, so that the next sync indexes them again."""
        tbl = self._tables.open(DOCUMENTS)
        for batch in batches(doc_ids):
            self._tables.update(tbl, in_filter("doc_id", batch), {"status": "pending"})


class Meta:
    """The ``meta`` table: string values by key, cached while this process holds the lock.

    Only the writer-lock holder changes meta, so the holder (`trust_cache()` is true) may trust
    its own copy; every other reader reads the table again on each call.
    """

    def __init__(self, tables: LanceTables, trust_cache: Callable[[], bool]) -> None:
        self._tables = tables
        self._trust_cache = trust_cache
        self._cache: dict[str, str] | None = None
        # The copy is read and written under this lock: a reader thread must never cache the
        # old values while a writer thread is committing new ones.
        self._lock = threading.RLock()

    def create_if_missing(self) -> None:
        self._tables.create_if_missing(META, META_SCHEMA)

    def forget(self) -> None:
        """Drop the cached copy (another process may have written meta before the lock)."""
        self._cache = None

    def read(self) -> dict[str, str]:
        with self._lock:
            if self._trust_cache() and self._cache is not None:
                return dict(self._cache)
            tbl = self._tables.try_open(META)
            if tbl is None:
                return {}
            meta = {r["key"]: r["value"] or "" for r in tbl.search().limit(None).to_list()}
            self._cache = meta
            return dict(meta)

    def write(self, values: dict[str, str]) -> None:
        """Write several keys in one commit (the model swap depends on this)."""
        rows = pa.Table.from_pylist(
            [{"key": k, "value": v} for k, v in values.items()], schema=META_SCHEMA
        )
        with self._lock:
            self._cache = None
            self._tables.merge(self._tables.open(META), "key", rows)

    def active(self) -> TableInfo:
        """The chunk table searches read."""
        meta = self.read()
        return (
            meta.get("active_chunks_table", ""),
            meta.get("embed_model", ""),
            int(meta.get("embed_dim", "0") or 0),
        )

    def building(self) -> TableInfo | None:
        """The chunk table a model switch is filling, if one runs."""
        meta = self.read()
        name = meta.get("building_chunks_table", "")
        if not name:
            return None
        return name, meta.get("building_model", ""), int(meta.get("building_dim", "0") or 0)

    def chunk_tables(self) -> list[TableInfo]:
        """The active table, then the build table if any."""
        tables = []
        active = self.active()
        if active[0]:
            tables.append(active)
        build = self.building()
        if build is not None:
            tables.append(build)
        return tables
