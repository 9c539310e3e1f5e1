"""The Library's indexing panel: what indexing is doing now, and what the index holds.

It shows the state of a sync (progress, speed, time left, the file being read, failures and
notices) and, below, the index's size and embedding model.  It only displays: the Library view
decides when, from the library service's events and `Engine.status()`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.document_table import STATUS_COLORS
from ftrag_desktop.app.formatting import escape, human_eta, human_size
from ftrag_desktop.app.throttle import PROGRESS_EVERY_MS, Latest
from ftrag_desktop.core.events import EmbeddingProgress, SyncProgress, SyncStarted, SyncSummary

__all__ = ["KEYWORD_ONLY_PREFIX", "IndexingPanel"]

# How `Engine.status()["search"]` and sync summaries begin when there are no vectors.
KEYWORD_ONLY_PREFIX = "keyword search only"
LINE_GAP = 4  # pixels between the lines of `SteadyLines`, as the panel's own spacing


class SteadyLines(QWidget):
    """Labels one per line, at a height that does not depend on their text, placed by hand.

    A label whose text changes asks its parent's layout to recompute, and from there every
    layout up to the window's: about 12 ms on the GUI thread for each progress update, several
    a second while a folder is indexed.  This widget has no layout and a fixed height, so a new
    text (or a line shown or hidden) goes no further than its own label.
    """

    def __init__(self, labels: list[QLabel], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels = labels
        for label in labels:
            label.setParent(self)
        self._line = max(label.sizeHint().height() for label in labels)
        self.setFixedHeight(self._line * len(labels) + LINE_GAP * (len(labels) - 1))
        self.setMinimumWidth(40)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(200, self.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for i, label in enumerate(self._labels):
            label.setGeometry(0, i * (self._line + LINE_GAP), self.width(), self._line)


class IndexingPanel(QGroupBox):
    """State, progress bar and details of the running sync, then the index's size and model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Indexing", parent)
        col = QVBoxLayout(self)
        col.setSpacing(4)
        self.state_label = QLabel("Opening the library…")
        font = self.state_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.state_label.setFont(font)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress.setRange(0, 0)
        self.progress.hide()
        self.detail_label = QLabel("")  # "12 of 150 files · 2.3 files/s · about 1 min left"
        self.current_label = QLabel("")
        self.current_label.setMinimumWidth(40)
        self.failures_label = QLabel("")
        self.failures_label.setTextFormat(Qt.TextFormat.RichText)
        self.failures_label.hide()
        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        self.notice_label.hide()
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Plain)
        line.setStyleSheet("color: palette(mid);")
        self.index_label = QLabel("")
        self.index_label.setWordWrap(True)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self._lines = SteadyLines([self.detail_label, self.current_label])
        for widget in (
            self.state_label,
            self.progress,
            self._lines,
            self.failures_label,
            self.notice_label,
        ):
            col.addWidget(widget)
        col.addStretch(1)
        col.addWidget(line)
        col.addWidget(self.index_label)
        col.addWidget(self.model_label)
        self._progress: Latest[SyncProgress] = Latest(
            self._show_progress_now, PROGRESS_EVERY_MS, self
        )
        self._current: Latest[str] = Latest(self._show_current_now, PROGRESS_EVERY_MS, self)

    # ---- the running sync --------------------------------------------------------------

    def show_state(self, text: str, detail: str | None = None) -> None:
        self._drop_pending()
        self.state_label.setText(text)
        if detail is not None:
            self.detail_label.setText(detail)

    def _drop_pending(self) -> None:
        """A new state is shown: progress of the run before must not overwrite it."""
        self._progress.drop()
        self._current.drop()

    def set_busy(self, busy: bool) -> None:
        """The progress bar shows while indexing runs; when it stops, it reads full."""
        self.progress.setVisible(busy)
        if not busy:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)

    def show_current(self, path: str) -> None:
        """The file being read, elided to fit; "" hides the line.  At most a few times a
        second: the newest file is shown."""
        self._current.push(path)

    def _show_current_now(self, path: str) -> None:
        self.current_label.setVisible(bool(path))
        if not path:
            self.current_label.setText("")
            return
        text = f"Now: {Path(path).name}"
        metrics = self.current_label.fontMetrics()
        width = max(self.current_label.width(), 200)
        self.current_label.setText(metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width))
        self.current_label.setToolTip(path)

    def show_failures(self, count: int) -> None:
        """How many files this run could not read, with a link to show them; 0 hides it."""
        color = STATUS_COLORS["failed"]
        files = "file" if count == 1 else "files"
        self.failures_label.setText(
            f"<span style='color:{color}'>{count} {files} could not be read</span>"
            " · <a href='failed'>show</a>"
        )
        self.failures_label.setVisible(count > 0)

    def show_notice(self, text: str) -> None:
        self.notice_label.setText(text)
        self.notice_label.show()

    def clear_run(self) -> None:
        """Forget the last run's failures and notice (a new run starts)."""
        self.failures_label.hide()
        self.notice_label.hide()

    def show_sync_started(self, event: SyncStarted) -> None:
        self._drop_pending()
        name = Path(event.root).name or event.root
        if event.to_index:
            self.state_label.setText(f"Indexing {name}")
            self.progress.setRange(0, event.to_index)
            self.progress.setValue(0)
            self.detail_label.setText(f"0 of {event.to_index:,} files")
        else:
            self.state_label.setText(f"Checking {name}")
            self.progress.setRange(0, 0)  # busy indicator
            self.detail_label.setText(f"{event.unchanged:,} files unchanged")
        self._show_current_now("")

    def show_sync_progress(self, event: SyncProgress) -> None:
        """Files done, speed and time left, and the file being read: at most a few times a
        second, the newest shown."""
        self._current.push(event.current)
        self._progress.push(event)

    def _show_progress_now(self, event: SyncProgress) -> None:
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(event.done)
        parts = [f"{event.done:,} of {event.total:,} files"]
        if event.files_per_s > 0:
            parts.append(f"{event.files_per_s:.1f} files/s")
        eta = human_eta(event.eta_s) if event.done < event.total else ""
        if eta:
            parts.append(eta)
        self.detail_label.setText(" · ".join(parts))

    def show_embedding_progress(self, event: EmbeddingProgress) -> None:
        self._drop_pending()
        self.state_label.setText("Computing vectors")
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(event.done)
        self.detail_label.setText(
            f"computing vectors: {event.done:,}/{event.total:,} passages ({event.model})"
        )
        self._show_current_now("")

    def show_sync_finished(self, summary: SyncSummary) -> None:
        self._drop_pending()
        parts = []
        if summary.indexed:
            parts.append(f"{summary.indexed:,} indexed")
        if summary.removed:
            parts.append(f"{summary.removed:,} removed")
        if summary.renamed:
            parts.append(f"{summary.renamed:,} renamed")
        if summary.failed:
            parts.append(f"{summary.failed:,} failed")
        if summary.embedded:
            parts.append(f"{summary.embedded:,} vectors computed")
        name = Path(summary.root).name or summary.root
        verb = "stopped" if summary.cancelled else "done"
        what = ", ".join(parts) if parts else "no changes"
        self.detail_label.setText(f"{name}: {verb} ({what}) in {summary.seconds:.1f} s")
        self._show_current_now("")

    def show_idle(self, folders: int, paused: int) -> None:
        """Nothing runs: up to date (saying how many of the `folders` are paused)."""
        self._drop_pending()
        self._show_current_now("")
        if not folders:
            self.state_label.setText("No folders watched yet")
        else:
            self.state_label.setText(
                "Up to date"
                + (f" · {paused} folder{'s' if paused > 1 else ''} paused" if paused else "")
            )

    # ---- the index ---------------------------------------------------------------------

    def show_index(self, status: dict[str, Any]) -> None:
        """Size, documents, passages and the embedding model, from `Engine.status()`."""
        documents = int(status.get("documents_total", len(status.get("documents") or [])))
        chunks = int(status.get("chunks") or 0)
        location = str(status.get("index_location") or "")
        if "://" in location:  # a shared index: its size is the object store's to tell
            where = f"Shared index: <b>{html.escape(location)}</b>"
        else:
            where = f"Index size: <b>{human_size(int(status.get('index_bytes') or 0))}</b>"
        self.index_label.setText(f"{where} · {documents:,} documents · {chunks:,} passages")
        model = str(status.get("embedding_model") or "")
        search = str(status.get("search") or "")
        if model:
            dim = status.get("embedding_dim")
            dims = f" ({dim} dimensions)" if dim else ""
            text = f"Embedding model: <b>{model}</b>{dims}<br>Search: {search}"
        elif not documents:
            configured = escape(str(status.get("configured_embedding_model") or "none"))
            text = f"Embedding model: <b>{configured}</b> (used once documents are added)"
        else:
            text = f"Embedding model: <b>none</b><br>Search: {search or KEYWORD_ONLY_PREFIX}"
        building = status.get("building_model")
        if building:
            missing = int(status.get("vectors_missing") or 0)
            text += f"<br>Adding vectors for <b>{building}</b> ({missing:,} to go)"
        self.model_label.setText(text)
