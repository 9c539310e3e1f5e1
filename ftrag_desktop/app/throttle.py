"""Display updates that arrive faster than anyone can read them: shown at most a few times a
second, always ending on the newest.

A sync sends a progress event and a "now reading" event for every file: thousands a minute
under churn (10,959 progress updates in one run of `bench/churn.py --gui`, each a label and a
status bar redrawn on the GUI thread).  `Latest` shows the first value at once, keeps only the
newest of those that follow within `interval_ms`, and shows that one when the interval ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QTimer

__all__ = ["PROGRESS_EVERY_MS", "Latest"]

T = TypeVar("T")
PROGRESS_EVERY_MS = 150  # indexing progress is redrawn at most this often (it comes per file)


class Latest(QObject, Generic[T]):
    """`show(value)` for the newest value `push`ed, at most once per `interval_ms`."""

    def __init__(self, show: Callable[[T], None], interval_ms: int, parent: QObject) -> None:
        super().__init__(parent)
        self._show = show
        self._pending: list[T] = []  # the newest value not shown yet, if any
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timeout)

    def push(self, value: T) -> None:
        """Show `value` now if nothing was shown in the last interval, else when it ends
        (unless a newer value comes first)."""
        if self._timer.isActive():
            self._pending[:] = [value]
            return
        self._pending.clear()
        self._show(value)
        self._timer.start()

    def drop(self) -> None:
        """Forget the value waiting to be shown: the caller just showed something newer."""
        self._pending.clear()

    def pending(self) -> bool:
        return bool(self._pending)

    def _on_timeout(self) -> None:
        if not self._pending:
            return  # quiet: the next value is shown at once
        value = self._pending.pop()
        self._show(value)
        self._timer.start()
