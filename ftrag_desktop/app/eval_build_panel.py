"""Building an evaluation set in the background: a progress bar, what it is doing, and Cancel.

`BuildPanel.start()` runs `core.evalset_build.build_evalset` on a worker (`run_in_background`;
the index is read there too) and turns its events into signals: `question_accepted` for each
kept question (the Sets page adds it to its table at once), `finished` with the unsaved set,
or `failed` with a message.  Cancel ends the build after the current model call, keeping what
was accepted.  The panel is visible only while a build runs.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core import evalset_build as eb
from ftrag_desktop.core.engine import Engine

__all__ = ["BuildPanel"]


class BuildPanel(QWidget):
    """See the module docstring."""

    question_accepted = Signal(object)  # core.evalset.EvalItem
    finished = Signal(object)  # core.evalset_build.BuildFinished
    failed = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cancel: threading.Event | None = None
        self._kept = 0
        self._rejected = 0
        self.progress = QProgressBar()
        self.label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current question; keep what was accepted")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.progress, 1)
        layout.addWidget(self.label, 2)
        layout.addWidget(self.cancel_button)
        self.hide()

    def is_running(self) -> bool:
        return self._cancel is not None

    def start(self, engine: Engine, name: str, options: eb.BuildOptions) -> None:
        if self.is_running():
            return
        cancel = threading.Event()
        self._cancel = cancel
        self._kept = self._rejected = 0
        self.progress.setRange(0, 0)
        self.label.setText("Reading the index…")
        self.show()
        self.running_changed.emit(True)
        run_in_background(
            lambda: eb.build_evalset(engine, name, options, cancel=cancel),
            on_event=self._on_event,
            on_done=lambda _r: self._stopped(),
            on_error=self._on_failed,
            owner=self,
        )

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.label.setText("Stopping after the current question…")

    def _stopped(self) -> None:
        self._cancel = None
        self.hide()
        self.running_changed.emit(False)

    def _on_failed(self, message: str) -> None:
        self._stopped()
        self.failed.emit(message)

    def _on_event(self, event: object) -> None:
        if isinstance(event, eb.BuildStarted):
            self.progress.setRange(0, max(event.questions + event.unanswerable, 1))
            self.progress.setValue(0)
            self.label.setText(
                f"Writing {event.questions} questions from {event.chunks} passages of "
                f"{event.documents} documents, and {event.unanswerable} unanswerable ones…"
            )
        elif isinstance(event, eb.QuestionAccepted):
            self._kept += 1
            self.question_accepted.emit(event.item)
        elif isinstance(event, eb.QuestionRejected):
            self._rejected += 1
        elif isinstance(event, eb.BuildProgress):
            self.progress.setValue(min(self._kept, self.progress.maximum()))
            stage = "Unanswerable questions" if event.stage == "unanswerable" else "Questions"
            self.label.setText(
                f"{stage}: {event.done} of {event.wanted} kept after {event.tried} tried; "
                f"{self._rejected} dropped so far"
            )
        elif isinstance(event, eb.BuildFinished):
            self.finished.emit(event)
