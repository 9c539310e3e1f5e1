"""The chunk tables' shape: their names, their schema, and chunk rows to and from plain data.

One chunk table (``chunks_<n>``) exists per embedding model; a table whose model is ``""``
has no vector column (the keyword-only index).  Everything here is pure: reading and writing
the tables is `Store`'s work (store.py).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pyarrow as pa

from ftrag_desktop.core.types import Chunk, DocumentRecord, Hit

__all__ = [
    "CHUNK_PREFIX",
    "HIT_COLUMNS",
    "chunk_id",
    "chunk_row",
    "chunk_schema",
    "embed_text_hash",
    "is_chunk_table",
    "row_to_hit",
    "table_number",
]

CHUNK_PREFIX = "chunks_"
HEADING_SEP = " > "
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


def chunk_id(doc_id: str, ordinal: int) -> str:
    return f"{doc_id}:{ordinal:05d}"


def embed_text_hash(embed_text: str) -> str:
    """The vector cache key of a chunk: sha256 hex of the text that is embedded."""
    return hashlib.sha256(embed_text.encode("utf-8")).hexdigest()


def table_number(name: str) -> int:
    return int(name[len(CHUNK_PREFIX) :])


def is_chunk_table(name: str) -> bool:
    return re.fullmatch(rf"{CHUNK_PREFIX}\d+", name) is not None


def chunk_row(rec: DocumentRecord, c: Chunk) -> dict[str, Any]:
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


def row_to_hit(row: dict[str, Any], score: float, mode: str, rank: int) -> Hit:
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
