"""The banner above the window that says when Ollama is unreachable or a model is missing.

It states the problem plainly and offers the fix: retry once Ollama runs, or pull the missing
model with a progress bar.  Browsing and keyword search keep working meanwhile.  The app keeps
probing Ollama by itself (`AppController.check_ollama`), so the banner clears on its own when
Ollama comes back; "Try again" only probes at once.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton


class OllamaBanner(QFrame):
    retry_requested = Signal()
    pull_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("ollama-banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#ollama-banner { background: #fff4d6; border: 1px solid #e0b84a; border-radius: 4px; }"
            "#ollama-banner QLabel { color: #4a3b00; }"
        )
        self._model = ""
        self.mode = ""  # "" | "unreachable" | "missing" | "pulling"
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextFormat(Qt.TextFormat.RichText)
        self._progress = QProgressBar()
        self._progress.setMaximumWidth(220)
        self._retry = QPushButton("Try again")
        self._retry.clicked.connect(self.retry_requested.emit)
        self._pull = QPushButton("Pull model")
        self._pull.clicked.connect(lambda: self.pull_requested.emit(self._model))
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 6)
        row.addWidget(self._text, 1)
        row.addWidget(self._progress)
        row.addWidget(self._pull)
        row.addWidget(self._retry)
        self.clear()

    def text(self) -> str:
        return self._text.text()

    def clear(self) -> None:
        self.mode = ""
        self.hide()

    def _show(self, mode: str, text: str, *, retry: bool, pull: bool, progress: bool) -> None:
        self.mode = mode
        self._text.setText(text)
        self._retry.setVisible(retry)
        self._pull.setVisible(pull)
        self._progress.setVisible(progress)
        self.show()

    def show_unreachable(self, detail: str) -> None:
        self._show(
            "unreachable",
            f"<b>Ollama is not reachable.</b> {html.escape(detail)}<br>"
            "Start Ollama (<code>ollama serve</code> or the Ollama app), or point the app at it "
            "with <code>OLLAMA_HOST</code> / <code>ollama_host</code> in settings.json. "
            "Your library and search keep working meanwhile, and the app reconnects by itself "
            "as soon as Ollama answers.",
            retry=True,
            pull=False,
            progress=False,
        )

    def show_missing_model(self, model: str) -> None:
        self._model = model
        self._pull.setText(f"Pull {model}")
        self._show(
            "missing",
            f"<b>The model '{html.escape(model)}' is not installed in Ollama.</b> "
            "Pull it here, or choose another model in the toolbar.",
            retry=False,
            pull=True,
            progress=False,
        )

    def show_pull_progress(self, status: str, completed: int, total: int) -> None:
        if total > 0:
            self._progress.setRange(0, 1000)
            self._progress.setValue(int(1000 * completed / total))
        else:
            self._progress.setRange(0, 0)  # busy: size not known yet
        self._show(
            "pulling",
            f"<b>Pulling {html.escape(self._model)}</b>: {html.escape(status)}",
            retry=False,
            pull=False,
            progress=True,
        )

    def show_pull_failed(self, message: str) -> None:
        self._show(
            "missing",
            f"<b>Pulling '{html.escape(self._model)}' failed.</b> {html.escape(message)}",
            retry=False,
            pull=True,
            progress=False,
        )
