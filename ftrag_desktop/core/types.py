"""Plain data shared across the core: parsed blocks, chunks, search hits, document records.

These are frozen dataclasses of plain values so that they cross process and thread
boundaries (parse workers, Qt signals) without dragging live handles along.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Block:
    """A stretch of a document's text that has one location.

    For a PDF a block is one page's text; for Markdown one section under a heading path; for
    plain text, HTML and DOCX the whole text (or a large slice of it).  `start` is the
    character offset of `text` within its *location unit*: the page text for PDFs, the whole
    decoded text for every other format.  `line_start` is the 1-based line of `text[0]` in the
    source, where the format has lines.
    """

    text: str
    start: int = 0
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    line_start: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    """What a parser returns: a title, the blocks, and the page count where there are pages."""

    title: str
    blocks: tuple[Block, ...]
    pages: int | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage, with everything a viewer needs to find it again.

    `text` is the clean passage that is stored and shown; `embed_text` is what gets embedded
    (the document title and heading path, then the passage).  `char_start`/`char_end` are
    offsets in the block's location unit (see `Block`).  `ordinal` is the chunk's position in
    its document.
    """

    ordinal: int
    text: str
    embed_text: str
    char_start: int
    char_end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    line_start: int | None = None
    line_end: int | None = None


class DocStatus(StrEnum):
    INDEXED = "indexed"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True)
class DocumentRecord:
    """One row of the documents manifest."""

    doc_id: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: DocStatus
    error: str = ""
    chunks: int = 0
    parser_version: int = 0
    embed_model: str = ""
    indexed_at: float = 0.0
    title: str = ""
    pages: int | None = None


@dataclass(frozen=True)
class Hit:
    """One search result: the passage, where it is, and how well it matched."""

    chunk_id: str
    doc_id: str
    path: str
    text: str
    score: float
    title: str = ""
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    line_start: int | None = None
    line_end: int | None = None
    char_start: int = 0
    char_end: int = 0
    ranks: dict[str, int] = field(default_factory=dict)  # mode -> 1-based rank in that list

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: what the CLI prints and conversations store."""
        return {
            "path": self.path,
            "title": self.title,
            "page": self.page,
            "heading_path": list(self.heading_path),
            "line_start": self.line_start,
            "line_end": self.line_end,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "score": self.score,
            "ranks": dict(self.ranks),
            "text": self.text,
            "chunk_id": self.chunk_id,
        }

    def location(self) -> str:
        """A human label of where the passage is: page, heading path, or line range."""
        if self.page is not None:
            return f"p. {self.page}"
        if self.heading_path:
            return " > ".join(self.heading_path)
        if self.line_start is not None:
            return f"lines {self.line_start}-{self.line_end}"
        return ""
