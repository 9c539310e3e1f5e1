"""The index on disk: the only module that touches LanceDB (manifest, chunk tables, search).

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
2. ``remove_document``: chunks in every chunk table first, then the manifest row.  A manifest
   row left behind disagrees with its chunk count, which `repair` marks pending.
3. ``rename_document``: chunk rows first, then the manifest; a re-sync finds the file at the
   new path by hash and re-points it again (idempotent).
4. ``begin_switch``: the build table is created and filled, *then* recorded in ``meta``; a
   crash before that leaves an unreferenced table that `repair` drops.
5. ``finish_switch``: one ``meta`` write swaps the tables, then the old table is dropped; a
   leftover old table is unreferenced and `repair` drops it.

Writers: exactly one process writes, holding ``writer.lock`` (`Store.acquire_writer`).
Readers open the same directory with ``read_only=True``; they re-read ``meta`` on every call
and see new commits at once (``read_consistency_interval=0``).  Commit conflicts (for example
a compaction racing a delete) are retried with backoff.

Filters (``where=``) are LanceDB SQL over the chunk columns; build values with `sql_quote`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import lancedb
import pyarrow as pa
from lancedb.index import FTS

from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord, Hit
from ftrag_desktop.errors import IndexBusyError

__all__ = ["DimensionMismatch", "Store", "chunk_id", "embed_text_hash", "sql_quote"]

T = TypeVar("T")
# (record, its chunks, their vectors for the active model or None)
ReplaceItem = tuple[DocumentRecord, Sequence[Chunk], Sequence[Sequence[float] | None] | None]

DOCUMENTS = "documents"
META = "meta"
CHUNK_PREFIX = "chunks_"
LOCK_NAME = "writer.lock"
HEADING_SEP = " > "
# Old versions younger than this survive optimize(): a reader in another process may still be
# in the middle of a query against one of them.
DEFAULT_KEEP_VERSIONS = timedelta(seconds=10)
RETRY_ATTEMPTS = 6
IN_BATCH = 256  # values per `x IN (...)` filter

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
HIT_COLUMNS = [
    "id",
    "doc_id",
    "path",
    "title",
    "text",
    "page",
    "heading",
    "line_start",
    "line_end",
    "char_start",
    "char_end",
]


class DimensionMismatch(ValueError):
    """A query vector's length differs from the active table's dimension."""


def chunk_schema(model: str, dim: int) -> pa.Schema:
    """The schema of a chunk table for `model`; no vector column when `model` is ""."""
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string()),
        pa.field("path", pa.string()),
        pa.field("title", pa.string()),
        pa.field("ordinal", pa.int32()),
        pa.field("page", pa.int32(), nullable=True),
        pa.field("heading", pa.string()),
        pa.field("line_start", pa.int32(), nullable=True),
        pa.field("line_end", pa.int32(), nullable=True),
        pa.field("char_start", pa.int32()),
        pa.field("char_end", pa.int32()),
        pa.field("text", pa.string()),
        # What gets embedded (title, heading path, passage): kept so that a model switch can
        # fill vectors in without re-parsing the files.
        pa.field("embed_text", pa.string()),
        pa.field("embed_text_hash", pa.string()),
    ]
    if model:
        fields.append(pa.field("vector", pa.list_(pa.float32(), dim), nullable=True))
    fields.append(pa.field("embed_model", pa.string()))
    return pa.schema(fields)


def sql_quote(value: str) -> str:
    """A SQL string literal for LanceDB filters: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def chunk_id(doc_id: str, ordinal: int) -> str:
    return f"{doc_id}:{ordinal:05d}"


def embed_text_hash(embed_text: str) -> str:
    """The vector cache key of a chunk: sha256 hex of the text that is embedded."""
    return hashlib.sha256(embed_text.encode("utf-8")).hexdigest()


def _in_filter(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_quote(v) for v in values)})"


def _batches(values: Sequence[str], size: int = IN_BATCH) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _is_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "conflict" in text or "retryable" in text or "please retry" in text


def _retry(fn: Callable[[], T]) -> T:
    """Run a LanceDB write, retrying commit conflicts from concurrent writers with backoff."""
    delay = 0.05
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return fn()
        except Exception as exc:  # lancedb maps Rust errors to RuntimeError/OSError/ValueError
            if attempt == RETRY_ATTEMPTS - 1 or not _is_conflict(exc):
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _table_number(name: str) -> int:
    return int(name[len(CHUNK_PREFIX) :])


def _is_chunk_table(name: str) -> bool:
    return re.fullmatch(rf"{CHUNK_PREFIX}\d+", name) is not None


def _chunk_row(rec: DocumentRecord, c: Chunk) -> dict[str, Any]:
    """A chunk table row without `embed_model` and `vector` (those depend on the table)."""
    return {
        "id": chunk_id(rec.doc_id, c.ordinal),
        "doc_id": rec.doc_id,
        "path": rec.path,
        "title": rec.title,
        "ordinal": c.ordinal,
        "page": c.page,
        "heading": HEADING_SEP.join(c.heading_path),
        "line_start": c.line_start,
        "line_end": c.line_end,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "text": c.text,
        "embed_text": c.embed_text,
        "embed_text_hash": embed_text_hash(c.embed_text),
    }


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


def _row_to_hit(row: dict[str, Any], score: float, mode: str, rank: int) -> Hit:
    heading = row.get("heading") or ""
    return Hit(
        chunk_id=row["id"],
        doc_id=row["doc_id"],
        path=row["path"] or "",
        text=row["text"] or "",
        score=score,
        title=row["title"] or "",
        page=row["page"],
        heading_path=tuple(heading.split(HEADING_SEP)) if heading else (),
        line_start=row["line_start"],
        line_end=row["line_end"],
        char_start=int(row["char_start"] or 0),
        char_end=int(row["char_end"] or 0),
        ranks={mode: rank},
    )


def _dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # removed by a concurrent cleanup
                total += (Path(dirpath) / name).stat().st_size
    return total


class _WriterLock:
    """An OS file lock held for the life of the writer; released by the OS if the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        if self._file is not None:
            return
        f = open(self._path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            self._lock(f)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise IndexBusyError(
                f"Another ftrag process is indexing this library (pid {pid}).",
                "Wait for it to finish or close it, then try again.",
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self._unlock(self._file)
        finally:
            self._file.close()
            self._file = None

    # The lock covers one byte far past the pid text, so that on Windows (mandatory locks)
    # another process can still read the pid.
    if sys.platform == "win32":

        @staticmethod
        def _lock(f: IO[str]) -> None:
            import msvcrt

            f.seek(1 << 20)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)

        @staticmethod
        def _unlock(f: IO[str]) -> None:
            import msvcrt

            f.seek(1 << 20)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)

    else:

        @staticmethod
        def _lock(f: IO[str]) -> None:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

        @staticmethod
        def _unlock(f: IO[str]) -> None:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@dataclass
class _Diagnosis:
    """What check_health found, and what repair needs to fix it."""

    docs: dict[str, DocumentRecord]
    problems: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    orphans: dict[str, set[str]] = field(default_factory=dict)
    dup_docs: set[str] = field(default_factory=set)
    bad_docs: set[str] = field(default_factory=set)
    missing_active: bool = False
    missing_build: bool = False


class Store:
    """One index directory.  Plain data in and out; no LanceDB object escapes this class."""

    def __init__(self, index_dir: Path, *, read_only: bool = False) -> None:
        self.index_dir = Path(index_dir)
        self.read_only = read_only
        if not read_only:
            self.index_dir.mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(self.index_dir, read_consistency_interval=timedelta(0))
        self._tables: dict[str, Any] = {}
        self._lock = _WriterLock(self.index_dir / LOCK_NAME)
        self._commits = 0
        self._meta_cache: dict[str, str] | None = None
        self._meta_lock = threading.RLock()
        if not read_only:
            self._initialise()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.release_writer()
        self._tables.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def acquire_writer(self) -> None:
        self._check_writable()
        self._meta_cache = None
        self._lock.acquire()

    def release_writer(self) -> None:
        self._lock.release()

    def _check_writable(self) -> None:
        if self.read_only:
            raise PermissionError("this Store was opened read-only")

    def _initialise(self) -> None:
        names = self._table_names()
        if DOCUMENTS not in names:
            self._db.create_table(DOCUMENTS, schema=DOCUMENT_SCHEMA, exist_ok=True)
        meta = self._meta() if META in names else {}
        if not meta.get("active_chunks_table"):
            # A crash during a first start may have left chunks_1 behind: overwrite it.
            self._create_chunk_table(f"{CHUNK_PREFIX}1", "", 0)
            if META not in names:
                self._db.create_table(META, schema=META_SCHEMA, exist_ok=True)
            self._set_meta(
                {
                    "active_chunks_table": f"{CHUNK_PREFIX}1",
                    "embed_model": "",
                    "embed_dim": "0",
                    "table_seq": "1",
                    "building_chunks_table": "",
                    "building_model": "",
                    "building_dim": "0",
                }
            )

    # ------------------------------------------------------------------ low level

    def _table_names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            resp = self._db.list_tables(page_token=token)
            names.extend(resp.tables)
            token = resp.page_token
            if not token:
                return names

    def _open(self, name: str) -> Any:
        tbl = self._tables.get(name)
        if tbl is None:
            tbl = self._db.open_table(name)
            self._tables[name] = tbl
        return tbl

    def _try_open(self, name: str) -> Any | None:
        try:
            return self._open(name)
        except (FileNotFoundError, ValueError):
            return None

    def _drop(self, name: str) -> None:
        self._tables.pop(name, None)
        with contextlib.suppress(FileNotFoundError, ValueError):  # already gone
            self._db.drop_table(name)

    def _create_chunk_table(self, name: str, model: str, dim: int) -> Any:
        if name in self._table_names():
            self._drop(name)  # a leftover of an interrupted start or switch
        tbl = self._db.create_table(name, schema=chunk_schema(model, dim))
        tbl.create_index("text", config=FTS())
        self._tables[name] = tbl
        return tbl

    def _meta(self) -> dict[str, str]:
        # Only the lock holder changes meta, so the lock holder may trust its own copy.  The
        # copy is read and written under `_meta_lock`: a reader thread must never cache the old
        # values while a writer thread is committing new ones.
        with self._meta_lock:
            if self._lock.held and self._meta_cache is not None:
                return dict(self._meta_cache)
            tbl = self._try_open(META)
            if tbl is None:
                return {}
            meta = {r["key"]: r["value"] or "" for r in tbl.search().limit(None).to_list()}
            self._meta_cache = meta
            return dict(meta)

    def _set_meta(self, values: dict[str, str]) -> None:
        """Write several keys in one commit (the model swap depends on this)."""
        rows = pa.Table.from_pylist(
            [{"key": k, "value": v} for k, v in values.items()], schema=META_SCHEMA
        )
        with self._meta_lock:
            self._meta_cache = None
            self._merge(self._open(META), "key", rows)

    def _active(self) -> tuple[str, str, int]:
        meta = self._meta()
        return (
            meta.get("active_chunks_table", ""),
            meta.get("embed_model", ""),
            int(meta.get("embed_dim", "0") or 0),
        )

    def _building(self) -> tuple[str, str, int] | None:
        meta = self._meta()
        name = meta.get("building_chunks_table", "")
        if not name:
            return None
        return name, meta.get("building_model", ""), int(meta.get("building_dim", "0") or 0)

    def _chunk_tables(self) -> list[tuple[str, str, int]]:
        """(name, model, dim) of the active table, then the build table if any."""
        tables = []
        active = self._active()
        if active[0]:
            tables.append(active)
        build = self._building()
        if build is not None:
            tables.append(build)
        return tables

    def _read(
        self, tbl: Any, columns: list[str], where: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        q = tbl.search().select(columns)
        if where:
            q = q.where(where)
        rows: list[dict[str, Any]] = q.limit(limit).to_list()
        return rows

    def _delete(self, tbl: Any, where: str) -> None:
        _retry(lambda: tbl.delete(where))
        self._commits += 1

    def _update(self, tbl: Any, where: str, values: dict[str, Any]) -> None:
        _retry(lambda: tbl.update(where=where, values=values))
        self._commits += 1

    def _merge(
        self,
        tbl: Any,
        on: str,
        data: pa.Table,
        *,
        insert: bool = True,
        delete_unmatched: str | None = None,
    ) -> None:
        """One merge_insert commit: update matched rows, optionally insert new ones and delete
        the target rows matching `delete_unmatched` that the source does not have."""

        def run() -> None:
            builder = tbl.merge_insert(on).when_matched_update_all()
            if insert:
                builder = builder.when_not_matched_insert_all()
            if delete_unmatched is not None:
                builder = builder.when_not_matched_by_source_delete(delete_unmatched)
            # Null vectors are legitimate here (not embedded yet); lancedb's default rejects them.
            builder.execute(data, on_bad_vectors="null")

        _retry(run)
        self._commits += 1

    def _with_active(self, fn: Callable[[Any, str, int], T], default: T) -> T:
        """Run a read on the active table; if a model swap dropped it meanwhile, read again."""
        for attempt in range(2):
            name, model, dim = self._active()
            tbl = self._try_open(name) if name else None
            if tbl is None:
                return default
            try:
                return fn(tbl, model, dim)
            except Exception:
                self._tables.pop(name, None)
                if attempt == 1 or self._active()[0] == name:
                    raise
        return default

    # ------------------------------------------------------------------ manifest

    def documents(self) -> list[DocumentRecord]:
        tbl = self._try_open(DOCUMENTS)
        if tbl is None:
            return []
        return [_row_to_doc(r) for r in self._read(tbl, DOCUMENT_SCHEMA.names)]

    def document_by_path(self, path: str) -> DocumentRecord | None:
        tbl = self._try_open(DOCUMENTS)
        if tbl is None:
            return None
        rows = self._read(tbl, DOCUMENT_SCHEMA.names, f"path = {sql_quote(path)}", 1)
        return _row_to_doc(rows[0]) if rows else None

    def document(self, doc_id: str) -> DocumentRecord | None:
        tbl = self._try_open(DOCUMENTS)
        if tbl is None:
            return None
        rows = self._read(tbl, DOCUMENT_SCHEMA.names, f"doc_id = {sql_quote(doc_id)}", 1)
        return _row_to_doc(rows[0]) if rows else None

    def put_document(self, rec: DocumentRecord) -> None:
        """Insert or update the manifest row of `rec.doc_id`."""
        self.put_documents([rec])

    def put_documents(self, recs: Sequence[DocumentRecord]) -> None:
        """Insert or update several manifest rows in one commit."""
        self._check_writable()
        if not recs:
            return
        rows = pa.Table.from_pylist([_doc_to_row(r) for r in recs], schema=DOCUMENT_SCHEMA)
        self._merge(self._open(DOCUMENTS), "doc_id", rows)

    def remove_document(self, doc_id: str) -> None:
        """Delete the document's chunks from every chunk table, then its manifest row."""
        self._check_writable()
        where = f"doc_id = {sql_quote(doc_id)}"
        for name, _model, _dim in self._chunk_tables():
            self._delete(self._open(name), where)
        self._delete(self._open(DOCUMENTS), where)

    def rename_document(self, doc_id: str, new_path: str, *, size: int, mtime_ns: int) -> None:
        """Re-point a moved file: the path changes in chunks and manifest, vectors stay."""
        self._check_writable()
        where = f"doc_id = {sql_quote(doc_id)}"
        for name, _model, _dim in self._chunk_tables():
            self._update(self._open(name), where, {"path": new_path})
        values = {"path": new_path, "size": size, "mtime_ns": mtime_ns}
        self._update(self._open(DOCUMENTS), where, values)

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
            embed_model=self._active()[1],
            indexed_at=rec.indexed_at or time.time(),
        )
        self.replace_many([(indexed, chunks, vectors)])

    def replace_many(self, items: Sequence[ReplaceItem]) -> None:
        """`replace_chunks` for a batch of documents: one commit per chunk table for the whole
        batch, then one manifest commit.  Records are written as given, except that `chunks`
        is set to the number of chunks (an empty list removes a document's chunks, e.g. for a
        file that now fails to parse)."""
        self._check_writable()
        if not items:
            return
        doc_ids = [rec.doc_id for rec, _c, _v in items]
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError("a document appears twice in one batch")
        active_name, active_model, active_dim = self._active()
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
            rows = [_chunk_row(rec, c) for c in chunks]
            if len({r["id"] for r in rows}) != len(rows):
                raise ValueError(f"duplicate chunk ordinals in document {rec.doc_id}")
            base.extend(rows)
            given.extend(vectors if vectors is not None else [None] * len(chunks))
        batch_filter = _in_filter("doc_id", doc_ids)
        targets: list[tuple[str, str, int, Sequence[Sequence[float] | None]]] = [
            (active_name, active_model, active_dim, given)
        ]
        build = self._building()
        if build is not None:
            # Rows new to the build table reuse any vector it already has for the same text.
            known = self._vectors_by_hash(build[0], [r["embed_text_hash"] for r in base])
            targets.append((*build, [known.get(r["embed_text_hash"]) for r in base]))
        for name, model, dim, vecs in targets:
            tbl = self._open(name)
            if not base:
                self._delete(tbl, batch_filter)
                continue
            rows = [dict(row, embed_model=model) for row in base]
            if model:
                for row, vec in zip(rows, vecs, strict=True):
                    row["vector"] = vec
            data = pa.Table.from_pylist(rows, schema=chunk_schema(model, dim))
            self._merge(tbl, "id", data, delete_unmatched=batch_filter)
        self.put_documents([replace(rec, chunks=len(chunks)) for rec, chunks, _v in items])

    def _vectors_by_hash(self, table: str, hashes: Sequence[str]) -> dict[str, list[float]]:
        tbl = self._try_open(table)
        if tbl is None or "vector" not in tbl.schema.names:
            return {}
        wanted = sorted(set(hashes))
        found: dict[str, list[float]] = {}
        for batch in _batches(wanted):
            where = f"{_in_filter('embed_text_hash', batch)} AND vector IS NOT NULL"
            for r in self._read(tbl, ["embed_text_hash", "vector"], where):
                found[r["embed_text_hash"]] = list(r["vector"])
        return found

    def cached_vectors(self, embed_text_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Vectors already stored in the active table, by embed-text hash."""
        name = self._active()[0]
        return self._vectors_by_hash(name, embed_text_hashes) if name else {}

    def doc_chunk_count(self, doc_id: str) -> int:
        return self._with_active(
            lambda tbl, _m, _d: int(tbl.count_rows(f"doc_id = {sql_quote(doc_id)}")), 0
        )

    def chunk_texts(self, doc_id: str) -> list[str]:
        def read(tbl: Any, _model: str, _dim: int) -> list[str]:
            rows = self._read(tbl, ["ordinal", "text"], f"doc_id = {sql_quote(doc_id)}")
            return [r["text"] for r in sorted(rows, key=lambda r: r["ordinal"])]

        return self._with_active(read, [])

    # ------------------------------------------------------------------ embedding model

    def embedding_model(self) -> tuple[str, int]:
        _name, model, dim = self._active()
        return model, dim

    def building_model(self) -> tuple[str, int] | None:
        build = self._building()
        return None if build is None else (build[1], build[2])

    def begin_switch(self, model: str, dim: int) -> None:
        """Start (or resume) building a chunk table for `model` beside the active one."""
        self._check_writable()
        if model and dim <= 0:
            raise ValueError(f"embedding dimension must be positive, got {dim}")
        if not model:
            dim = 0
        build = self._building()
        if build is not None:
            if build[1:] == (model, dim):
                return
            self.abandon_switch()
        active_name, active_model, active_dim = self._active()
        if (active_model, active_dim) == (model, dim):
            return
        meta = self._meta()
        seq = max(int(meta.get("table_seq", "1") or 1), _table_number(active_name)) + 1
        name = f"{CHUNK_PREFIX}{seq}"
        new = self._create_chunk_table(name, model, dim)
        old = self._open(active_name)
        copy_cols = [c for c in chunk_schema("", 0).names if c != "embed_model"]
        rows = old.search().select(copy_cols).limit(None).to_arrow()
        if rows.num_rows:
            n = rows.num_rows
            rows = rows.append_column("embed_model", pa.array([model] * n, pa.string()))
            if model:
                rows = rows.append_column("vector", pa.nulls(n, type=pa.list_(pa.float32(), dim)))
            data = rows.select(chunk_schema(model, dim).names).cast(chunk_schema(model, dim))
            _retry(lambda: new.add(data, on_bad_vectors="null"))
            self._commits += 1
        self._set_meta(
            {
                "table_seq": str(seq),
                "building_chunks_table": name,
                "building_model": model,
                "building_dim": str(dim),
            }
        )

    def _target_for_vectors(self) -> tuple[str, str, int]:
        build = self._building()
        return build if build is not None else self._active()

    def rows_missing_vectors(self, limit: int) -> list[tuple[str, str]]:
        """(chunk id, embed-text hash) of rows without a vector, in the build table if one
        exists, else in the active table."""
        return [(cid, h) for cid, h, _t in self.missing_vector_inputs(limit)]

    def missing_vector_inputs(self, limit: int) -> list[tuple[str, str, str]]:
        """Like `rows_missing_vectors`, plus the text to embed (no re-parsing needed)."""
        name, model, _dim = self._target_for_vectors()
        tbl = self._try_open(name) if name else None
        if tbl is None or not model or limit <= 0:
            return []
        rows = self._read(tbl, ["id", "embed_text_hash", "embed_text"], "vector IS NULL", limit)
        return [(r["id"], r["embed_text_hash"], r["embed_text"] or "") for r in rows]

    def count_missing_vectors(self) -> int:
        """How many rows `rows_missing_vectors` would eventually return."""
        name, model, _dim = self._target_for_vectors()
        tbl = self._try_open(name) if name else None
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
        self._merge(self._open(name), "id", data, insert=False)

    def finish_switch(self) -> bool:
        """Swap the build table in if every row has its vector.  False while rows are missing
        (or when no switch is running)."""
        self._check_writable()
        build = self._building()
        if build is None:
            return False
        name, model, dim = build
        tbl = self._open(name)
        if model and tbl.count_rows("vector IS NULL") > 0:
            return False
        self._ensure_fts(tbl)
        self._optimize_table(tbl, DEFAULT_KEEP_VERSIONS)
        old = self._active()[0]
        self._set_meta(
            {
                "active_chunks_table": name,
                "embed_model": model,
                "embed_dim": str(dim),
                "building_chunks_table": "",
                "building_model": "",
                "building_dim": "0",
            }
        )
        if old and old != name:
            self._drop(old)
        return True

    def abandon_switch(self) -> None:
        self._check_writable()
        build = self._building()
        if build is None:
            return
        self._set_meta({"building_chunks_table": "", "building_model": "", "building_dim": "0"})
        self._drop(build[0])

    # ------------------------------------------------------------------ search

    def keyword_search(self, query: str, k: int, *, where: str | None = None) -> list[Hit]:
        """BM25 over chunk text.  Any query text is safe; an empty one finds nothing."""
        if k <= 0 or not query.strip():
            return []

        def run(tbl: Any, _model: str, _dim: int) -> list[Hit]:
            try:
                rows = self._fts(tbl, query, k, where)
            except Exception as exc:
                if "index" in str(exc).lower() and "inverted" in str(exc).lower():
                    if self.read_only:
                        return []
                    self._ensure_fts(tbl)
                # Whatever the query parser disliked, plain words are always valid.
                words = " ".join(re.findall(r"\w+", query))
                if not words:
                    return []
                rows = self._fts(tbl, words, k, where)
            return [
                _row_to_hit(r, float(r["_score"]), "keyword", i)
                for i, r in enumerate(rows, start=1)
            ]

        return self._with_active(run, [])

    def _fts(self, tbl: Any, query: str, k: int, where: str | None) -> list[dict[str, Any]]:
        q = tbl.search(query, query_type="fts", fts_columns="text")
        if where:
            q = q.where(where, prefilter=True)
        rows: list[dict[str, Any]] = q.select([*HIT_COLUMNS, "_score"]).limit(k).to_list()
        return rows

    def vector_search(
        self, vector: Sequence[float], k: int, *, where: str | None = None
    ) -> list[Hit]:
        """Cosine nearest neighbours in the active table; [] when it has no vectors.
        `score` is 1 - cosine distance."""
        if k <= 0:
            return []

        def run(tbl: Any, model: str, dim: int) -> list[Hit]:
            if not model:
                return []
            if len(vector) != dim:
                raise DimensionMismatch(
                    f"query vector has {len(vector)} dimensions; the index ({model}) has {dim}"
                )
            q = tbl.search(
                [float(x) for x in vector], query_type="vector", vector_column_name="vector"
            ).distance_type("cosine")
            if where:
                q = q.where(where, prefilter=True)
            rows = q.select([*HIT_COLUMNS, "_distance"]).limit(k).to_list()
            return [
                _row_to_hit(r, 1.0 - float(r["_distance"]), "vector", i)
                for i, r in enumerate(rows, start=1)
            ]

        return self._with_active(run, [])

    def has_vectors(self) -> bool:
        def run(tbl: Any, model: str, _dim: int) -> bool:
            # One matching row is enough: no need to count (that would scan every vector).
            return bool(model) and bool(self._read(tbl, ["id"], "vector IS NOT NULL", 1))

        return self._with_active(run, False)

    # ------------------------------------------------------------------ maintenance

    def _ensure_fts(self, tbl: Any) -> None:
        for idx in tbl.list_indices():
            if idx.index_type == "FTS" and list(idx.columns) == ["text"]:
                return
        _retry(lambda: tbl.create_index("text", config=FTS(), replace=True))
        self._commits += 1

    def ensure_fts_index(self) -> None:
        """Create the full-text index on every chunk table that lacks one."""
        self._check_writable()
        for name, _model, _dim in self._chunk_tables():
            self._ensure_fts(self._open(name))

    def _optimize_table(self, tbl: Any, keep: timedelta) -> None:
        with warnings.catch_warnings():
            # lancedb warns about keep=0; the caller asked for it knowingly (see optimize()).
            warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
            _retry(lambda: tbl.optimize(cleanup_older_than=keep))

    def optimize(self, *, keep_versions: timedelta = DEFAULT_KEEP_VERSIONS) -> None:
        """Compact files, fold new rows into the FTS index, and delete versions older than
        `keep_versions` (pass ``timedelta(0)`` only when no reader can be open)."""
        self._check_writable()
        names = [DOCUMENTS, META, *(t[0] for t in self._chunk_tables())]
        for name in names:
            tbl = self._try_open(name)
            if tbl is not None:
                self._optimize_table(tbl, keep_versions)
        self._commits = 0

    def maybe_optimize(self, every_commits: int = 50) -> bool:
        """Optimize once `every_commits` commits have accumulated; True if it ran."""
        if self._commits < every_commits:
            return False
        self.optimize()
        return True

    def stats(self) -> dict[str, Any]:
        counts = Counter(d.status.value for d in self.documents())
        _name, model, dim = self._active()
        chunks = self._with_active(lambda tbl, _m, _d: int(tbl.count_rows()), 0)
        build = self._building()
        progress: float | None = None
        if build is not None:
            btbl = self._try_open(build[0])
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
            "index_bytes": _dir_bytes(self.index_dir),
            "vectors_missing": missing_now,
        }

    def _diagnose(self) -> _Diagnosis:
        """Find inconsistencies between the manifest and the chunk tables."""
        diag = _Diagnosis(docs={d.doc_id: d for d in self.documents()})
        docs = diag.docs
        tables = self._chunk_tables()
        referenced = {t[0] for t in tables}
        for name in self._table_names():
            if _is_chunk_table(name) and name not in referenced:
                diag.stray.append(name)
                diag.problems.append(f"chunk table {name} is not used by the index")
        per_table: list[Counter[str] | None] = []
        for i, (name, _model, _dim) in enumerate(tables):
            tbl = self._try_open(name)
            if tbl is None:
                diag.problems.append(f"chunk table {name} is missing")
                diag.missing_active = diag.missing_active or i == 0
                diag.missing_build = diag.missing_build or i == 1
                per_table.append(None)
                continue
            rows = tbl.search().select(["id", "doc_id"]).limit(None).to_arrow()
            ids: list[str] = rows.column("id").to_pylist()
            doc_ids: list[str] = rows.column("doc_id").to_pylist()
            id_to_doc = dict(zip(ids, doc_ids, strict=True))
            for cid, times in Counter(ids).items():
                if times > 1:
                    diag.problems.append(f"chunk id {cid} appears {times} times in {name}")
                    diag.dup_docs.add(id_to_doc[cid])
            per_doc = Counter(doc_ids)
            per_table.append(per_doc)
            lost = {d for d in per_doc if d not in docs}
            if lost:
                diag.orphans[name] = lost
                diag.problems.append(
                    f"{sum(per_doc[d] for d in lost)} chunks in {name} belong to no document"
                )
        active_counts = per_table[0] if per_table else None
        if active_counts is not None:
            for d in docs.values():
                have = active_counts.get(d.doc_id, 0)
                if d.status == DocStatus.INDEXED and have != d.chunks:
                    diag.problems.append(
                        f"{d.path}: the manifest says {d.chunks} chunks, the index has {have}"
                    )
                    diag.bad_docs.add(d.doc_id)
            build_counts = per_table[1] if len(per_table) > 1 else None
            if build_counts is not None:
                for doc_id in sorted((set(active_counts) | set(build_counts)) & set(docs)):
                    if active_counts[doc_id] != build_counts[doc_id]:
                        diag.problems.append(
                            f"{docs[doc_id].path}: the table being built disagrees with the "
                            "active one"
                        )
                        diag.bad_docs.add(doc_id)
        return diag

    def check_health(self) -> list[str]:
        """Inconsistencies between the manifest and the chunk tables; [] when healthy."""
        return self._diagnose().problems

    def repair(self) -> list[str]:
        """Fix what `check_health` finds: drop stray tables, delete orphan and duplicated
        chunks, and mark affected documents pending so the next sync re-indexes them.
        Returns what was done."""
        self._check_writable()
        diag = self._diagnose()
        if not diag.problems:
            return []
        done: list[str] = []
        docs = diag.docs
        for name in diag.stray:
            self._drop(name)
            done.append(f"dropped unused chunk table {name}")
        if diag.missing_build:
            self._set_meta({"building_chunks_table": "", "building_model": "", "building_dim": "0"})
            done.append("abandoned the model switch whose table was missing")
        if diag.missing_active:
            name, model, dim = self._active()
            self._create_chunk_table(name, model, dim)
            diag.bad_docs |= set(docs)
            done.append("recreated the missing chunk table; every document will be re-indexed")
        for name, lost in diag.orphans.items():
            tbl = self._open(name)
            for batch in _batches(sorted(lost)):
                self._delete(tbl, _in_filter("doc_id", batch))
            done.append(f"deleted the chunks of {len(lost)} unknown documents from {name}")
        if diag.dup_docs:
            for name, _model, _dim in self._chunk_tables():
                tbl = self._open(name)
                for batch in _batches(sorted(diag.dup_docs)):
                    self._delete(tbl, _in_filter("doc_id", batch))
            done.append(
                f"deleted the chunks of {len(diag.dup_docs)} documents with duplicate chunks"
            )
        pending = sorted((diag.bad_docs | diag.dup_docs) & set(docs))
        if pending:
            tbl = self._open(DOCUMENTS)
            for batch in _batches(pending):
                self._update(tbl, _in_filter("doc_id", batch), {"status": "pending"})
            done.append(f"marked {len(pending)} documents pending re-indexing")
        return done
