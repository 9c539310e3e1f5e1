"""The compare window: one question, up to four configurations, answers side by side.

Top: the question and the configuration rows (`compare_configs`).  Below: past comparisons of
the current conversation, and one `CompareColumn` per configuration with the streamed answer,
its figures, a "Best" toggle and its own sources.  The comparison runs through
`core.compare.run_comparison` on a worker (`run_in_background`): this window only reacts to its
events.  When it is done it is saved with the conversation that was current when it started
(a new conversation if there was none), as is every change of the "Best" mark
(`compare_saving`).  Esc or Stop cancels every configuration; closing the window or the main
window stops it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.compare_column import CompareColumn, format_seconds
from ftrag_desktop.app.compare_configs import ConfigEditor, default_configs
from ftrag_desktop.app.compare_saving import ComparisonSaver
from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.compare import (
    CompareError,
    ComparisonFinished,
    ConfigFinished,
    ConfigSources,
    ConfigStarted,
    ConfigToken,
    run_comparison,
)
from ftrag_desktop.core.compare_record import CompareConfig, Comparison
from ftrag_desktop.core.conversations import Conversation

__all__ = ["CompareWindow", "suggested_question"]

PARALLEL_TIP = (
    "Send every configuration to Ollama at once.  Ollama often still answers them one after "
    "another, and on one machine they share its power: the figures then include that, and each "
    "answer says when it waited.  Off: one at a time, so each answer's figures are its own."
)
EMPTY_TEXT = (
    "Ask one question in several ways (a model with or without your documents, a fine-tuned "
    "variant against its base) and compare the answers, their sources and their speed side by "
    "side.  Ctrl+Enter starts, Esc stops."
)


def suggested_question(draft: str, conv: Conversation | None) -> str:
    """What to compare: the question being typed in the chat, else the conversation's last."""
    if draft.strip():
        return draft.strip()
    if conv is not None:
        for message in reversed(conv.messages):
            if message.role == "user" and message.content.strip():
                return message.content.strip()
    return ""


def _past_label(comparison: Comparison) -> tuple[str, str]:
    """The list entry of a past comparison, and its tooltip."""
    when = time.strftime("%d %b, %H:%M", time.localtime(comparison.created_at))
    best = f" · best #{comparison.best + 1}" if comparison.best is not None else ""
    question = " ".join(comparison.question.split())
    short = question if len(question) <= 70 else question[:69] + "…"
    configs = "\n".join(f"#{i}: {c.title()}" for i, c in enumerate(comparison.configs, 1))
    return f"{short}\n{when} · {len(comparison.configs)} answers{best}", f"{question}\n\n{configs}"


class CompareWindow(QWidget):
    """A top-level window; `open_for()` shows it.  See the module docstring."""

    source_activated = Signal(dict)  # a source was clicked: open it in the document viewer
    conversation_saved = Signal(object)  # the Conversation a comparison was saved in
    comparison_finished = Signal(object)  # core.compare_record.Comparison
    running_changed = Signal(bool)

    def __init__(
        self,
        controller: AppController,
        current_conversation: Callable[[], Conversation | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Compare answers")
        self.resize(1280, 820)
        self._controller = controller
        self._saver = ComparisonSaver(controller, current_conversation or (lambda: None), self)
        self._saver.saved.connect(self.conversation_saved.emit)
        self._saver.failed.connect(self._on_saver_failed)
        self._columns: list[CompareColumn] = []
        self._cancel: threading.Event | None = None
        self._running = False
        self._configured = False
        self._shown: Comparison | None = None  # the comparison in the columns, once finished
        self._shown_conv_id: str | None = None  # the conversation it is saved in
        self._run_conv_id: str | None = None  # current when the running comparison started
        self._started_at = 0.0
        self._build()
        controller.models_loaded.connect(self._on_controller_models_loaded)
        if parent is not None:
            parent.installEventFilter(self)  # the main window closing stops the comparison

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.question = QPlainTextEdit()
        self.question.setPlaceholderText("The question every configuration answers…")
        self.question.setTabChangesFocus(True)
        line = self.question.fontMetrics().lineSpacing()
        self.question.setFixedHeight(line * 3 + 14)
        self.editor = ConfigEditor()
        self.parallel = QCheckBox("Send all at once")
        self.parallel.setToolTip(PARALLEL_TIP)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setDefault(True)
        self.compare_button.setToolTip("Answer the question with every configuration (Ctrl+Enter)")
        self.compare_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop every answer (Esc)")
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel()
        self.status.setWordWrap(True)

        question_label = QLabel("<b>Question</b>")
        configs_label = QLabel("<b>Configurations</b>")
        actions = QHBoxLayout()
        actions.addWidget(self.status, 1)
        actions.addWidget(self.parallel)
        actions.addSpacing(12)
        actions.addWidget(self.compare_button)
        actions.addWidget(self.stop_button)
        top = QVBoxLayout()
        top.setContentsMargins(14, 12, 14, 8)
        top.setSpacing(6)
        top.addWidget(question_label)
        top.addWidget(self.question)
        top.addWidget(configs_label)
        top.addWidget(self.editor)
        top.addLayout(actions)

        self.past = QListWidget()
        self.past.setWordWrap(True)
        self.past.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.past.itemActivated.connect(self._on_past_item_activated)  # Enter
        self.past.itemClicked.connect(self._on_past_item_activated)
        self._past_title = QLabel("<b>Past comparisons</b>")
        self._past_empty = QLabel("None yet in this conversation.")
        self._past_empty.setWordWrap(True)
        self._past_empty.setEnabled(False)
        past_box = QWidget()
        past_layout = QVBoxLayout(past_box)
        past_layout.setContentsMargins(10, 4, 4, 8)
        past_layout.addWidget(self._past_title)
        past_layout.addWidget(self._past_empty)
        past_layout.addWidget(self.past, 1)

        self._columns_box = QWidget()
        self._columns_layout = QHBoxLayout(self._columns_box)
        self._columns_layout.setContentsMargins(6, 4, 10, 10)
        self._columns_layout.setSpacing(10)
        self._empty = QLabel(EMPTY_TEXT)
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setEnabled(False)
        self._empty.setMaximumWidth(560)
        self._columns_layout.addWidget(self._empty, 1, Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._columns_box)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(past_box)
        split.addWidget(scroll)
        split.setStretchFactor(1, 1)
        split.setSizes([210, 1070])
        self._split = split

        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.HLine)
        rule.setFrameShadow(QFrame.Shadow.Sunken)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(rule)
        layout.addWidget(split, 1)

        stop = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        stop.setContext(Qt.ShortcutContext.WindowShortcut)
        stop.activated.connect(self.stop)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            go = QShortcut(QKeySequence(keys), self)
            go.setContext(Qt.ShortcutContext.WindowShortcut)
            go.activated.connect(self.start)
        self._set_running(False)

    # ---- public API ------------------------------------------------------------------------

    def open_for(self, model: str = "", question: str = "") -> None:
        """Show the window; the first time with the usual configurations for `model`."""
        engine = self._controller.engine
        if engine is not None:
            self.editor.set_default_k(engine.settings.top_k)
        if not self._configured:
            top_k = engine.settings.top_k if engine is not None else 6
            default = model or (engine.settings.chat_model if engine is not None else "")
            self.editor.set_configs(default_configs(default, top_k))
            self._configured = True
        if question and not self._running:
            self.question.setPlainText(question)
        self._refresh_past()
        if self.isVisible():
            self.raise_()  # behind the main window: bring it forward
        else:
            self.show()
        self.activateWindow()
        self._controller.refresh_models()

    def start(self) -> None:
        """Answer the question with every configuration (nothing happens if one is running)."""
        if self._running:
            return
        engine = self._controller.engine
        question = self.question.toPlainText().strip()
        configs = self.editor.configs()
        if engine is None:
            self.status.setText("The library is still opening; try again in a moment.")
            return
        if any(not c.model for c in configs):
            self.status.setText("Choose a model for every configuration.")
            return
        parallel = self.parallel.isChecked()
        cancel = threading.Event()
        try:
            events = run_comparison(engine, question, configs, parallel=parallel, cancel=cancel)
        except CompareError as exc:
            self.status.setText(str(exc).replace("\n", " "))
            return
        conv = self._conversation()
        self._run_conv_id = conv.id if conv is not None else None
        self._cancel = cancel
        self._shown, self._shown_conv_id = None, None
        self._show_columns(configs)
        for column in self._columns:
            if parallel:
                column.set_started()
            elif column.index > 0:
                column.set_waiting(f"Waiting for its turn: it runs after #{column.index}.")
        self.status.setText(
            "Sending every configuration at once…"
            if parallel
            else "Answering one configuration at a time, so each one's figures are its own…"
        )
        self._started_at = time.monotonic()
        self._set_running(True)
        run_in_background(
            lambda: events,
            on_event=self._on_run_event,
            on_done=self._on_run_done,
            on_error=self._on_run_failed,
            owner=self,
        )

    def stop(self) -> None:
        """Stop every configuration; what was answered so far is kept and saved."""
        if self._cancel is not None and self._running:
            self._cancel.set()
            self.status.setText("Stopping…")

    def is_running(self) -> bool:
        return self._running

    def columns(self) -> list[CompareColumn]:
        return list(self._columns)

    def shown_comparison(self) -> Comparison | None:
        return self._shown

    def show_comparison(self, comparison: Comparison, conv_id: str | None) -> None:
        """Show a finished comparison (a past one, reopened), ready to be marked or re-run."""
        if self._running:
            return
        self.question.setPlainText(comparison.question)
        self.editor.set_configs(comparison.configs)
        self.parallel.setChecked(comparison.parallel)
        self._show_columns(comparison.configs)
        for column, answer in zip(self._columns, comparison.answers, strict=True):
            column.show_answer(answer, self._waited_for(answer.metrics.queued_behind))
        self._set_shown(comparison, conv_id)
        when = time.strftime("%d %b %Y, %H:%M", time.localtime(comparison.created_at))
        self.status.setText(f"Comparison of {when}.")

    # ---- running ---------------------------------------------------------------------------

    def _show_columns(self, configs: list[CompareConfig]) -> None:
        for column in self._columns:
            self._columns_layout.removeWidget(column)
            column.deleteLater()
        self._columns = []
        self._empty.hide()
        for index, config in enumerate(configs):
            column = CompareColumn(index, config)
            column.best_toggled.connect(self._on_column_best_toggled)
            column.source_activated.connect(self.source_activated.emit)
            column.open_externally_requested.connect(self._open_externally)
            column.show_in_folder_requested.connect(self._show_in_folder)
            self._columns_layout.addWidget(column, 1)
            self._columns.append(column)

    def _on_run_event(self, event: object) -> None:
        if isinstance(event, ConfigToken):
            self._columns[event.index].append_token(event.text)
        elif isinstance(event, ConfigStarted):
            self._columns[event.index].set_started()
        elif isinstance(event, ConfigSources):
            self._columns[event.index].show_sources(event.sources)
        elif isinstance(event, ConfigFinished):
            self._columns[event.index].show_answer(event.answer)
        elif isinstance(event, ComparisonFinished):
            self._on_comparison_finished(event.comparison)

    def _on_comparison_finished(self, comparison: Comparison) -> None:
        if comparison.parallel:  # only now is it known who waited for whom
            for column, answer in zip(self._columns, comparison.answers, strict=True):
                if answer.metrics.queued_behind:
                    column.show_answer(answer, self._waited_for(answer.metrics.queued_behind))
        elapsed = format_seconds(time.monotonic() - self._started_at)
        stopped = any(a.cancelled for a in comparison.answers)
        failed = sum(1 for a in comparison.answers if a.error)
        summary = f"Stopped after {elapsed}." if stopped else f"Done in {elapsed}."
        if failed:
            summary += f" {failed} of {len(comparison.answers)} failed."
        if not any(a.text for a in comparison.answers):
            self.status.setText(summary + " Nothing was answered, so nothing was saved.")
        else:
            conv_id = self._saver.add(comparison, self._run_conv_id)
            self._set_shown(comparison, conv_id)
            self.status.setText(summary + " Saved with the conversation.")
        self.comparison_finished.emit(comparison)

    def _on_run_done(self, _result: object) -> None:
        self._set_running(False)

    def _on_run_failed(self, message: str) -> None:
        self._set_running(False)
        self.status.setText(message.replace("\n", " "))
        for column in self._columns:
            if column.answer is None:
                column.set_waiting("Did not finish: see the message above.")

    def _set_running(self, running: bool) -> None:
        if running != self._running:
            self._running = running
            self.running_changed.emit(running)
        if not running:
            self._cancel = None
        self.compare_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.editor.setEnabled(not running)
        self.parallel.setEnabled(not running)
        self.question.setReadOnly(running)
        self.past.setEnabled(not running)

    def _waited_for(self, indices: tuple[int, ...]) -> list[str]:
        return [f"#{i + 1}" for i in indices]

    # ---- best and saving -------------------------------------------------------------------

    def _set_shown(self, comparison: Comparison, conv_id: str | None) -> None:
        self._shown, self._shown_conv_id = comparison, conv_id
        for column in self._columns:
            column.set_best(column.index == comparison.best)
            column.set_best_enabled(conv_id is not None)
        self._refresh_past()

    def _on_column_best_toggled(self, index: int, checked: bool) -> None:
        comparison, conv_id = self._shown, self._shown_conv_id
        if comparison is None or conv_id is None:
            return
        if checked:
            best: int | None = index
        else:
            best = None if comparison.best == index else comparison.best
        comparison.best = best
        for column in self._columns:
            column.set_best(column.index == best)
        self._saver.set_best(conv_id, comparison.id, best)
        self._refresh_past()

    def _conversation(self) -> Conversation | None:
        return self._saver.conversation()

    def _on_saver_failed(self, message: str) -> None:
        self.status.setText("The comparison could not be saved: " + message.replace("\n", " "))

    def is_saving(self) -> bool:
        return self._saver.is_writing()

    # ---- past comparisons ------------------------------------------------------------------

    def _refresh_past(self) -> None:
        conv = self._conversation()
        comparisons = list(reversed(conv.comparisons)) if conv is not None else []  # newest first
        self.setWindowTitle(f"Compare answers — {conv.title}" if conv else "Compare answers")
        ids = [c.id for c in comparisons]
        items = [self.past.item(i) for i in range(self.past.count())]
        if [item.data(Qt.ItemDataRole.UserRole) for item in items] != ids:
            # Rebuilt only when the list itself changed: this may run from an item's own click.
            self.past.clear()
            items = []
            for comparison in comparisons:
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, comparison.id)
                self.past.addItem(item)
                items.append(item)
        for item, comparison in zip(items, comparisons, strict=True):
            text, tip = _past_label(comparison)
            item.setText(text)
            item.setToolTip(tip)
            if self._shown is not None and comparison.id == self._shown.id:
                self.past.setCurrentItem(item)
        self._past_empty.setVisible(not comparisons)
        self.past.setVisible(bool(comparisons))

    def _on_past_item_activated(self, item: QListWidgetItem) -> None:
        conv = self._conversation()
        comparison = conv.comparison(str(item.data(Qt.ItemDataRole.UserRole))) if conv else None
        if conv is not None and comparison is not None and comparison is not self._shown:
            self.show_comparison(comparison, conv.id)

    # ---- models, sources, closing ----------------------------------------------------------

    def _on_controller_models_loaded(self, models: object) -> None:
        if isinstance(models, list):
            self.editor.set_models(models)

    def _open_externally(self, source: dict[str, Any]) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(source["path"])))

    def _show_in_folder(self, source: dict[str, Any]) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(str(source["path"])).parent)))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # The main window may have switched conversations while this one was in the back.
        active = event.type() == QEvent.Type.ActivationChange and self.isActiveWindow()
        if active and not self._running:
            self._refresh_past()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent() and event.type() == QEvent.Type.Close:
            self.stop()
        return False

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()  # what was answered is still saved when the workers finish
        super().closeEvent(event)
