"""Comparisons written into their conversations, off the GUI thread, in order.

The main window holds the current conversation in memory and saves it after every answer, so a
comparison for that conversation is added to that same object (and saved from a copy): neither
window's next save can drop the other's changes.  A comparison for another conversation (the
user moved on while it ran) is read from disk, changed and written back on a worker.  Writes of
one conversation run one after another, never overtaking each other.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.compare_record import Comparison
from ftrag_desktop.core.conversations import Conversation

__all__ = ["ComparisonSaver"]

Change = Callable[[Conversation], None]


@dataclass
class _Pending:
    snapshot: Conversation | None = None  # a copy of the in-memory conversation, to write
    live: Conversation | None = None  # that in-memory conversation
    changes: list[Change] = field(default_factory=list)  # for a conversation read from disk


def _title_for(question: str) -> str:
    return "Compare: " + " ".join(question.split())[:50]


def _adder(comparison: Comparison) -> Change:
    def add(conv: Conversation) -> None:
        if conv.comparison(comparison.id) is None:
            conv.comparisons.append(copy.deepcopy(comparison))

    return add


def _marker(comparison_id: str, best: int | None) -> Change:
    def mark(conv: Conversation) -> None:
        stored = conv.comparison(comparison_id)
        if stored is not None:
            stored.best = best

    return mark


class ComparisonSaver(QObject):
    saved = Signal(object)  # the Conversation written (the in-memory one when it is current)
    failed = Signal(str)  # a message for people

    def __init__(
        self,
        controller: AppController,
        current_conversation: Callable[[], Conversation | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._controller = controller
        self._current = current_conversation
        self._own: Conversation | None = None  # made here when there was no conversation
        self._pending: dict[str, _Pending] = {}
        self._writing: set[str] = set()

    def conversation(self) -> Conversation | None:
        """The conversation comparisons go into: the main window's current one, if any."""
        return self._current() or self._own

    def add(self, comparison: Comparison, conv_id: str | None) -> str:
        """Store `comparison` in conversation `conv_id` (None: the current one, or a new one);
        returns the id of the conversation it went into."""
        live = self.conversation()
        if conv_id is None and live is None:
            first = comparison.configs[0]
            live = Conversation(
                uuid.uuid4().hex, _title_for(comparison.question), first.model, first.rag
            )
            self._own = live
        if conv_id is None and live is not None:
            conv_id = live.id
        assert conv_id is not None
        if live is not None and live.id == conv_id:
            live.comparisons.append(comparison)  # the very object the window shows
            live.updated_at = time.time()
            self._queue(conv_id, snapshot=live)
        else:
            self._queue(conv_id, change=_adder(comparison))
        return conv_id

    def set_best(self, conv_id: str, comparison_id: str, best: int | None) -> None:
        live = self.conversation()
        mark = _marker(comparison_id, best)
        if live is not None and live.id == conv_id:
            mark(live)
            live.updated_at = time.time()
            self._queue(conv_id, snapshot=live)
        else:
            self._queue(conv_id, change=mark)

    def is_writing(self) -> bool:
        return bool(self._writing or self._pending)

    def _queue(
        self, conv_id: str, *, snapshot: Conversation | None = None, change: Change | None = None
    ) -> None:
        pending = self._pending.setdefault(conv_id, _Pending())
        if snapshot is not None:
            pending.snapshot = copy.deepcopy(snapshot)  # the worker must not read a live object
            pending.live = snapshot
        if change is not None:
            pending.changes.append(change)
        if conv_id not in self._writing:
            self._write(conv_id)

    def _write(self, conv_id: str) -> None:
        pending = self._pending.pop(conv_id, None)
        engine = self._controller.engine
        if pending is None or engine is None:
            self._writing.discard(conv_id)
            return
        self._writing.add(conv_id)
        store = engine.conversations

        def op() -> Conversation:
            conv = pending.snapshot if pending.snapshot is not None else store.load(conv_id)
            for change in pending.changes:
                change(conv)
            if pending.changes:
                conv.updated_at = time.time()
            store.save(conv)
            return conv

        def done(written: object) -> None:
            self.saved.emit(pending.live if pending.live is not None else written)
            self._write(conv_id)  # whatever was queued meanwhile

        def failed(message: str) -> None:
            self._writing.discard(conv_id)
            self._pending.pop(conv_id, None)
            self.failed.emit(message)

        run_in_background(op, on_done=done, on_error=failed, owner=self)
