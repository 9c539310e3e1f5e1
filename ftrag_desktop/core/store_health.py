"""Consistency of an index directory: what a crash can leave behind, found and repaired.

There are no transactions across LanceDB tables, so a crash between two writes can leave
chunk tables nobody refers to, chunks of no document, duplicated chunk ids, or a manifest that
disagrees with the chunk counts (see the write order in store.py).  `diagnose` finds these;
`repair` drops and deletes what is left over and marks the affected documents pending, so the
next sync re-indexes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ftrag_desktop.core.store_chunks import chunk_schema, is_chunk_table
from ftrag_desktop.core.store_lance import LanceTables, batches, in_filter
from ftrag_desktop.core.store_manifest import NO_BUILD, Manifest, Meta
from ftrag_desktop.core.types import DocStatus, DocumentRecord

__all__ = ["Diagnosis", "diagnose", "repair"]


@dataclass
class Diagnosis:
    """What `diagnose` found, and what `repair` needs to fix it."""

    docs: dict[str, DocumentRecord]
    problems: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    orphans: dict[str, set[str]] = field(default_factory=dict)
    dup_docs: set[str] = field(default_factory=set)
    bad_docs: set[str] = field(default_factory=set)
    missing_active: bool = False
    missing_build: bool = False


def diagnose(tables: LanceTables, manifest: Manifest, meta: Meta) -> Diagnosis:
    """Find inconsistencies between the manifest and the chunk tables."""
    diag = Diagnosis(docs={d.doc_id: d for d in manifest.all()})
    docs = diag.docs
    chunk_tables = meta.chunk_tables()
    referenced = {t[0] for t in chunk_tables}
    for name in tables.names():
        if is_chunk_table(name) and name not in referenced:
            diag.stray.append(name)
            diag.problems.append(f"chunk table {name} is not used by the index")
    per_table: list[Counter[str] | None] = []
    for i, (name, _model, _dim) in enumerate(chunk_tables):
        tbl = tables.try_open(name)
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
                        f"{docs[doc_id].path}: the table being built disagrees with the active one"
                    )
                    diag.bad_docs.add(doc_id)
    return diag


def repair(tables: LanceTables, manifest: Manifest, meta: Meta) -> list[str]:
    """Fix what `diagnose` finds: drop stray tables, delete orphan and duplicated chunks, and
    mark affected documents pending so the next sync re-indexes them.  Returns what was done."""
    diag = diagnose(tables, manifest, meta)
    if not diag.problems:
        return []
    done: list[str] = []
    docs = diag.docs
    for name in diag.stray:
        tables.drop(name)
        done.append(f"dropped unused chunk table {name}")
    if diag.missing_build:
        meta.write(dict(NO_BUILD))
        done.append("abandoned the model switch whose table was missing")
    if diag.missing_active:
        name, model, dim = meta.active()
        tables.create_with_fts(name, chunk_schema(model, dim))
        diag.bad_docs |= set(docs)
        done.append("recreated the missing chunk table; every document will be re-indexed")
    for name, lost in diag.orphans.items():
        _delete_documents(tables, tables.open(name), lost)
        done.append(f"deleted the chunks of {len(lost)} unknown documents from {name}")
    if diag.dup_docs:
        for name, _model, _dim in meta.chunk_tables():
            _delete_documents(tables, tables.open(name), diag.dup_docs)
        done.append(f"deleted the chunks of {len(diag.dup_docs)} documents with duplicate chunks")
    pending = sorted((diag.bad_docs | diag.dup_docs) & set(docs))
    if pending:
        manifest.mark_pending(pending)
        done.append(f"marked {len(pending)} documents pending re-indexing")
    return done


def _delete_documents(tables: LanceTables, tbl: Any, doc_ids: Iterable[str]) -> None:
    """Delete every chunk of these documents from `tbl`, a batch of ids per commit."""
    for batch in batches(sorted(doc_ids)):
        tables.delete(tbl, in_filter("doc_id", batch))
