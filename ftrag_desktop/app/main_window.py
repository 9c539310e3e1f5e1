"""The main window (first cut): watched folders, indexing progress, search, and cited answers.

Every engine call runs on a worker (`run_in_background`); the index writer gets its own
single-thread pool so there is exactly one writer.  The window only reacts to events.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop import __version__
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.answer import AnswerCompleted, AnswerResult, AnswerToken
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import FileFailed, Notice, SyncFinished, SyncProgress
from ftrag_desktop.core.retrieve import SearchResult
from ftrag_desktop.paths import Home


class MainWindow(QMainWindow):
    def __init__(self, home: Home) -> None:
        super().__init__()
        self.setWindowTitle(f"ftrag-desktop {__version__}")
        self.resize(1100, 720)
        self._home = home
        self._engine: Engine | None = None
        self._writer = QThreadPool(self)
        self._writer.setMaxThreadCount(1)
        self._cancel = threading.Event()  # stops the answer being streamed
        self._sync_cancel = threading.Event()  # stops indexing (on quit)
        self._answer_text = ""
        self._build()
        self._set_busy("Opening the library…")
        run_in_background(
            lambda: Engine(home), on_done=self._on_engine_opened, on_error=self._on_error
        )

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        add = QAction("Add folder…", self)
        add.triggered.connect(self._on_add_folder_triggered)
        bar.addAction(add)
        rescan = QAction("Rescan", self)
        rescan.triggered.connect(self._on_rescan_triggered)
        bar.addAction(rescan)
        self._ollama_label = QLabel("Ollama: checking…")
        bar.addSeparator()
        bar.addWidget(self._ollama_label)

        self._folders = QListWidget()
        self._folders.setMinimumWidth(220)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(QLabel("<b>Watched folders</b>"))
        lv.addWidget(self._folders)
        self._library_label = QLabel("")
        self._library_label.setWordWrap(True)
        lv.addWidget(self._library_label)

        self._query = QLineEdit()
        self._query.setPlaceholderText("Ask a question about your documents…")
        self._query.returnPressed.connect(self._on_query_return_pressed)
        ask = QPushButton("Ask")
        ask.clicked.connect(self._on_query_return_pressed)
        search = QPushButton("Search")
        search.clicked.connect(self._on_search_clicked)
        stop = QPushButton("Stop")
        stop.setShortcut(QKeySequence("Esc"))
        stop.clicked.connect(self._cancel.set)
        row = QHBoxLayout()
        row.addWidget(self._query, 1)
        row.addWidget(ask)
        row.addWidget(search)
        row.addWidget(stop)
        self._answer = QTextBrowser()
        self._answer.setOpenExternalLinks(False)
        self._sources = QTextBrowser()
        centre = QWidget()
        cv = QVBoxLayout(centre)
        cv.addLayout(row)
        split = QSplitter()
        split.addWidget(self._answer)
        split.addWidget(self._sources)
        split.setSizes([600, 400])
        cv.addWidget(split, 1)

        main = QSplitter()
        main.addWidget(left)
        main.addWidget(centre)
        main.setSizes([260, 840])
        self.setCentralWidget(main)

        self._progress = QProgressBar()
        self._progress.setMaximumWidth(240)
        self._progress.hide()
        self.statusBar().addPermanentWidget(self._progress)

    def _set_busy(self, text: str) -> None:
        self.statusBar().showMessage(text)

    # ---- engine --------------------------------------------------------------------------

    def _on_engine_opened(self, engine: object) -> None:
        assert isinstance(engine, Engine)
        self._engine = engine
        for folder in engine.settings.watched_folders:
            self._folders.addItem(folder)
        self._set_busy("Ready.")
        self._refresh_status()
        if engine.settings.watched_folders:
            self._sync_all()

    def _refresh_status(self) -> None:
        engine = self._engine
        if engine is None:
            return

        def op() -> tuple[dict[str, object], bool]:
            return engine.status(), engine.client.is_reachable()

        run_in_background(op, on_done=self._on_status_loaded, on_error=self._on_error)

    def _on_status_loaded(self, result: object) -> None:
        assert isinstance(result, tuple)
        status: dict[str, Any] = result[0]
        reachable: bool = result[1]
        counts = status["counts"]
        self._library_label.setText(
            f"{counts.get('indexed', 0)} documents indexed, {counts.get('failed', 0)} failed, "
            f"{status['chunks']} passages.<br>Search: {status['search']}"
        )
        host = status["ollama_host"]
        self._ollama_label.setText(
            f"Ollama: connected ({host})" if reachable else f"Ollama: not reachable at {host}"
        )

    def _on_add_folder_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder to watch")
        if not folder or self._engine is None:
            return
        if folder not in self._engine.settings.watched_folders:
            self._engine.settings.watched_folders.append(folder)
            self._folders.addItem(folder)
            engine = self._engine
            run_in_background(engine.save_settings, on_error=self._on_error)
        self._sync_all()

    def _on_rescan_triggered(self) -> None:
        self._sync_all()

    def _sync_all(self) -> None:
        engine = self._engine
        if engine is None:
            return
        folders = [Path(f) for f in engine.settings.watched_folders]

        def op():  # type: ignore[no-untyped-def]
            for folder in folders:
                yield from engine.sync(folder, cancel=self._sync_cancel)

        self._progress.show()
        run_in_background(
            op,
            on_event=self._on_sync_event,
            on_done=lambda _: self._on_sync_done(),
            on_error=self._on_error,
            pool=self._writer,
        )

    def _on_sync_event(self, event: object) -> None:
        if isinstance(event, SyncProgress):
            self._progress.setMaximum(event.total)
            self._progress.setValue(event.done)
            eta = f", about {event.eta_s:.0f} s left" if event.eta_s else ""
            name = Path(event.current).name
            self._set_busy(f"Indexing {event.done}/{event.total}: {name}{eta}")
        elif isinstance(event, FileFailed):
            self._set_busy(f"Could not index {Path(event.path).name}: {event.reason}")
        elif isinstance(event, Notice):
            self._set_busy(event.text)
        elif isinstance(event, SyncFinished):
            s = event.summary
            self._set_busy(
                f"{s.indexed} indexed, {s.unchanged} unchanged, {s.removed} removed, "
                f"{s.failed} failed."
            )

    def _on_sync_done(self) -> None:
        self._progress.hide()
        self._refresh_status()

    # ---- search and answers --------------------------------------------------------------

    def _on_search_clicked(self) -> None:
        engine, query = self._engine, self._query.text().strip()
        if engine is None or not query:
            return
        run_in_background(
            lambda: engine.search(query), on_done=self._on_search_done, on_error=self._on_error
        )

    def _on_search_done(self, result: object) -> None:
        assert isinstance(result, SearchResult)
        parts = [f"<p><i>{html.escape(result.note)}</i></p>"] if result.note else []
        for i, hit in enumerate(result.hits, 1):
            parts.append(
                f"<p><b>[{i}] {html.escape(Path(hit.path).name)}</b> {html.escape(hit.location())}"
                f" <small>score {hit.score:.3f}</small><br>{html.escape(hit.text[:400])}</p>"
            )
        self._sources.setHtml("".join(parts) or "No matches.")

    def _on_query_return_pressed(self) -> None:
        engine, question = self._engine, self._query.text().strip()
        if engine is None or not question:
            return
        self._cancel.clear()
        self._answer_text = ""
        self._answer.setPlainText("")
        cancel = self._cancel
        run_in_background(
            lambda: engine.ask(question, cancel=cancel),
            on_event=self._on_answer_event,
            on_error=self._on_error,
        )

    def _on_answer_event(self, event: object) -> None:
        if isinstance(event, AnswerToken):
            self._answer_text += event.text
            self._answer.setMarkdown(self._answer_text)
        elif isinstance(event, AnswerCompleted):
            self._show_sources(event.result)

    def _show_sources(self, result: AnswerResult) -> None:
        parts = []
        for src in result.sources:
            tag = "cited" if src.cited else "retrieved"
            hit = src.hit
            parts.append(
                f"<p><b>[{src.number}] {html.escape(Path(hit.path).name)}</b> "
                f"{html.escape(hit.location())} <small>({tag})</small><br>"
                f"{html.escape(hit.text[:400])}</p>"
            )
        self._sources.setHtml("".join(parts))

    def _on_error(self, message: str) -> None:
        self._progress.hide()
        self._set_busy(message.splitlines()[0])
        self._answer.append(f"\n⚠ {message}")

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        # Quitting: stop background work, then release the index (the writer lock, the workers).
        self._cancel.set()
        self._sync_cancel.set()
        self._writer.waitForDone(10000)
        QThreadPool.globalInstance().waitForDone(10000)
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        super().closeEvent(event)
