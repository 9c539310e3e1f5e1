"""The index on disk: the `Store` facade over the chunk tables, the manifest and search.

Layout of one index directory (a LanceDB database):

- ``documents``: the manifest, one row per file (`DocumentRecord`).
- ``meta``: key/value strings naming the active chunk table, its embedding model and
  dimension, and, while a model switch is running, the build table and its model and dimension.
- ``chunks_<n>``: one table per embedding model.  ``n`` grows on every switch.  A table whose
  model is ``""`` has no vector column: that is the keyword-only index, the zero-setup default.

Every chunk table has its own fixed vector dimension, so changing the embedding model never
meets a dimension mismatch: the new table is built beside the old one (rows copied, vectors
null), filled in batches, and swapped in with one write to ``meta``; the old table answers
searches until then.

Crash safety.  There are no transactions across tables, so writes are ordered so that a
SIGKILL at any moment leaves a state that `Store.repair` plus re-syncing the pending documents
fixes:

1. ``replace_chunks``: the active chunk table (one merge_insert commit: a reader never sees
   half a document), then the build table if any, then the manifest row.  A crash before the
   manifest write leaves the manifest describing the *old* file (or no row), so the next sync
   re-indexes it; orphan chunks of a never-recorded file are deleted by `repair`.
2. ``remove_documents``: chunks in every chunk table first, then the manifest rows.  A manifest
   row left behind disagrees with its chunk count, which `repair` marks pending.
3. ``rename_documents``: chunk rows first, then the manifest; a re-sync finds the file at the
   new path by hash and re-points it again (idempotent).
4. ``begin_switch``: the build table is created and filled, *then* recorded in ``meta``; a
   crash before that leaves an unreferenced table that `repair` drops.
5. ``finish_switch``: one ``meta`` write swaps the tables, then the old table is dropped; a
   leftover old table is unreferenced and `repair` drops it.

Removals and renames are batched: a batch of `DOCS_PER_COMMIT` documents costs one commit per
table (the chunk tables, then the manifest), never one per document.  Every commit adds a
version that later commits and reads pay for until the next compaction, so a folder of
hundreds of files renamed at once must not cost hundreds of commits.

Damage is another matter: a file inside the LanceDB folder truncated or removed.
``store_damage`` finds it when the engine starts and moves the damaged index aside.

Compaction (`optimize`) runs every ``compact_every_commits`` commits, and once more when the
library has been quiet for the readers' grace period (`keep_versions`): versions younger than
that survive a compaction, because a reader in another process may be in the middle of a query
against one of them; the quiet-time compaction (`maybe_optimize` finds it due) removes them, so
the folder settles at about the size of a fresh index however many edits it went through.

Writers: exactly one process writes, holding ``writer.lock`` (`Store.acquire_writer`).
Readers open the same directory with ``read_only=True``; they re-read ``meta`` on every call
and see new commits at once (``read_consistency_interval=0``).  Commit conflicts (for example
a compaction racing a delete) are retried with backoff.

Filters (``where=``) are LanceDB SQL over the chunk columns; build values with `sql_quote`.

The store modules are the only ones that touch LanceDB; this one owns the chunk tables and
the order of writes across tables, and leaves the rest to its helpers:

- ``store_lance``: the LanceDB connection, table handles, write primitives and retries;
- ``store_manifest``: the ``documents`` and ``meta`` tables;
- ``store_chunks``: the chunk tables' schema and row conversions;
- ``store_health``: `check_health` and `repair`;
- ``store_damage``: damaged files found at start, the damaged index moved aside;
- ``store_lock``: the writer lock;
- ``store_ann``: the ANN vector index (when to build it, how, and how to search with it);
- ``store_search``: what searches remember between calls (active table, vector index).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from ftrag_desktop.core import store_ann
from ftrag_desktop.core.index_location import IndexLocation
from ftrag_desktop.core.store_chunks import (
    CHUNK_PREFIX,
    HIT_COLUMNS,
    chunk_id,
    chunk_row,
    chunk_schema,
    embed_text_hash,
    row_to_hit,
    table_number,
)
from ftrag_desktop.core.store_damage import LOCK_NAME
from ftrag_desktop.core.store_health import diagnose, repair
from ftrag_desktop.core.store_lance import (
    IN_BATCH,
    LanceTables,
    batches,
    in_filter,
    retry,
    sql_quote,
)
from ftrag_desktop.core.store_lock import WriterLock
from ftrag_desktop.core.store_manifest import (
    DOCUMENTS,
    META,
    NO_BUILD,
    Manifest,
    Meta,
    Move,
    TableInfo,
)
from ftrag_desktop.core.store_search import SearchCache, fetch_rows, search_query
from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord, Hit

__all__ = [
    "DOCS_PER_COMMIT",
    "DimensionMismatch",
    "Move",
    "Store",
    "chunk_id",
    "embed_text_hash",
    "sql_quote",
]

T = TypeVar("T")
# (record, its chunks, their vectors for the active model or None)
ReplaceItem = tuple[DocumentRecord, Sequence[Chunk], Sequence[Sequence[float] | None] | None]

# Documents per commit of `remove_documents` and `rename_documents` (one `IN` filter).
DOCS_PER_COMMIT = IN_BATCH

# Old versions younger than this survive optimize(): a reader in another process may still be
# in the middle of a query against one of them.
DEFAULT_KEEP_VERSIONS = timedelta(seconds=10)


class DimensionMismatch(ValueError):
    """A query vector's length differs from the active table's dimension."""


def _dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # removed by a concurrent cleanup
                total += (Path(dirpath) / name).stat().st_size
    return total


class Store:
    """One index: a folder, or a shared object store (`index_location`).  Plain data in and out;
    no LanceDB object escapes the store modules."""

    def __init__(self, index: Path | IndexLocation, *, read_only: bool = False) -> None:
        """`index`: a folder, or an `IndexLocation` (which may be a shared object store; its
        `read_only` makes this store read-only too)."""
        location = index if isinstance(index, IndexLocation) else IndexLocation.folder(index)
        self.location = location
        # This machine's files about the index (the writer lock); for a local index, the index.
        self.index_dir = location.local_dir
        self.read_only = read_only or location.read_only
        self.keep_versions = DEFAULT_KEEP_VERSIONS  # the readers' grace period (see optimize)
        self._fts_checked: set[str] = set()  # chunk tables known to have their FTS index
        self._search = SearchCache()  # what searches remember between calls (store_search)
        # The active table one search looks at throughout (see pinned_search).
        self._pinned: contextvars.ContextVar[TableInfo | None] = contextvars.ContextVar(
            f"ftrag-pinned-search-{id(self)}", default=None
        )
        if not self.read_only:
            self.index_dir.mkdir(parents=True, exist_ok=True)
        self._db = LanceTables(
            location.uri if location.remote else self.index_dir, location.storage_options
        )
        self._lock = WriterLock(self.index_dir / LOCK_NAME)
        self._manifest = Manifest(self._db)
        # Only the lock holder changes meta, so the lock holder may trust its own copy.
        self._meta = Meta(self._db, trust_cache=lambda: self._lock.held)
        if not self.read_only:
            self._initialise()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.release_writer()
        self._db.forget_all()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def acquire_writer(self) -> None:
        self._check_writable()
        self._meta.forget()
        self._lock.acquire()
        # A writer before us may have died with old versions on disk: clean up once quiet.
        self._db.dirty_at = time.monotonic()

    def release_writer(self) -> None:
        self._lock.release()

    @property
    def is_writer(self) -> bool:
        """True while this store holds the writer lock."""
        return self._lock.held

    def _check_writable(self) -> None:
        if self.read_only:
            raise PermissionError("this Store was opened read-only")

    def _initialise(self) -> None:
        names = self._db.names()
        if DOCUMENTS not in names:
            self._manifest.create_if_missing()
        meta = self._meta.read() if META in names else {}
        if not meta.get("active_chunks_table"):
            # A crash during a first start may have left chunks_1 behind: overwrite it.
            self._create_chunk_table(f"{CHUNK_PREFIX}1", "", 0)
            if META not in names:
                self._meta.create_if_missing()
            self._meta.write(
                {
                    "active_chunks_table": f"{CHUNK_PREFIX}1",
                    "embed_model": "",
                    "embed_dim": "0",
                    "table_seq": "1",
                    **NO_BUILD,
                }
            )

    # ------------------------------------------------------------------ low level

    # The crash tests (tests/test_store.py) damage an index on purpose through these four.
    def _open(self, name: str) -> Any:
        return self._db.open(name)

    def _delete(self, tbl: Any, where: str) -> None:
        self._db.delete(tbl, where)

    def _active(self) -> TableInfo:
        return self._meta.active()

    def _set_meta(self, values: dict[str, str]) -> None:
        self._meta.write(values)

    def _create_chunk_table(self, name: str, model: str, dim: int) -> Any:
        return self._db.create_with_fts(name, chunk_schema(model, dim))

    def _with_active(self, fn: Callable[[Any, str, int], T], default: T) -> T:
        """Run a read on the active table; if a model swap dropped it meanwhile, read again."""
        for attempt in range(2):
            name, model, dim = self._meta.active()
            tbl = self._db.try_open(name) if name else None
            if tbl is None:
                return default
            try:
                return fn(tbl, model, dim)
            except Exception:
                self._db.forget(name)
                if attempt == 1 or self._meta.active()[0] == name:
                    raise
        return default

    # ------------------------------------------------------------------ manifest

    def documents(self) -> list[DocumentRecord]:
        return self._manifest.all()

    def document_by_path(self, path: str) -> DocumentRecord | None:
        return self._manifest.by_path(path)

    def documents_at(self, paths: Sequence[str]) -> list[DocumentRecord]:
        """The manifest rows of these paths (those that have one)."""
        return self._manifest.at_paths(paths)

    def document(self, doc_id: str) -> DocumentRecord | None:
        return self._manifest.by_id(doc_id)

    def put_document(self, rec: DocumentRecord) -> None:
        """Insert or update the manifest row of `rec.doc_id`."""
        self.put_documents([rec])

    def put_documents(self, recs: Sequence[DocumentRecord]) -> None:
        """Insert or update several manifest rows in one commit."""
        self._check_writable()
        if not recs:
            return
        self._manifest.put(recs)

    def remove_document(self, doc_id: str) -> None:
        """Delete the document's chunks from every chunk table, then its manifest row."""
        self.remove_documents([doc_id])

    def remove_documents(
        self, doc_ids: Sequence[str], *, before_manifest: Callable[[], None] | None = None
    ) -> None:
        """Delete these documents' chunks from every chunk table, then their manifest rows.

        A batch of `DOCS_PER_COMMIT` documents costs one commit per chunk table and one on the
        manifest, written in that order, so a crash half-way leaves manifest rows whose chunk
        count disagrees with the index (`repair` marks them pending; the next sync removes
        them).  `before_manifest` runs between each batch's chunk and manifest commits (the
        crash tests stop there)."""
        self._check_writable()
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return
        tables = [name for name, _model, _dim in self._meta.chunk_tables()]
        for batch in batches(ids):
            where = in_filter("doc_id", batch)
            for name in tables:
                self._db.delete(self._db.open(name), where)
            if before_manifest is not None:
                before_manifest()
            self._manifest.delete(batch)

    def rename_document(self, doc_id: str, new_path: str, *, size: int, mtime_ns: int) -> None:
        """Re-point a moved file: the path changes in chunks and manifest, vectors stay."""
        self.rename_documents([Move(doc_id, new_path, size, mtime_ns)])

    def rename_documents(
        self, moves: Sequence[Move], *, before_manifest: Callable[[], None] | None = None
    ) -> None:
        """Re-point moved files: new paths in the chunk rows, then in the manifest (with the
        new size and mtime); text and vectors stay.

        A batch of `DOCS_PER_COMMIT` documents costs one merge commit per chunk table and one on
        the manifest, in that order; a crash half-way leaves chunk rows that already name the new
        path under a manifest row that names the old one, and the next sync pairs the file by
        its hash and re-points it again (idempotent).  `before_manifest` runs between each
        batch's chunk and manifest commits (the crash tests stop there)."""
        self._check_writable()
        if not moves:
            return
        by_id = {m.doc_id: m for m in moves}
        if len(by_id) != len(moves):
            raise ValueError("a document appears twice in one batch")
        tables = [name for name, _model, _dim in self._meta.chunk_tables()]
        for batch in batches(list(by_id)):
            for name in tables:
                tbl = self._db.open(name)
                # One merge per table re-points every chunk of the batch; an `update` would
                # cost a commit per document (each path differs).
                rows = self._db.read(tbl, ["id", "doc_id"], in_filter("doc_id", batch))
                if not rows:
                    continue
                data = pa.table(
                    {
                        "id": pa.array([r["id"] for r in rows], pa.string()),
                        "path": pa.array([by_id[r["doc_id"]].path for r in rows], pa.string()),
                    }
                )
                self._db.merge(tbl, "id", data, insert=False)
            if before_manifest is not None:
                before_manifest()
            self._manifest.move([by_id[d] for d in batch])

    # ------------------------------------------------------------------ chunks

    def replace_chunks(
        self,
        rec: DocumentRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float] | None] | None,
    ) -> None:
        """Make `chunks` the document's whole content (one commit per chunk table), then
        record the document as indexed.  `vectors` belong to the active table's model."""
        indexed = replace(
            rec,
            status=DocStatus.INDEXED,
            error="",
            embed_model=self._meta.active()[1],
            indexed_at=rec.indexed_at or time.time(),
        )
        self.replace_many([(indexed, chunks, vectors)])

    def replace_many(
        self, items: Sequence[ReplaceItem], *, before_manifest: Callable[[], None] | None = None
    ) -> None:
        """`replace_chunks` for a batch of documents: one commit per chunk table for the whole
        batch, then one manifest commit.  Records are written as given, except that `chunks`
        is set to the number of chunks (an empty list removes a document's chunks, e.g. for a
        file that now fails to parse).  `before_manifest` runs between the chunk and manifest
        commits (the crash tests pause there)."""
        self._check_writable()
        if not items:
            return
        doc_ids = [rec.doc_id for rec, _c, _v in items]
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError("a document appears twice in one batch")
        active_name, active_model, active_dim = self._meta.active()
        base: list[dict[str, Any]] = []
        given: list[Sequence[float] | None] = []
        for rec, chunks, vectors in items:
            if vectors is not None and len(vectors) != len(chunks):
                raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
            for vec in vectors or ():
                if vec is not None and (not active_model or len(vec) != active_dim):
                    raise DimensionMismatch(
                        f"a vector of length {len(vec)} for an index built with "
                        f"{active_model or 'no embedding model'} ({active_dim} dimensions)"
                    )
            rows = [chunk_row(rec, c) for c in chunks]
            if len({r["id"] for r in rows}) != len(rows):
                raise ValueError(f"duplicate chunk ordinals in document {rec.doc_id}")
            base.extend(rows)
            given.extend(vectors if vectors is not None else [None] * len(chunks))
        batch_filter = in_filter("doc_id", doc_ids)
        targets: list[tuple[str, str, int, Sequence[Sequence[float] | None]]] = [
            (active_name, active_model, active_dim, given)
        ]
        build = self._meta.building()
        if build is not None:
            # Rows new to the build table reuse any vector it already has for the same text.
            known = self._vectors_by_hash(build[0], [r["embed_text_hash"] for r in base])
            targets.append((*build, [known.get(r["embed_text_hash"]) for r in base]))
        for name, model, dim, vecs in targets:
            tbl = self._db.open(name)
            if not base:
                self._db.delete(tbl, batch_filter)
                continue
            rows = [dict(row, embed_model=model) for row in base]
            if model:
                for row, vec in zip(rows, vecs, strict=True):
                    row["vector"] = vec
            data = pa.Table.from_pylist(rows, schema=chunk_schema(model, dim))
            self._db.merge(tbl, "id", data, delete_unmatched=batch_filter)
        if before_manifest is not None:
            before_manifest()
        self.put_documents([replace(rec, chunks=len(chunks)) for rec, chunks, _v in items])

    def _vectors_by_hash(self, table: str, hashes: Sequence[str]) -> dict[str, list[float]]:
        tbl = self._db.try_open(table)
        if tbl is None or "vector" not in tbl.schema.names:
            return {}
        wanted = sorted(set(hashes))
        found: dict[str, list[float]] = {}
        for batch in batches(wanted):
            where = f"{in_filter('embed_text_hash', batch)} AND vector IS NOT NULL"
            for r in self._db.read(tbl, ["embed_text_hash", "vector"], where):
                found[r["embed_text_hash"]] = list(r["vector"])
        return found

    def cached_vectors(self, embed_text_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Vectors already stored in the active table, by embed-text hash."""
        name = self._meta.active()[0]
        return self._vectors_by_hash(name, embed_text_hashes) if name else {}

    def doc_chunk_count(self, doc_id: str) -> int:
        return self._with_active(
            lambda tbl, _m, _d: int(tbl.count_rows(f"doc_id = {sql_quote(doc_id)}")), 0
        )

    def chunk_texts(self, doc_id: str) -> list[str]:
        def read(tbl: Any, _model: str, _dim: int) -> list[str]:
            rows = self._db.read(tbl, ["ordinal", "text"], f"doc_id = {sql_quote(doc_id)}")
            return [r["text"] for r in sorted(rows, key=lambda r: r["ordinal"])]

        return self._with_active(read, [])

    def all_chunks(self) -> list[Hit]:
        """Every passage of the active table as a `Hit` (score 0), by path then position."""

        def read(tbl: Any, _model: str, _dim: int) -> list[Hit]:
            rows = self._db.read(tbl, [*HIT_COLUMNS, "ordinal"])
            rows.sort(key=lambda r: (r["path"] or "", r["ordinal"]))
            return [row_to_hit(r, 0.0, "corpus", 0) for r in rows]

        return self._with_active(read, [])

    # ------------------------------------------------------------------ embedding model

    def embedding_model(self) -> tuple[str, int]:
        # Every search asks (Engine.retriever): the search cache spares it a read of meta, and
        # inside a search (`pinned_search`) it is the pinned table's model, looked up already.
        pinned = self._pinned.get()
        if pinned is not None:
            return pinned[1], pinned[2]
        _name, model, dim = self._search.active(self._db.try_open(META), self._meta.active)
        return model, dim

    def building_model(self) -> tuple[str, int] | None:
        build = self._meta.building()
        return None if build is None else (build[1], build[2])

    def begin_switch(self, model: str, dim: int) -> None:
        """Start (or resume) building a chunk table for `model` beside the active one."""
        self._check_writable()
        if model and dim <= 0:
            raise ValueError(f"embedding dimension must be positive, got {dim}")
        if not model:
            dim = 0
        build = self._meta.building()
        if build is not None:
            if build[1:] == (model, dim):
                return
            self.abandon_switch()
        active_name, active_model, active_dim = self._meta.active()
        if (active_model, active_dim) == (model, dim):
            return
        meta = self._meta.read()
        seq = max(int(meta.get("table_seq", "1") or 1), table_number(active_name)) + 1
        name = f"{CHUNK_PREFIX}{seq}"
        new = self._create_chunk_table(name, model, dim)
        old = self._db.open(active_name)
        copy_cols = [c for c in chunk_schema("", 0).names if c != "embed_model"]
        rows = old.search().select(copy_cols).limit(None).to_arrow()
        if rows.num_rows:
            n = rows.num_rows
            rows = rows.append_column("embed_model", pa.array([model] * n, pa.string()))
            if model:
                rows = rows.append_column("vector", pa.nulls(n, type=pa.list_(pa.float32(), dim)))
            data = rows.select(chunk_schema(model, dim).names).cast(chunk_schema(model, dim))
            self._db.add(new, data)
        self._meta.write(
            {
                "table_seq": str(seq),
                "building_chunks_table": name,
                "building_model": model,
                "building_dim": str(dim),
            }
        )

    def _target_for_vectors(self) -> TableInfo:
        build = self._meta.building()
        return build if build is not None else self._meta.active()

    def rows_missing_vectors(self, limit: int) -> list[tuple[str, str]]:
        """(chunk id, embed-text hash) of rows without a vector, in the build table if one
        exists, else in the active table."""
        return [(cid, h) for cid, h, _t in self.missing_vector_inputs(limit)]

    def missing_vector_inputs(self, limit: int) -> list[tuple[str, str, str]]:
        """Like `rows_missing_vectors`, plus the text to embed (no re-parsing needed)."""
        name, model, _dim = self._target_for_vectors()
        tbl = self._db.try_open(name) if name else None
        if tbl is None or not model or limit <= 0:
            return []
        rows = self._db.read(tbl, ["id", "embed_text_hash", "embed_text"], "vector IS NULL", limit)
        return [(r["id"], r["embed_text_hash"], r["embed_text"] or "") for r in rows]

    def count_missing_vectors(self) -> int:
        """How many rows `rows_missing_vectors` would eventually return."""
        name, model, _dim = self._target_for_vectors()
        tbl = self._db.try_open(name) if name else None
        if tbl is None or not model:
            return 0
        return int(tbl.count_rows("vector IS NULL"))

    def set_vectors(self, ids: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        """Store vectors by chunk id, in the build table if one exists, else the active one."""
        self._check_writable()
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        if not ids:
            return
        name, model, dim = self._target_for_vectors()
        if not model:
            raise ValueError("the index is keyword-only: begin_switch() to a model first")
        for v in vectors:
            if len(v) != dim:
                raise DimensionMismatch(f"vector of length {len(v)} for a {dim}-dim table")
        data = pa.table(
            {
                "id": pa.array(list(ids), pa.string()),
                "vector": pa.array([list(v) for v in vectors], pa.list_(pa.float32(), dim)),
            }
        )
        self._db.merge(self._db.open(name), "id", data, insert=False)

    def finish_switch(self) -> bool:
        """Swap the build table in if every row has its vector.  False while rows are missing
        (or when no switch is running)."""
        self._check_writable()
        build = self._meta.building()
        if build is None:
            return False
        name, model, dim = build
        tbl = self._db.open(name)
        if model and tbl.count_rows("vector IS NULL") > 0:
            return False
        self._db.ensure_fts(tbl)
        self._db.optimize(tbl, self.keep_versions)
        old = self._meta.active()[0]
        self._meta.write(
            {"active_chunks_table": name, "embed_model": model, "embed_dim": str(dim), **NO_BUILD}
        )
        if old and old != name:
            self._db.drop(old)
        return True

    def abandon_switch(self) -> None:
        self._check_writable()
        build = self._meta.building()
        if build is None:
            return
        self._meta.write(dict(NO_BUILD))
        self._db.drop(build[0])

    # ------------------------------------------------------------------ search

    @contextlib.contextmanager
    def pinned_search(self) -> Iterator[None]:
        """The searches inside this block (on this thread, and on threads run in its context)
        use the active table as it is when the block starts: one search with several parts
        (has vectors? keyword side, vector side) checks ``meta``'s version once, not per part.
        A part that fails on the pinned table looks at ``meta`` again, as outside the block."""
        if self._pinned.get() is not None:
            yield
            return
        token = self._pinned.set(self._search.active(self._db.try_open(META), self._meta.active))
        try:
            yield
        finally:
            self._pinned.reset(token)

    def _with_search_table(self, fn: Callable[[Any, str, str, int], T], default: T) -> T:
        """`_with_active` for searches: `fn(tbl, name, model, dim)`, with the active table
        taken from the search cache (see `store_search`) rather than read from ``meta``, or
        pinned for the whole search (`pinned_search`)."""
        pinned = self._pinned.get()
        for attempt in range(2):
            if attempt == 0 and pinned is not None:
                name, model, dim = pinned
            else:
                name, model, dim = self._search.active(self._db.try_open(META), self._meta.active)
            tbl = self._db.try_open(name) if name else None
            if tbl is None:
                if attempt == 0 and pinned is not None:
                    continue  # dropped since the search began (a model switch): look again
                return default
            try:
                return fn(tbl, name, model, dim)
            except Exception:
                self._db.forget(name)
                self._search.forget()
                if attempt == 1 or self._meta.active()[0] == name:
                    raise
        return default

    def keyword_search(self, query: str, k: int, *, where: str | None = None) -> list[Hit]:
        """BM25 over chunk text.  Any query text is safe; an empty one finds nothing."""
        if k <= 0 or not query.strip():
            return []

        def run(tbl: Any, _name: str, _model: str, _dim: int) -> list[Hit]:
            try:
                rows = self._fts(tbl, query, k, where)
            except Exception as exc:
                if "index" in str(exc).lower() and "inverted" in str(exc).lower():
                    if self.read_only:
                        return []
                    self._db.ensure_fts(tbl)
                # Whatever the query parser disliked, plain words are always valid.
                words = " ".join(re.findall(r"\w+", query))
                if not words:
                    return []
                rows = self._fts(tbl, words, k, where)
            return [
                row_to_hit(r, float(r["_score"]), "keyword", i) for i, r in enumerate(rows, start=1)
            ]

        return self._with_search_table(run, [])

    def _fts(self, tbl: Any, query: str, k: int, where: str | None) -> list[dict[str, Any]]:
        q = search_query(tbl, query, "fts", fts_columns="text")
        if where:
            q = q.where(where, prefilter=True)
        return fetch_rows(q.select([*HIT_COLUMNS, "_score"]).limit(k))

    def vector_search(
        self, vector: Sequence[float], k: int, *, where: str | None = None, exact: bool = False
    ) -> list[Hit]:
        """Cosine nearest neighbours in the active table; [] when it has no vectors.
        `score` is 1 - cosine distance.  Uses the table's ANN index when it has one (see
        `store_ann`), unless `exact` asks for a flat scan."""
        if k <= 0:
            return []

        def run(tbl: Any, name: str, model: str, dim: int) -> list[Hit]:
            if not model:
                return []
            if len(vector) != dim:
                raise DimensionMismatch(
                    f"query vector has {len(vector)} dimensions; the index ({model}) has {dim}"
                )
            q = search_query(
                tbl, [float(x) for x in vector], "vector", vector_column="vector"
            ).distance_type("cosine")
            params = None if exact else store_ann.search_params(self._search.ann(name, tbl))
            if exact:
                q = q.bypass_vector_index()
            elif params is not None:
                q = q.refine_factor(params.refine_factor)
                # A filter may leave too few rows in the usual partitions: then more are
                # searched.  Not otherwise: an open maximum costs 3x at 1M rows.
                q = q.minimum_nprobes(params.nprobes).maximum_nprobes(
                    0 if where else params.nprobes
                )
            if where:
                q = q.where(where, prefilter=True)
            rows = fetch_rows(q.select([*HIT_COLUMNS, "_distance"]).limit(k))
            return [
                row_to_hit(r, 1.0 - float(r["_distance"]), "vector", i)
                for i, r in enumerate(rows, start=1)
            ]

        return self._with_search_table(run, [])

    def has_vectors(self) -> bool:
        def run(tbl: Any, name: str, model: str, _dim: int) -> bool:
            # One matching row is enough: no need to count (that would scan every vector).
            return bool(model) and self._search.has_vectors(
                name, lambda: bool(self._db.read(tbl, ["id"], "vector IS NOT NULL", 1))
            )

        return self._with_search_table(run, False)

    def vector_index(self) -> store_ann.AnnIndex | None:
        """The active table's ANN index, if it has one (looked up now, not cached)."""
        return self._with_search_table(lambda tbl, _n, _m, _d: store_ann.find(tbl), None)

    def maintain_vector_index(self) -> str:
        """Build or retrain the active table's ANN index when `store_ann` finds it due (past
        `store_ann.MIN_ROWS` vectors, or grown well past what it was trained on), once every row
        has its vector.  Slow (seconds to minutes): for idle time.  Cheap when nothing changed
        since the last call (one version check).  Returns what was done ("" for nothing)."""
        self._check_writable()
        name, model, _dim = self._meta.active()
        tbl = self._db.try_open(name) if name and model else None
        if tbl is None or not self._search.maintenance_due(name, int(tbl.version)):
            return ""
        index = store_ann.find(tbl)
        total = int(tbl.count_rows())
        done = ""
        # The row count bounds the vector count: only a table that may be due is scanned.
        if store_ann.rebuild_reason(index, total):
            vectors = int(tbl.count_rows("vector IS NOT NULL"))
            reason = store_ann.rebuild_reason(index, vectors)
            if reason and vectors == total:  # else wait: the missing vectors are on their way
                built = retry(lambda: store_ann.build(tbl, vectors))
                self._db.dirty_at = time.monotonic()  # old index files go at the next compaction
                self._search.forget()
                done = f"built vector index {built} ({reason})"
        self._search.maintained(name, int(tbl.version))
        return done

    # ------------------------------------------------------------------ maintenance

    def ensure_fts_index(self) -> None:
        """Create the full-text index on every chunk table that lacks one (each table is
        looked at once per process: nothing drops the index of a table afterwards)."""
        self._check_writable()
        for name, _model, _dim in self._meta.chunk_tables():
            if name not in self._fts_checked:
                self._db.ensure_fts(self._db.open(name))
                self._fts_checked.add(name)

    def optimize(
        self,
        *,
        keep_versions: timedelta | None = None,
        before_table: Callable[[str], None] | None = None,
    ) -> None:
        """Compact files, fold new rows into the FTS index, and delete versions older than
        `keep_versions` (default `self.keep_versions`; pass ``timedelta(0)`` only when no
        reader can be open).  `before_table(name)` runs before each table is compacted (the
        crash tests pause there)."""
        self._check_writable()
        keep = self.keep_versions if keep_versions is None else keep_versions
        started = time.monotonic()
        names = [*(t[0] for t in self._meta.chunk_tables()), DOCUMENTS, META]
        leftovers = False
        for name in names:
            tbl = self._db.try_open(name)
            if tbl is not None:
                if before_table is not None:
                    before_table(name)
                # Two or more commits (compaction, then the index) leave the middle version
                # behind: it is younger than `keep`, so only a later compaction removes it.
                leftovers = self._db.optimize(tbl, keep) > 1 or leftovers
        self._db.commits = 0
        dirty = self._db.dirty_at
        if dirty is not None and dirty <= started - keep.total_seconds():
            # Every version older than the last commit is gone; the middle versions this
            # compaction made are the newest garbage, to be cleaned once they are old enough.
            self._db.dirty_at = time.monotonic() if leftovers else None

    def unindexed_text_rows(self) -> int:
        """Passages of the active table that keyword search still finds by scanning them (the
        full-text index holds them after the next `optimize`)."""
        return self._with_active(lambda tbl, _m, _d: self._db.unindexed_text_rows(tbl), 0)

    @property
    def settled(self) -> bool:
        """True when no superseded version is known to be left on disk."""
        return self._db.dirty_at is None

    def settle_due(self) -> bool:
        """True when a compaction now would remove every superseded version: something was
        committed since the last full clean-up, and the readers' grace period has passed."""
        dirty = self._db.dirty_at
        return dirty is not None and time.monotonic() - dirty >= self.keep_versions.total_seconds()

    def maybe_optimize(
        self, every_commits: int = 50, *, before_table: Callable[[str], None] | None = None
    ) -> bool:
        """Optimize once `every_commits` commits have accumulated, or when the library has
        been quiet long enough for a compaction to clean up everything (`settle_due`); True
        if it ran."""
        if self._db.commits < every_commits and not self.settle_due():
            return False
        self.optimize(before_table=before_table)
        return True

    def stats(self) -> dict[str, Any]:
        counts = Counter(d.status.value for d in self.documents())
        _name, model, dim = self._meta.active()
        chunks = self._with_active(lambda tbl, _m, _d: int(tbl.count_rows()), 0)
        build = self._meta.building()
        progress: float | None = None
        if build is not None:
            btbl = self._db.try_open(build[0])
            if btbl is not None:
                total = int(btbl.count_rows())
                missing = int(btbl.count_rows("vector IS NULL")) if build[1] else 0
                progress = 1.0 if total == 0 else (total - missing) / total
        missing_now = self.count_missing_vectors()
        return {
            "documents": {s.value: counts.get(s.value, 0) for s in DocStatus},
            "chunks": chunks,
            "embed_model": model,
            "embed_dim": dim,
            "building_model": build[1] if build is not None else None,
            "build_progress": progress,
            # A shared index's size is the object store's to tell: not listed from here.
            "index_bytes": 0 if self.location.remote else _dir_bytes(self.index_dir),
            "index_location": self.location.describe(),
            "vectors_missing": missing_now,
        }

    def check_health(self) -> list[str]:
        """Inconsistencies between the manifest and the chunk tables; [] when healthy."""
        return diagnose(self._db, self._manifest, self._meta).problems

    def repair(self) -> list[str]:
        """Fix what `check_health` finds: drop stray tables, delete orphan and duplicated
        chunks, and mark affected documents pending so the next sync re-indexes them.
        Returns what was done."""
        self._check_writable()
        return repair(self._db, self._manifest, self._meta)
