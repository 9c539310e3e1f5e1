"""Conversations kept across restarts: one JSON file each, written atomically.

A conversation remembers its model and its RAG setting; every answer stores the model that
produced it, its sources (cited and retrieved, with page/heading/lines and offsets) and timings.
It also keeps the comparisons asked from it (`core.compare_record.Comparison`); files written
before comparisons existed load with none, and a damaged comparison is skipped, not fatal.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftrag_desktop.core.answer import AnswerResult, Source
from ftrag_desktop.core.compare_record import Comparison

log = logging.getLogger(__name__)


def source_to_dict(src: Source) -> dict[str, Any]:
    """A source as plain JSON-able data: what conversations store and views display."""
    return {"number": src.number, "cited": src.cited, **src.hit.to_dict()}


@dataclass
class Message:
    role: str  # "user" | "assistant"
    content: str
    model: str = ""
    created_at: float = field(default_factory=time.time)
    sources: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conversation:
    id: str
    title: str
    model: str
    rag: bool = True
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    messages: list[Message] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    def comparison(self, comparison_id: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.id == comparison_id), None)

    def add_exchange(self, result: AnswerResult) -> None:
        """Record a question and its answer, with everything that grounded it."""
        self.messages.append(Message("user", result.question))
        sources = [source_to_dict(s) for s in result.sources]
        stats = result.stats
        meta: dict[str, Any] = {
            "rag": result.rag,
            "num_ctx": result.num_ctx,
            "retrieval_s": result.retrieval_s,
            "first_token_s": result.first_token_s,
            "total_s": result.total_s,
            "search_mode": result.search_mode,
            "cancelled": result.cancelled,
        }
        if stats is not None:
            meta["prompt_tokens"] = stats.prompt_tokens
            meta["completion_tokens"] = stats.completion_tokens
        self.messages.append(
            Message("assistant", result.answer, model=result.model, sources=sources, meta=meta)
        )
        self.updated_at = time.time()


class ConversationStore:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)

    def _file(self, conv_id: str) -> Path:
        if not conv_id.isalnum():
            raise ValueError(f"bad conversation id: {conv_id!r}")
        return self._dir / f"{conv_id}.json"

    def new(self, title: str, model: str, rag: bool = True) -> Conversation:
        conv = Conversation(uuid.uuid4().hex, title, model, rag)
        self.save(conv)
        return conv

    def save(self, conv: Conversation) -> None:
        path = self._file(conv.id)
        # A name of its own per writer: two threads saving at once must not share a temp file.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(conv), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, conv_id: str) -> Conversation:
        raw = json.loads(self._file(conv_id).read_text(encoding="utf-8"))
        messages = [Message(**m) for m in raw.pop("messages", [])]
        comparisons = []
        for item in raw.pop("comparisons", None) or []:
            try:
                comparisons.append(Comparison.from_dict(item))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("conversation %s: skipped a damaged comparison (%s)", conv_id, exc)
        return Conversation(**raw, messages=messages, comparisons=comparisons)

    def list(self) -> list[Conversation]:
        """All conversations, most recently updated first; unreadable files are skipped."""
        out = []
        for path in self._dir.glob("*.json"):
            try:
                out.append(self.load(path.stem))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(out, key=lambda c: c.updated_at, reverse=True)

    def delete(self, conv_id: str) -> None:
        self._file(conv_id).unlink(missing_ok=True)
