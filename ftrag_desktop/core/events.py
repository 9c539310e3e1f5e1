"""Typed events that core operations yield: sync progress and streamed answers.

The CLI prints them, the GUI turns them into signals, the tests collect them.  They are plain
frozen dataclasses so they can cross threads safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---- sync -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncStarted:
    root: str
    to_index: int
    unchanged: int
    to_remove: int
    renamed: int


@dataclass(frozen=True)
class FileStarted:
    path: str


@dataclass(frozen=True)
class FileIndexed:
    path: str
    chunks: int
    seconds: float
    embedded: int  # vectors computed for this file (0 when all came from the cache)


@dataclass(frozen=True)
class FileFailed:
    path: str
    reason: str


@dataclass(frozen=True)
class FileRemoved:
    path: str


@dataclass(frozen=True)
class FileRenamed:
    old_path: str
    new_path: str


@dataclass(frozen=True)
class SyncProgress:
    done: int
    total: int
    current: str
    files_per_s: float
    eta_s: float | None


@dataclass(frozen=True)
class EmbeddingProgress:
    """Vectors being filled in for chunks stored without one (first embedder, or a model switch)."""

    model: str
    done: int
    total: int


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not tied to one file (e.g. keyword-only mode)."""

    text: str


@dataclass(frozen=True)
class SyncSummary:
    root: str
    indexed: int = 0
    unchanged: int = 0
    touched: int = 0  # mtime changed, content did not: no re-embedding
    removed: int = 0
    renamed: int = 0
    failed: int = 0
    chunks_written: int = 0
    embedded: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    embedding: str = ""  # "semantic" | "keyword search only: <why>"
    failures: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class SyncFinished:
    summary: SyncSummary


SyncEvent = (
    SyncStarted
    | FileStarted
    | FileIndexed
    | FileFailed
    | FileRemoved
    | FileRenamed
    | SyncProgress
    | EmbeddingProgress
    | Notice
    | SyncFinished
)
