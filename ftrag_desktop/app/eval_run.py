"""The Evaluate tab's Run page: a set, the configurations, an optional judge; Start, Cancel,
Resume.

The run goes through `core.evaluate.run_evaluation` (or `resume_evaluation`) on a worker: the set
is loaded there too, and the core stores every scored answer as it comes, so a cancelled run
(or one cut short by quitting) can be resumed later, skipping what was answered.  This page
shows the progress bar, the question being answered and a line per scored answer, and says
when the run is done; the Report page then shows its figures.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.eval_configs import EvalConfigEditor, suggested_configs
from ftrag_desktop.app.eval_new_set import model_label
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core import evaluate as ev
from ftrag_desktop.core.evalset import EvalSetStore
from ftrag_desktop.core.models import ModelRecord

__all__ = ["RunPage"]

JUDGE_TIP = (
    "A different local model reads each answer and the reference and says whether they agree. "
    "It is reported in its own column, labelled with its name: a model's opinion, not a "
    "measurement. A configuration that uses the judge's own model is not judged."
)


def _short(text: str, width: int = 110) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def verdict(result: ev.ItemResult) -> str:
    """A scored answer in a few words, as `ftrag eval run` prints it."""
    if result.error:
        return f"failed: {_short(result.error, 60)}"
    if not result.answerable:
        return "declined" if result.abstained else "answered (should decline)"
    return "correct" if result.correct else "not correct"


class RunPage(QWidget):
    """See the module docstring."""

    run_started = Signal(str)  # run id
    item_scored = Signal(object)  # core.evaluate.ItemScored
    run_finished = Signal(object)  # core.evaluate.RunFinished
    running_changed = Signal(bool)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._cancel: threading.Event | None = None
        self._resumable = ""  # the run that stopped part-way, if any
        self._titles: list[str] = []
        self._configured = False
        self._build()

    def _build(self) -> None:
        self.set_name = QComboBox()
        self.set_name.setMinimumContentsLength(20)
        self.set_name.setToolTip("The evaluation set to answer (its latest version)")
        self.set_info = QLabel()
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Set:</b>"))
        top.addWidget(self.set_name)
        top.addWidget(self.set_info, 1)

        self.editor = EvalConfigEditor()
        self.suggest_button = QPushButton("Base + RAG, fine-tuned alone, fine-tuned + RAG")
        self.suggest_button.setToolTip(
            "Set up the usual comparison (with no fine-tuned model installed: the chat model "
            "with and without documents)"
        )
        self.suggest_button.clicked.connect(self.suggest)
        self.judge_on = QCheckBox("Also ask an LLM judge:")
        self.judge_on.setToolTip(JUDGE_TIP)
        self.judge = QComboBox()
        self.judge.setMinimumContentsLength(24)
        self.judge.setToolTip(JUDGE_TIP)
        self.judge.setEnabled(False)
        self.judge_on.toggled.connect(self.judge.setEnabled)
        judge_note = QLabel("(a model's opinion, shown apart from the measured scores)")
        judge_note.setEnabled(False)
        judge_row = QHBoxLayout()
        judge_row.addWidget(self.judge_on)
        judge_row.addWidget(self.judge)
        judge_row.addWidget(judge_note, 1)
        configs = QGroupBox("Configurations")
        box = QVBoxLayout(configs)
        box.addWidget(self.editor)
        row = QHBoxLayout()
        row.addWidget(QLabel("Suggested:"))
        row.addWidget(self.suggest_button)
        row.addStretch(1)
        box.addLayout(row)
        box.addLayout(judge_row)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(lambda: self.start())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current answer; the run can be resumed")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run, skipping what was answered")
        self.resume_button.clicked.connect(lambda: self.resume())
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m answers")
        self.current = QLabel("Choose a set and the configurations, then Start.")
        self.current.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("Each scored answer is listed here.")
        actions = QHBoxLayout()
        actions.addWidget(self.progress, 1)
        for button in (self.start_button, self.cancel_button, self.resume_button):
            actions.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(configs)
        layout.addLayout(actions)
        layout.addWidget(self.current)
        layout.addWidget(self.log, 1)
        self._set_running(False)

    # ---- inputs ----------------------------------------------------------------------------

    def set_sets(self, names: list[str]) -> None:
        current = self.set_name.currentText()
        self.set_name.clear()
        self.set_name.addItems(names)
        if current in names:
            self.set_name.setCurrentText(current)
        self.set_info.setText("" if names else "No saved set yet: build one on the Sets page.")

    def select_set(self, name: str) -> None:
        if self.set_name.findText(name) < 0:
            self.set_name.addItem(name)
        self.set_name.setCurrentText(name)

    def set_models(self, records: list[ModelRecord]) -> None:
        self.editor.set_models(records)
        judge = self.judge.currentData()
        self.judge.clear()
        for record in records:
            if not record.is_embedding:
                self.judge.addItem(model_label(record), record.name)
        index = self.judge.findData(judge)
        if index >= 0:
            self.judge.setCurrentIndex(index)
        if not self._configured and records:
            self.suggest()

    def suggest(self) -> None:
        """Fill in the usual comparison (see `suggested_configs`)."""
        engine = self._controller.engine
        chat = engine.settings.chat_model if engine is not None else ""
        top_k = engine.settings.top_k if engine is not None else 6
        self.editor.set_default_k(top_k)
        self.editor.set_configs(suggested_configs(self.editor.records(), chat, top_k))
        self._configured = bool(self.editor.records())  # redone once the models are known

    def ensure_configs(self) -> None:
        """Before the model list arrives: the chat model with and without documents."""
        if not self._configured and not self.editor.rows():
            self.suggest()

    def is_running(self) -> bool:
        return self._cancel is not None

    def resumable(self) -> str:
        return self._resumable

    # ---- running ---------------------------------------------------------------------------

    def start(self, set_name: str = "", version: int | None = None) -> None:
        """Start a new run of the configurations over the set (its latest version)."""
        engine = self._controller.engine
        name = set_name or self.set_name.currentText()
        configs = self.editor.configs()
        if engine is None or self.is_running():
            return
        if not name:
            self.current.setText("Choose a set first (build one on the Sets page).")
            return
        if any(not c.model for c in configs):
            self.current.setText("Choose a model for every configuration.")
            return
        judge = str(self.judge.currentData() or "") if self.judge_on.isChecked() else ""
        cancel = threading.Event()
        home = engine.home

        def op() -> object:
            evalset = EvalSetStore.for_home(home).load(name, version)
            return ev.run_evaluation(engine, evalset, configs, judge_model=judge, cancel=cancel)

        self.log.clear()
        self._go(op, cancel, f"Starting: {len(configs)} configurations over '{name}'…")

    def resume(self, run_id: str = "") -> None:
        """Continue a stopped run (the one this page stopped, else `run_id`, else the last)."""
        engine = self._controller.engine
        if engine is None or self.is_running():
            return
        target = run_id or self._resumable or "last"
        cancel = threading.Event()
        self._go(
            lambda: ev.resume_evaluation(engine, target, cancel=cancel), cancel, "Resuming the run…"
        )

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.current.setText("Stopping after the current answer…")

    def _go(self, op: object, cancel: threading.Event, text: str) -> None:
        self._cancel = cancel
        self.current.setText(text)
        self.progress.setRange(0, 0)
        self._set_running(True)
        run_in_background(
            op,  # type: ignore[arg-type]
            on_event=self._on_run_event,
            on_done=self._on_run_done,
            on_error=self._on_run_failed,
            owner=self,
        )

    def _on_run_event(self, event: object) -> None:
        if isinstance(event, ev.RunStarted):
            self._titles = [c.title() for c in event.configs]
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(event.done)
            again = f" ({event.done} answered before)" if event.done else ""
            self.log.appendPlainText(f"Run {event.run_id}: {event.total} answers to get{again}.")
            self.run_started.emit(event.run_id)
        elif isinstance(event, ev.ItemStarted):
            title = self._titles[event.config_index]
            self.current.setText(
                f"[{event.done + 1}/{event.total}] {title}: {_short(event.question)}"
            )
        elif isinstance(event, ev.ItemScored):
            self.progress.setValue(event.done)
            title = self._titles[event.config_index]
            self.log.appendPlainText(
                f"[{event.done}/{event.total}] {title}: {verdict(event.result)}"
            )
            self.item_scored.emit(event)
        elif isinstance(event, ev.RunFinished):
            self._on_run_finished(event)

    def _on_run_finished(self, event: ev.RunFinished) -> None:
        seconds = f"{event.seconds:.0f} s" if event.seconds >= 1 else "under a second"
        if event.cancelled:
            self._resumable = event.run_id
            self.current.setText(
                f"Stopped after {event.done} of {event.total} answers ({seconds}). "
                "Resume continues where it stopped."
            )
        else:
            self._resumable = "" if event.report.complete else event.run_id
            failed = sum(r.errors for r in event.report.rows)
            extra = f" {failed} answers failed: Resume tries them again." if failed else ""
            self.current.setText(f"Done: {event.done} answers in {seconds}.{extra}")
        self.run_finished.emit(event)

    def _on_run_done(self, _result: object) -> None:
        self._set_running(False)

    def _on_run_failed(self, message: str) -> None:
        self._set_running(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.current.setText(message.replace("\n", " "))

    def _set_running(self, running: bool) -> None:
        if not running:
            self._cancel = None
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(not running and bool(self._resumable))
        for widget in (self.editor, self.set_name, self.suggest_button, self.judge_on):
            widget.setEnabled(not running)
        self.judge.setEnabled(not running and self.judge_on.isChecked())
        self.running_changed.emit(running)
