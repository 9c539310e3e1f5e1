"""The main window: conversations | chat | sources and viewer, a Library tab, a model picker.

It wires the views to the `AppController` and owns the flow of a question: start an answer job,
stream its tokens into the chat, show its sources, store the exchange in the conversation.
Everything slow runs on workers; this class only reacts to signals.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QThreadPool, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop import __version__
from ftrag_desktop.app.chat_view import ChatView
from ftrag_desktop.app.compare_view import CompareWindow, suggested_question
from ftrag_desktop.app.controller import AnswerJob, AppController
from ftrag_desktop.app.conversation_list import ConversationList
from ftrag_desktop.app.drops import install_drop_handler
from ftrag_desktop.app.eval_view import EvaluateView
from ftrag_desktop.app.heap import settle
from ftrag_desktop.app.library_view import LibraryView
from ftrag_desktop.app.models_dialog import ModelsDialog
from ftrag_desktop.app.ollama_banner import OllamaBanner
from ftrag_desktop.app.settings_dialog import SettingsDialog
from ftrag_desktop.app.sources_panel import SourcesPanel
from ftrag_desktop.app.throttle import PROGRESS_EVERY_MS, Latest
from ftrag_desktop.app.train_view import TrainView, compare_with_base
from ftrag_desktop.app.viewer import DocumentViewer
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.config import Settings, SettingsChange
from ftrag_desktop.core.answer import AnswerResult, SourcesFound
from ftrag_desktop.core.conversations import Conversation, source_to_dict
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncProgress
from ftrag_desktop.core.export import conversation_to_markdown
from ftrag_desktop.core.llm import ModelInfo, normalize_model_name
from ftrag_desktop.core.service import LibraryChanged, ServiceError, ServiceIdle
from ftrag_desktop.paths import Home, resource_path

log = logging.getLogger(__name__)
GIL_SWITCH_INTERVAL_S = 0.001

WELCOME = """
<h2>Welcome to ftrag-desktop</h2>
<p>Ask questions about your own documents. Everything stays on this computer.</p>
<p><b>1. Choose a folder</b> with your documents (PDF, Word, Markdown, text, HTML).</p>
<p><b>2. Wait for indexing</b>: the Library tab shows the progress.</p>
<p><b>3. Ask</b>: every answer shows the passages, files and pages it is based on.</p>
"""


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256):
        icon.addFile(str(resource_path("icons", f"ftrag-{size}.png")))
    return icon


def same_model(a: object, b: str) -> bool:
    """Ollama's name matching ("llama3.2" is "llama3.2:latest")."""
    return isinstance(a, str) and normalize_model_name(a) == normalize_model_name(b)


def preferences_shortcuts() -> list[QKeySequence]:
    """The platform's Preferences keys, and Ctrl+, everywhere (Windows and GNOME have none)."""
    keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)
    comma = QKeySequence("Ctrl+,")
    return keys if comma in keys else [*keys, comma]


def model_label(m: ModelInfo) -> str:
    details = " · ".join(x for x in (m.family, m.parameter_size, m.quantization) if x)
    return f"{m.name}  ({details})" if details else m.name


class MainWindow(QMainWindow):
    settled = Signal()  # nothing is being indexed or answered (used by --screenshot)

    def __init__(self, home: Home) -> None:
        super().__init__()
        self.setWindowTitle("ftrag-desktop")
        self.setWindowIcon(app_icon())
        self.resize(1280, 800)
        self._home = home
        # Background threads (indexing, answers) share the GIL with this one: hand it over
        # every millisecond instead of every 5 ms, so the GUI thread gets it back quickly.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.controller = AppController(home, self)
        self._conv: Conversation | None = None
        self._job: AnswerJob | None = None
        self._answering = False
        self._indexing_idle = False
        self._installed: set[str] | None = None  # model names Ollama has, once listed
        self._model_infos: list[ModelInfo] = []  # the last list from Ollama (for Settings)
        self.compare_window: CompareWindow | None = None  # made when first opened
        self.settings_dialog: SettingsDialog | None = None
        self.models_dialog: ModelsDialog | None = None
        self._build()
        self._connect()
        self._restore_geometry()
        self.controller.start()
        QTimer.singleShot(0, lambda: settle("window built"))

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        self._new_chat = QAction("New chat", self)
        self._new_chat.setShortcut(QKeySequence.StandardKey.New)
        bar.addAction(self._new_chat)
        self._add_folder = QAction("Add folder…", self)
        self._add_folder.setShortcut(QKeySequence("Ctrl+Shift+O"))
        bar.addAction(self._add_folder)
        self._settings_action = QAction("Settings…", self)
        self._settings_action.setObjectName("settings-action")
        self._settings_action.setShortcuts(preferences_shortcuts())
        self._settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self._settings_action.setToolTip("Ollama address, models, retrieval and indexing")
        bar.addAction(self._settings_action)
        self._models_action = QAction("Models…", self)
        self._models_action.setObjectName("models-action")
        self._models_action.setShortcut(QKeySequence("Ctrl+Shift+M"))
        self._models_action.setToolTip("Installed models: pull, delete, import a fine-tune")
        self._models_action.triggered.connect(self._on_models_triggered)
        bar.addAction(self._models_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Model: "))
        self._models = QComboBox()
        self._models.setMinimumContentsLength(28)
        self._models.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self._models.setToolTip("The Ollama model that answers")
        bar.addWidget(self._models)
        self._rag = QCheckBox("Use my documents")
        self._rag.setChecked(True)
        self._rag.setToolTip("Off: the model answers alone, without retrieval (for comparison)")
        bar.addWidget(self._rag)
        self._compare_action = QAction("Compare…", self)
        self._compare_action.setObjectName("compare-action")
        self._compare_action.setShortcut(QKeySequence("Ctrl+Shift+C"))
        self._compare_action.setToolTip(
            "Compare this question's answers across models, with and without your documents"
        )
        self._compare_action.triggered.connect(self._on_compare_triggered)
        bar.addAction(self._compare_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        self._ollama = QLabel("● Ollama: checking…")
        self._ollama.setObjectName("ollama-indicator")
        bar.addWidget(self._ollama)

        self.conversations = ConversationList()
        self.chat = ChatView()
        self.sources = SourcesPanel()
        self.viewer = DocumentViewer()
        self._right = QTabWidget()
        self._right.addTab(self.sources, "Sources")
        self._right.addTab(self.viewer, "Document")

        self._welcome = self._build_welcome()
        self._centre = QStackedWidget()
        self._centre.addWidget(self._welcome)
        self._centre.addWidget(self.chat)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setObjectName("chat-splitter")
        split.addWidget(self.conversations)
        split.addWidget(self._centre)
        split.addWidget(self._right)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 2)
        split.setSizes([230, 640, 410])
        self._split = split

        self.library = LibraryView(self.controller)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(split, "Chat")
        self.tabs.addTab(self.library, "Library")
        self.evaluate = EvaluateView(self.controller)  # fine-tuning or RAG, measured
        self.tabs.addTab(self.evaluate, "Evaluate")
        self.train = TrainView(self.controller)  # fine-tune a local model on exported data
        self.tabs.addTab(self.train, "Train")
        self.train.use_in_chat_requested.connect(self._on_train_use_in_chat_requested)
        self.train.evaluate_requested.connect(self._on_train_evaluate_requested)
        self.banner = OllamaBanner()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._status = QLabel("Opening the library…")
        # One progress event a file: the status line follows it a few times a second.
        self._progress_status: Latest[str] = Latest(self._status.setText, PROGRESS_EVERY_MS, self)
        self.statusBar().addWidget(self._status, 1)
        install_drop_handler(self, self.controller)

    def _build_welcome(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        text = QLabel(WELCOME)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        text.setFixedWidth(540)
        # A word-wrapped label placed with an alignment does not get its height for its width.
        text.setMinimumHeight(text.heightForWidth(540))
        layout.addWidget(text, 0, Qt.AlignmentFlag.AlignHCenter)
        row = QHBoxLayout()
        choose = QPushButton("Choose a folder…")
        choose.setDefault(True)
        choose.clicked.connect(self._on_add_folder_triggered)
        default = QPushButton("Create and watch ~/Documents/ftrag")
        default.clicked.connect(self._on_default_folder_clicked)
        row.addStretch(1)
        row.addWidget(choose)
        row.addWidget(default)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(2)
        return page

    def _connect(self) -> None:
        c = self.controller
        c.engine_ready.connect(self._on_controller_engine_ready)
        c.engine_failed.connect(self._on_controller_engine_failed)
        c.library_event.connect(self._on_controller_library_event)
        c.ollama_state.connect(self._on_controller_ollama_state)
        c.models_loaded.connect(self._on_controller_models_loaded)
        c.settings_applied.connect(self._on_controller_settings_applied)
        c.settings_failed.connect(self._on_controller_settings_failed)
        self._new_chat.triggered.connect(self._on_new_chat_triggered)
        self._add_folder.triggered.connect(self._on_add_folder_triggered)
        self._settings_action.triggered.connect(self._on_settings_triggered)
        self._models.activated.connect(self._on_models_activated)
        self._rag.toggled.connect(self._on_rag_toggled)
        self.conversations.conversation_selected.connect(self._on_conversations_selected)
        self.conversations.conversation_deleted.connect(self._on_conversations_deleted)
        self.conversations.conversation_renamed.connect(self._on_conversations_renamed)
        self.chat.question_submitted.connect(self._on_chat_question_submitted)
        self.chat.stop_requested.connect(self._on_chat_stop_requested)
        self.chat.regenerate_requested.connect(self._on_chat_regenerate_requested)
        self.chat.citation_activated.connect(self._on_chat_citation_activated)
        self.chat.answer_selected.connect(self._on_chat_answer_selected)
        self.chat.export_requested.connect(self._on_chat_export_requested)
        self.sources.source_activated.connect(self._on_sources_source_activated)
        self.sources.open_externally_requested.connect(self._open_externally)
        self.sources.show_in_folder_requested.connect(self._show_in_folder)
        self.banner.retry_requested.connect(c.check_ollama)
        self.banner.pull_requested.connect(self._on_banner_pull_requested)

    # ---- engine and library ----------------------------------------------------------------

    def _on_controller_engine_ready(self, engine: Engine) -> None:
        self.conversations.set_store(engine.conversations, default_model=engine.settings.chat_model)
        self._set_model_items([], engine.settings.chat_model)
        first_run = not engine.settings.watched_folders
        self._centre.setCurrentWidget(self._welcome if first_run else self.chat)
        self._status.setText("Ready.")
        settle("library opened")

    def _on_controller_engine_failed(self, message: str) -> None:
        self._status.setText(message.splitlines()[0])
        QMessageBox.critical(
            self, "ftrag-desktop", f"The library could not be opened.\n\n{message}"
        )

    def _on_controller_library_event(self, event: object) -> None:
        if isinstance(event, SyncProgress):
            self._indexing_idle = False
            eta = f", about {event.eta_s:.0f} s left" if event.eta_s else ""
            self._progress_status.push(
                f"Indexing {event.done}/{event.total} · {Path(event.current).name}{eta}"
            )
        elif isinstance(event, ServiceIdle):
            self._indexing_idle = True
            self._progress_status.drop()
            self._status.setText("Library up to date.")
            self._maybe_settled()
        elif isinstance(event, ServiceError):
            self._progress_status.drop()
            self._status.setText(event.message.splitlines()[0])
        elif isinstance(event, LibraryChanged) and event.folders:
            self._centre.setCurrentWidget(self.chat)

    def _on_controller_ollama_state(self, reachable: bool, detail: str) -> None:
        if not reachable:
            self.banner.show_unreachable(detail)
        elif self.banner.mode == "unreachable":
            self.banner.clear()
        colour = "#2e9d4f" if reachable else "#d2452f"
        state = "connected" if reachable else "not reachable"
        self._ollama.setText(f"<span style='color:{colour}'>●</span> Ollama {state}")
        self._ollama.setToolTip(detail)

    def _on_controller_models_loaded(self, models: list[ModelInfo]) -> None:
        self._model_infos = list(models)
        current = self._current_model()
        self._set_model_items([m for m in models if not m.is_embedding], current)
        self._check_model_installed(models)

    def _check_model_installed(self, models: list[ModelInfo] | None = None) -> None:
        """Offer to pull the chosen model when Ollama runs but does not have it."""
        if models is not None:
            self._installed = {m.name for m in models}
        model, installed = self._current_model(), self._installed
        if self.banner.mode in ("unreachable", "pulling") or not model or installed is None:
            return
        if normalize_model_name(model) in {normalize_model_name(n) for n in installed}:
            if self.banner.mode == "missing":
                self.banner.clear()
        else:
            self.banner.show_missing_model(model)

    def _on_banner_pull_requested(self, model: str) -> None:
        job = self.controller.pull_model(model)
        job.progressed.connect(self.banner.show_pull_progress)
        job.finished.connect(self._on_pull_finished)
        self.banner.show_pull_progress("starting", 0, 0)

    def _on_pull_finished(self, ok: bool, message: str) -> None:
        if ok:
            self.banner.clear()
            self._status.setText("Model pulled.")
        else:
            self.banner.show_pull_failed(message.splitlines()[0])

    def _set_model_items(self, models: list[ModelInfo], current: str) -> None:
        self._models.clear()
        names = [m.name for m in models]
        for m in models:
            self._models.addItem(model_label(m), m.name)
        if current and not any(same_model(n, current) for n in names):
            # Only say "not installed" when Ollama's list is known (it may just be down).
            label = f"{current}  (not installed)" if models else current
            self._models.addItem(label, current)
        for i in range(self._models.count()):
            if same_model(self._models.itemData(i), current):
                self._models.setCurrentIndex(i)

    def _current_model(self) -> str:
        data = self._models.currentData()
        if data:
            return str(data)
        engine = self.controller.engine
        return engine.settings.chat_model if engine else ""

    def _on_add_folder_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder to watch")
        if folder:
            self.controller.add_folder(folder)
            self._centre.setCurrentWidget(self.chat)
            self.tabs.setCurrentWidget(self.library)

    def _on_default_folder_clicked(self) -> None:
        folder = Path.home() / "Documents" / "ftrag"

        def make() -> str:
            folder.mkdir(parents=True, exist_ok=True)
            return str(folder)

        run_in_background(make, on_done=self._on_default_folder_made, on_error=self._status.setText)

    def _on_default_folder_made(self, folder: object) -> None:
        self.controller.add_folder(str(folder))
        self._centre.setCurrentWidget(self.chat)

    # ---- settings --------------------------------------------------------------------------

    def _on_settings_triggered(self) -> None:
        engine = self.controller.engine
        if engine is None:
            self._status.setText("The library is still opening; try Settings again in a moment.")
            return
        if self.settings_dialog is not None:  # already open (it is window-modal): focus it
            self.settings_dialog.activateWindow()
            return
        dialog = SettingsDialog(engine.settings, self._model_infos, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._on_settings_accepted(dialog.settings()))
        dialog.finished.connect(self._on_settings_dialog_finished)
        self.settings_dialog = dialog
        dialog.open()

    def _on_settings_dialog_finished(self, _result: int) -> None:
        self.settings_dialog = None

    def _on_settings_accepted(self, new: Settings) -> None:
        engine = self.controller.engine
        old_chat = engine.settings.chat_model if engine is not None else ""
        self.controller.apply_settings(new)
        if new.chat_model != old_chat:
            # The user just chose it: new conversations, and this one's next question, use it.
            self.conversations.set_default_model(new.chat_model)
            self._set_current_model(new.chat_model)
            self._check_model_installed()
        self._status.setText("Applying the new settings…")

    def _on_controller_settings_applied(self, change: object) -> None:
        consequences = change.consequences() if isinstance(change, SettingsChange) else []
        self._status.setText(" ".join(["Settings saved.", *consequences]))

    def _on_controller_settings_failed(self, message: str) -> None:
        self._status.setText("The settings were not saved.")
        QMessageBox.warning(self, "Settings not saved", message)

    # ---- models manager --------------------------------------------------------------------

    def _on_models_triggered(self) -> None:
        if self.models_dialog is None:  # non-modal, one at a time: a second press focuses it
            dialog = ModelsDialog(self.controller, self._current_model, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.model_chosen.connect(self._on_models_dialog_model_chosen)
            dialog.finished.connect(self._on_models_dialog_finished)
            self.models_dialog = dialog
        self.models_dialog.show()
        self.models_dialog.raise_()
        self.models_dialog.activateWindow()

    def _on_models_dialog_finished(self, _result: int) -> None:
        self.models_dialog = None

    def _on_models_dialog_model_chosen(self, name: str) -> None:
        self._set_current_model(name)
        self._on_models_activated(self._models.currentIndex())  # the conversation follows
        self._status.setText(f"Answers now come from {name}.")

    def _on_train_use_in_chat_requested(self, name: str) -> None:
        self._on_models_dialog_model_chosen(name)
        self.tabs.setCurrentIndex(0)

    def _on_train_evaluate_requested(self, model: str, base: str) -> None:
        self.tabs.setCurrentWidget(self.evaluate)
        engine = self.controller.engine
        compare_with_base(self.evaluate, model, base, engine.settings.top_k if engine else 6)

    # ---- conversations -------------------------------------------------------------------

    def _on_new_chat_triggered(self) -> None:
        self.conversations.set_default_model(self._current_model())
        self.conversations.new_conversation()  # saved, listed, then selected (loads it here)
        self.tabs.setCurrentIndex(0)

    def _on_conversations_renamed(self, conv_id: str, title: str) -> None:
        if self._conv is not None and self._conv.id == conv_id:
            self._conv.title = title

    def _on_conversations_selected(self, conv_id: str) -> None:
        engine = self.controller.engine
        if engine is None or (self._conv is not None and self._conv.id == conv_id):
            return
        store = engine.conversations
        run_in_background(
            lambda: store.load(conv_id),
            on_done=self._on_conversation_loaded,
            on_error=self._status.setText,
            pool=self.conversations.store_pool,
        )

    def _on_conversation_loaded(self, conv: object) -> None:
        assert isinstance(conv, Conversation)
        self._conv = conv
        self.chat.show_conversation(conv)
        self._rag.blockSignals(True)
        self._rag.setChecked(conv.rag)
        self._rag.blockSignals(False)
        self._set_current_model(conv.model)
        answers = [i for i, m in enumerate(conv.messages) if m.role == "assistant"]
        if answers:
            self._on_chat_answer_selected(answers[-1])
        else:
            self.sources.clear()

    def _on_conversations_deleted(self, conv_id: str) -> None:
        if self._conv is not None and self._conv.id == conv_id:
            self._conv = None
            self.chat.show_conversation(Conversation("", "", self._current_model()))
            self.sources.clear()

    def _set_current_model(self, name: str) -> None:
        for i in range(self._models.count()):
            if same_model(self._models.itemData(i), name):
                self._models.setCurrentIndex(i)
                return
        if name:
            self._models.addItem(f"{name}  (not installed)", name)
            self._models.setCurrentIndex(self._models.count() - 1)

    def _on_models_activated(self, _index: int) -> None:
        self._check_model_installed()
        if self._conv is not None:
            self._conv.model = self._current_model()
            self._save_conversation()

    def _on_rag_toggled(self, on: bool) -> None:
        if self._conv is not None:
            self._conv.rag = on
            self._save_conversation()

    def _save_conversation(self) -> None:
        engine, conv = self.controller.engine, self._conv
        if engine is None or conv is None:
            return
        store = engine.conversations
        run_in_background(
            lambda: store.save(conv),
            on_done=lambda _: self.conversations.reload(),
            on_error=self._status.setText,
            pool=self.conversations.store_pool,
        )

    # ---- asking --------------------------------------------------------------------------

    def _on_chat_question_submitted(self, question: str) -> None:
        engine = self.controller.engine
        if engine is None or self._answering:
            return
        if self._conv is None:
            self._conv = Conversation(
                uuid.uuid4().hex, question[:60], self._current_model(), self._rag.isChecked()
            )
        elif not self._conv.messages and self._conv.title in ("", "New chat"):
            self._conv.title = " ".join(question.split())[:60]
        self._ask(question)

    def _ask(self, question: str, model: str = "", rag: bool | None = None) -> None:
        """Answer `question` with `model` and `rag` (default: the toolbar's choices)."""
        model = model or self._current_model()
        rag = self._rag.isChecked() if rag is None else rag
        self._answering = True
        self.chat.begin_answer(question, model)
        self.sources.clear()
        job = self.controller.ask(question, model=model, rag=rag)
        job.sources_found.connect(self._on_job_sources_found)
        job.token_received.connect(self.chat.append_token)
        job.completed.connect(self._on_job_completed)
        job.failed.connect(self._on_job_failed)
        self._job = job

    def _on_job_sources_found(self, found: SourcesFound) -> None:
        self.sources.show_sources([source_to_dict(s) for s in found.sources], "")
        self._right.setCurrentWidget(self.sources)

    def _on_job_completed(self, result: AnswerResult) -> None:
        self._answering = False
        self._job = None
        self.chat.finish_answer(result)
        self.sources.show_sources([source_to_dict(s) for s in result.sources], result.answer)
        if self._conv is not None:
            self._conv.model = result.model
            self._conv.add_exchange(result)
            self._save_conversation()
        self._maybe_settled()

    def _on_job_failed(self, message: str) -> None:
        self._answering = False
        self._job = None
        self.chat.fail_answer(message)
        self._maybe_settled()

    def _on_chat_stop_requested(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _on_chat_regenerate_requested(self, index: int) -> None:
        conv = self._conv
        if conv is None or self._answering or index < 1 or index >= len(conv.messages):
            return
        question = conv.messages[index - 1].content
        answer = conv.messages[index]
        # Again as it was asked: the same model and the same use of documents, whatever the
        # toolbar shows now (a changed choice applies to new questions).
        rag = answer.meta.get("rag")
        del conv.messages[index - 1 : index + 1]
        self.chat.show_conversation(conv)
        self._ask(question, answer.model, rag if isinstance(rag, bool) else None)

    def _on_chat_answer_selected(self, index: int) -> None:
        conv = self._conv
        if conv is None or not 0 <= index < len(conv.messages):
            return
        message = conv.messages[index]
        self.sources.show_sources(message.sources, message.content)

    def _on_chat_citation_activated(self, index: int, number: int) -> None:
        self._on_chat_answer_selected(index)
        self.sources.select_source(number)
        conv = self._conv
        if conv is not None and 0 <= index < len(conv.messages):
            for src in conv.messages[index].sources:
                if src.get("number") == number:
                    self._on_sources_source_activated(src)
                    break

    def _on_sources_source_activated(self, source: dict[str, Any]) -> None:
        self._right.setCurrentWidget(self.viewer)  # visible first, so it can lay out the page
        self.viewer.open_source(source)

    def open_first_cited_source(self) -> bool:
        """Open the last answer's first cited source in the viewer; False if there is none."""
        conv = self._conv
        if conv is None:
            return False
        for message in reversed(conv.messages):
            cited = [s for s in message.sources if s.get("cited")] or message.sources
            if message.role == "assistant" and cited:
                self._on_sources_source_activated(cited[0])
                return True
        return False

    def _open_externally(self, source: dict[str, Any]) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(source["path"])))

    def _show_in_folder(self, source: dict[str, Any]) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(str(source["path"])).parent)))

    def _on_chat_export_requested(self) -> None:
        conv = self._conv
        if conv is None:
            return
        target, _ = QFileDialog.getSaveFileName(
            self,
            "Export conversation",
            f"{conv.title[:40] or 'conversation'}.md",
            "Markdown (*.md)",
        )
        if target:
            self.export_conversation(target)

    def export_conversation(self, target: str) -> None:
        conv = self._conv
        if conv is None:
            return
        text = conversation_to_markdown(conv)
        run_in_background(
            lambda: Path(target).write_text(text, encoding="utf-8"),
            on_done=lambda _: self._status.setText(f"Exported to {target}"),
            on_error=self._status.setText,
        )

    # ---- compare -------------------------------------------------------------------------

    def _on_compare_triggered(self) -> None:
        if self.compare_window is None:
            window = CompareWindow(self.controller, lambda: self._conv, self)
            window.source_activated.connect(self._on_compare_source_activated)
            window.conversation_saved.connect(self._on_compare_conversation_saved)
            self.compare_window = window
        draft = suggested_question(self.chat.input.toPlainText(), self._conv)
        self.compare_window.open_for(self._current_model(), draft)

    def _on_compare_source_activated(self, source: dict[str, Any]) -> None:
        self._on_sources_source_activated(source)
        self.raise_()
        self.activateWindow()

    def _on_compare_conversation_saved(self, conv: object) -> None:
        if isinstance(conv, Conversation) and self._conv is None:
            self._on_conversation_loaded(conv)  # the comparison started this conversation
            self.conversations.select(conv.id)
        self.conversations.reload()

    # ---- settled, geometry, quit -----------------------------------------------------------

    def _maybe_settled(self) -> None:
        if self._indexing_idle and not self._answering:
            QTimer.singleShot(200, self, self._emit_settled_if_still)

    def _emit_settled_if_still(self) -> None:
        if self._indexing_idle and not self._answering:
            self.settled.emit()

    def _geometry_file(self) -> Path:
        return self._home.root / "window.json"

    def _restore_geometry(self) -> None:
        path = self._geometry_file()

        def read() -> dict[str, Any]:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                return data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                return {}

        run_in_background(read, on_done=self._on_geometry_read)

    def _on_geometry_read(self, data: object) -> None:
        if not isinstance(data, dict):
            return
        for key, apply in (
            ("geometry", self.restoreGeometry),
            ("state", self.restoreState),
            ("splitter", self._split.restoreState),
        ):
            if isinstance(data.get(key), str):
                apply(QByteArray(base64.b64decode(data[key])))

    def _save_geometry(self) -> None:
        data = {
            "geometry": base64.b64encode(bytes(self.saveGeometry().data())).decode(),
            "state": base64.b64encode(bytes(self.saveState().data())).decode(),
            "splitter": base64.b64encode(bytes(self._split.saveState().data())).decode(),
        }
        try:
            self._home.root.mkdir(parents=True, exist_ok=True)
            self._geometry_file().write_text(json.dumps(data), encoding="utf-8")
        except OSError as exc:
            log.warning("could not save the window geometry: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Quitting: cancel the answer and the sync (both stop within a batch), release the index.
        self._save_geometry()
        self.hide()  # gone from the screen at once; the library process needs a moment
        self.evaluate.stop()  # a stopped evaluation run can be resumed next time
        self.train.stop()  # the training child saves a checkpoint and exits (see wait_stopped)
        # A short grace for a clean stop; after it the library process is terminated, which
        # is safe: the index is crash-consistent and the next start finishes the sync.
        self.controller.shutdown(timeout_s=0.5)
        QThreadPool.globalInstance().waitForDone(500)  # short reads still delivering results
        self.conversations.store_pool.waitForDone(500)  # a conversation being saved
        self.train.wait_stopped()  # killed after a short grace; its checkpoints are kept
        super().closeEvent(event)


__all__ = ["MainWindow", "__version__"]
