"""Pull a model from the Ollama library: a name (with suggestions), progress, Cancel.

The download runs on a worker (`ModelManager.pull`); each progress line updates the bar with
Ollama's status text and the bytes done.  Cancel sets the operation's event: the core closes the
stream, Ollama installs nothing, and the panel says so (no error).  Ollama's own error text is
shown word for word, with the hint.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.models_ops import (
    Failure,
    plain_text,
    reporting,
    size_text,
    throttled,
    tone,
)
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.llm import PullProgress
from ftrag_desktop.core.models import ModelManager

__all__ = ["SUGGESTIONS", "PullPanel"]

# A few small, popular library names; the field stays editable for any other.
SUGGESTIONS = (
    "llama3.2",
    "llama3.2:1b",
    "qwen2.5:0.5b",
    "qwen2.5:7b",
    "gemma2:2b",
    "smollm2:135m",
    "nomic-embed-text",
    "all-minilm",
)


class PullPanel(QGroupBox):
    """`pulled(name)` once a model is installed; `busy_changed(bool)` while a pull runs."""

    pulled = Signal(str)
    busy_changed = Signal(bool)

    def __init__(
        self, manager: Callable[[], ModelManager | None], parent: QWidget | None = None
    ) -> None:
        super().__init__("Pull a model from the Ollama library", parent)
        self._manager = manager
        self._cancel: threading.Event | None = None
        self._name = ""
        self._last: PullProgress | None = None
        self._failure: Failure | None = None

        self.name_combo = QComboBox()
        self.name_combo.setEditable(True)
        self.name_combo.addItems(SUGGESTIONS)
        self.name_combo.setCurrentText("")
        self.name_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.name_combo.setMinimumContentsLength(24)
        line = self.name_combo.lineEdit()
        assert line is not None
        line.setPlaceholderText("Model name, e.g. llama3.2 or qwen2.5:0.5b")
        line.returnPressed.connect(self._on_pull_clicked)
        self.name_combo.setToolTip(
            "Any name from the Ollama library (ollama.com/library), with an optional :tag"
        )
        self.pull_button = QPushButton("Pull")
        self.pull_button.clicked.connect(self._on_pull_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        row = QHBoxLayout()
        row.addWidget(QLabel("Name:"))
        row.addWidget(self.name_combo, 1)
        row.addWidget(self.pull_button)
        row.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.addLayout(row)
        column.addWidget(self.progress)
        column.addWidget(self.status)

    # ---- state -----------------------------------------------------------------------------

    def is_busy(self) -> bool:
        return self._cancel is not None

    def status_text(self) -> str:
        """The status line as plain text (for tests and accessibility)."""
        return plain_text(self.status.text())

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self._show(f"Cancelling the pull of {html.escape(self._name)}…")

    def _set_busy(self, busy: bool) -> None:
        self.pull_button.setEnabled(not busy)
        self.name_combo.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        self.busy_changed.emit(busy)

    def _show(self, rich: str) -> None:
        self.status.setText(rich)

    # ---- the pull --------------------------------------------------------------------------

    def start(self, name: str) -> None:
        """Pull `name` (also what the Pull button does with the typed name)."""
        name = name.strip()
        manager = self._manager()
        if not name or self.is_busy():
            return
        if manager is None:
            self._show("The library is still opening; try again in a moment.")
            return
        cancel = threading.Event()
        self._cancel, self._name, self._last, self._failure = cancel, name, None, None
        self.progress.setRange(0, 0)
        self._set_busy(True)
        self._show(f"Pulling <b>{html.escape(name)}</b>: contacting the Ollama library…")
        run_in_background(
            reporting(lambda: throttled(manager.pull(name, cancel), _is_download)),
            on_event=self._on_pull_event,
            on_done=lambda _: self._on_pull_done(cancel),
            on_error=self._on_pull_error,
            owner=self,
        )

    def _on_pull_clicked(self) -> None:
        self.start(self.name_combo.currentText())

    def _on_pull_event(self, event: object) -> None:
        if isinstance(event, Failure):
            self._failure = event
            return
        if not isinstance(event, PullProgress):
            return
        self._last = event
        name = html.escape(self._name)
        status = html.escape(event.status)
        if event.total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * min(event.completed, event.total) / event.total))
            pct = 100 * event.completed // event.total
            self._show(
                f"Pulling <b>{name}</b>: {status} — {size_text(event.completed)} of "
                f"{size_text(event.total)} ({pct}%)"
            )
        else:
            self.progress.setRange(0, 0)  # no size yet: a busy bar
            self._show(f"Pulling <b>{name}</b>: {status}")

    def _on_pull_done(self, cancel: threading.Event) -> None:
        name = self._name
        self._cancel = None
        self._set_busy(False)
        if self._failure is not None:
            self._show_failure(self._failure)
        elif cancel.is_set():
            self._show(
                f"Pull of <b>{html.escape(name)}</b> cancelled: nothing was installed. "
                "Pulling it again resumes the parts already downloaded."
            )
        elif self._last is not None and self._last.status == "success":
            self._show(f"<b>{html.escape(name)}</b> is installed.")
            self.pulled.emit(name)
        else:
            self._show_failure(
                Failure(
                    f"The pull of {name} ended without Ollama saying it succeeded.",
                    "Refresh the list to see whether it is installed, and pull again if not.",
                )
            )

    def _on_pull_error(self, message: str) -> None:
        self._cancel = None
        self._set_busy(False)
        self._show_failure(Failure(message, ""))

    def _show_failure(self, failure: Failure) -> None:
        hint = f"<br>{html.escape(failure.hint)}" if failure.hint else ""
        colour = tone(self, "error")
        self._show(
            f"<span style='color:{colour}'><b>{html.escape(failure.message)}</b></span>{hint}"
        )


def _is_download(event: object) -> bool:
    """A byte count of a layer (thinned); status changes always get through."""
    return isinstance(event, PullProgress) and event.total > 0 and event.completed < event.total
