"""The Train tab: fine-tune a local model on a training set exported from the user's documents.

Opening the tab asks, on a worker, whether the `[train]` extra is installed
(`core.train_env.detect_extra`, which never imports torch).  Without it the tab is
`train_empty.MissingExtraPage`.  With it: the form (`train_form`) on the left, above the
estimate (`train_estimate_box`) and Start / Cancel / Resume; the run (`train_run`) on the right.

Every edit of the form schedules ``ftrag train … --estimate-only --json`` in a child process
(`train_estimator`); Start stays disabled, with the reason beside it, until the estimate of
exactly the form's settings says the run fits.  Start runs the same command without
`--estimate-only` in a child process whose JSON lines drive the run panel as they come: the
GUI thread never waits for it, and a crash of training cannot take the app down.  Cancel sends
the child SIGINT (it stops after the current micro-batch and saves a checkpoint); Resume runs
the same command again, which continues from that checkpoint.  When the run finishes, the
model list is refreshed and "Use in chat" / "Evaluate against the base" are offered
(`use_in_chat_requested`, `evaluate_requested`; the main window switches tabs, and
`compare_with_base` sets up the Evaluate tab's Run page).

Quitting: `stop()` asks the child to stop, `wait_stopped(ms)` waits within the app's quit
budget and then kills it (the checkpoints already written are kept).
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.eval_view import EvaluateView
from ftrag_desktop.app.models_ops import tone
from ftrag_desktop.app.train_args import cli_command
from ftrag_desktop.app.train_empty import MissingExtraPage
from ftrag_desktop.app.train_estimate_box import EstimateBox
from ftrag_desktop.app.train_estimator import EstimateResult, Estimator
from ftrag_desktop.app.train_files import (
    ExportChoice,
    SavedCheckpoint,
    recent_exports,
    saved_checkpoint,
)
from ftrag_desktop.app.train_form import TrainForm
from ftrag_desktop.app.train_process import CRASHED, TrainProcess
from ftrag_desktop.app.train_run import RunPanel
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core import train_env
from ftrag_desktop.core.evaluate import EvalConfig
from ftrag_desktop.core.llm import ModelInfo
from ftrag_desktop.core.train_env import TrainExtra

log = logging.getLogger(__name__)

__all__ = ["TrainView", "compare_with_base"]

QUIT_GRACE_MS = 800


def detect_extra() -> TrainExtra:
    """Whether training can run here (a frozen app never bundles torch)."""
    return train_env.detect_extra()


def compare_with_base(view: EvaluateView, model: str, base: str, top_k: int) -> None:
    """The Evaluate tab's Run page set up to compare `model` with `base` (when the base is an
    Ollama model), each alone and with the documents."""
    configs = [EvalConfig(model, rag=False), EvalConfig(model, rag=True, top_k=top_k)]
    if base:
        configs = [EvalConfig(base, rag=False), EvalConfig(base, rag=True, top_k=top_k), *configs]

    def apply(*_: object) -> None:
        view.run.editor.set_configs(configs)

    view.pages.setCurrentWidget(view.run)
    apply()
    # The model list that arrives next (it holds the new model) may re-suggest the usual
    # comparison on a Run page that never had models: apply ours again after it.
    view.models_listed.connect(apply, Qt.ConnectionType.SingleShotConnection)
    view.refresh_models()


class TrainView(QWidget):
    """See the module docstring."""

    extra_checked = Signal(object)  # core.train_env.TrainExtra
    estimate_ended = Signal(object)  # the `estimate` event (dict), or None when refused
    run_event = Signal(object)  # every event of the running training (dict)
    run_ended = Signal(str)  # "finished", "cancelled", "error" or "crashed"
    model_trained = Signal(str)
    use_in_chat_requested = Signal(str)
    evaluate_requested = Signal(str, str)  # the new model, its base in Ollama ("" for a file)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._loaded = False
        self.extra: TrainExtra | None = None
        self._models_known = False
        self._closing = False  # quitting: start nothing new
        self._run: TrainProcess | None = None
        self._processes: set[TrainProcess] = set()  # every child not yet ended
        self.estimator = Estimator(self._spawn_estimate, self)
        self.estimate_result: EstimateResult | None = None  # the last estimate that ended
        self._run_args: list[str] | None = None
        self._run_dir = ""
        self._resumable: list[str] | None = None  # the arguments Resume runs
        self.finished_event: dict[str, Any] | None = None
        self._build()
        self.form.changed.connect(self._on_form_changed)
        self.estimator.started.connect(self._on_estimator_started)
        self.estimator.ended.connect(self._on_estimator_ended)
        self.missing.check_again_requested.connect(self.check_extra)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.run_panel.use_button.clicked.connect(self._on_use_button_clicked)
        self.run_panel.evaluate_button.clicked.connect(self._on_evaluate_button_clicked)
        controller.models_loaded.connect(self._on_controller_models_loaded)
        controller.engine_ready.connect(self._on_controller_engine_ready)

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.checking = QLabel("Checking whether fine-tuning is installed…")
        self.checking.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.missing = MissingExtraPage()
        self.form = TrainForm()
        self.estimate_box = EstimateBox()
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step; a checkpoint is kept")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run from its last checkpoint")
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 6, 0)
        column.addWidget(self.form)
        column.addWidget(self.estimate_box)
        column.addLayout(buttons)
        column.addWidget(self.reason)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(430)
        self.run_panel = RunPanel()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.run_panel)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([470, 790])
        self.main = split
        self.pages = QStackedWidget()
        for page in (self.checking, self.missing, self.main):
            self.pages.addWidget(page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.pages)
        self._update_buttons()

    # ---- loading ---------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._loaded:
            self.load()
        elif self.extra is not None and self.extra.installed:
            self.reload_exports()

    def load(self) -> None:
        """Detect the extra, list the exports, ask for the models (each on a worker)."""
        self._loaded = True
        self.check_extra()

    def check_extra(self) -> None:
        self.pages.setCurrentWidget(self.checking)
        run_in_background(
            detect_extra,
            on_done=self._on_extra_detected,
            on_error=self._on_extra_failed,
            owner=self,
        )

    def _on_extra_detected(self, extra: object) -> None:
        assert isinstance(extra, TrainExtra)
        self.extra = extra
        if extra.installed:
            self.pages.setCurrentWidget(self.main)
            self.reload_exports()
            if not self._models_known:
                self._controller.refresh_models()
            self._on_form_changed()
        else:
            self.missing.show_extra(extra)
            self.pages.setCurrentWidget(self.missing)
        self.extra_checked.emit(extra)

    def _on_extra_failed(self, message: str) -> None:
        self.checking.setText(f"Could not tell whether fine-tuning is installed: {message}")

    def reload_exports(self) -> None:
        root = self._controller.home.root
        run_in_background(lambda: recent_exports(root), on_done=self._on_exports_listed, owner=self)

    def _on_exports_listed(self, choices: object) -> None:
        if isinstance(choices, list):
            self.form.set_exports([c for c in choices if isinstance(c, ExportChoice)])

    def _on_controller_models_loaded(self, models: object) -> None:
        if isinstance(models, list):
            self._models_known = True
            self.form.set_models([m for m in models if isinstance(m, ModelInfo)])

    def _on_controller_engine_ready(self, _engine: object) -> None:
        self._on_form_changed()

    # ---- the estimate ----------------------------------------------------------------------

    def _command(self, args: list[str]) -> tuple[str, list[str]] | None:
        engine = self._controller.engine
        if engine is None:
            return None
        return cli_command(engine.home.root, engine.client.host, args)

    def _on_form_changed(self) -> None:
        """Any edit: the estimate shown is no longer about the form; ask for a new one."""
        if self.is_running() or self._closing:
            return
        self.estimate_result = None
        problems = self.form.problems()
        if problems:
            self.estimator.schedule(None)
            self.estimate_box.show_problem(problems[0])
        elif self._controller.engine is None:
            self.estimator.schedule(None)
            self.estimate_box.show_waiting("The library is still opening…")
        else:
            self.estimator.schedule(self.form.job().cli_args(estimate_only=True))
            self.estimate_box.show_waiting("Estimating time and memory…")
        self._update_buttons()

    def _spawn_estimate(self, args: list[str]) -> TrainProcess | None:
        command = self._command(args) if not self._closing else None
        return self._process(command) if command is not None else None

    def _process(self, command: tuple[str, list[str]]) -> TrainProcess:
        process = TrainProcess(*command, parent=self)
        self._processes.add(process)
        process.ended.connect(lambda *_: self._forget(process))
        return process

    def _forget(self, process: TrainProcess) -> None:
        self._processes.discard(process)
        process.deleteLater()

    def _on_estimator_started(self) -> None:
        self.estimate_box.show_waiting(
            "Estimating time and memory (starting the training tools takes a few seconds)…"
        )

    def _on_estimator_ended(self, result: object) -> None:
        assert isinstance(result, EstimateResult)
        self.estimate_result = result
        if result.error is not None:
            error = result.error
            self.estimate_box.show_error(str(error.get("message")), str(error.get("hint") or ""))
        elif result.estimate is not None:
            self.estimate_box.show_estimate(result.estimate, result.notices)
            run_dir = str(result.estimate.get("run_dir") or "")
            if "--no-resume" not in result.args:
                run_in_background(
                    lambda: saved_checkpoint(run_dir),
                    on_done=lambda saved: self._on_checkpoint_found(saved, result),
                    owner=self,
                )
        else:
            tail = "\n".join(result.stderr.splitlines()[-3:]) or "No details."
            self.estimate_box.show_error(f"The estimate failed (exit code {result.code}).", tail)
        self._update_buttons()
        self.estimate_ended.emit(result.estimate)

    def _on_checkpoint_found(self, saved: object, result: EstimateResult) -> None:
        if result is not self.estimate_result or self.is_running():
            return  # the form changed since
        found = saved if isinstance(saved, SavedCheckpoint) else None
        self.estimate_box.show_checkpoint(found)
        if found is not None:
            self._resumable = [a for a in result.args if a != "--estimate-only"]
        self._update_buttons()

    # ---- the run ---------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._run is not None

    def is_busy(self) -> bool:
        return self.is_running()

    def start_blocker(self) -> str:
        """Why Start is disabled ("" when it is not)."""
        if self.is_running():
            return "A run is in progress."
        if self._controller.engine is None:
            return "The library is still opening."
        problems = self.form.problems()
        if problems:
            return problems[0]
        result = self.estimate_result
        current = self.form.job().cli_args(estimate_only=True)
        if self.estimator.is_busy() or result is None or result.args != current:
            return "Waiting for the estimate of time and memory…"
        if result.error is not None:
            return str(result.error.get("message"))
        if result.estimate is None:
            return "The estimate failed: see above."
        return ""

    def start(self) -> None:
        """Start training what the form says (its estimate must fit)."""
        if self.start_blocker() or self.estimate_result is None:
            return
        self._launch([a for a in self.estimate_result.args if a != "--estimate-only"], False)

    def resume(self) -> None:
        """Run the stopped run again: the CLI continues from its last checkpoint."""
        if self.is_running() or self._resumable is None:
            return
        self._launch([a for a in self._resumable if a != "--no-resume"], True)

    def cancel(self) -> None:
        """Stop after the current micro-batch; the child saves a checkpoint first."""
        if self._run is not None and not self._run.stopping:
            self._run.stop()
            self.run_panel.headline.setText("Stopping after the current step…")
            self.run_panel.say("Cancel asked: the run stops after the current step.")
            self._update_buttons()

    def _launch(self, args: list[str], resuming: bool) -> None:
        command = self._command(args)
        if command is None:
            return
        self.estimator.cancel()
        self._run_args = args
        self.finished_event = None
        estimate = self.estimate_result.estimate if self.estimate_result else None
        steps = int(((estimate or {}).get("estimate") or {}).get("steps") or 0)
        self.run_panel.begin(steps, resuming=resuming)
        process = self._process(command)
        process.event_received.connect(self._on_run_event_received)
        process.ended.connect(self._on_run_ended)
        self._run = process
        process.start()
        self._update_buttons()

    def _on_run_event_received(self, ev: object) -> None:
        if self.sender() is not self._run or not isinstance(ev, dict):
            return
        self.run_panel.handle(ev)
        kind = ev.get("event")
        if kind == "estimate":
            self._run_dir = str(ev.get("run_dir") or "")
        elif kind == "resumed":
            run_dir, step = self._run_dir, int(ev.get("step") or 0)
            run_in_background(
                lambda: saved_checkpoint(run_dir),
                on_done=lambda saved: self._on_history_read(saved, step),
                owner=self,
            )
        elif kind in ("checkpoint", "cancelled") and self._run_args is not None:
            self._resumable = list(self._run_args)
        self.run_event.emit(ev)

    def _on_history_read(self, saved: object, step: int) -> None:
        if isinstance(saved, SavedCheckpoint):
            self.run_panel.chart.set_history(saved.train_losses, saved.val_losses, step)

    def _on_run_ended(self, code: int, last: object) -> None:
        process = self.sender()
        if not isinstance(process, TrainProcess) or process is not self._run:
            return
        self._run = None
        ev: dict[str, Any] = last if isinstance(last, dict) else {}
        kind = ev.get("event")
        if kind == "finished":
            outcome = "finished"
            self.finished_event = ev
            self._resumable = None
            self.run_panel.show_finished(ev)
            self._controller.refresh_models()
            self.model_trained.emit(str(ev.get("model")))
        elif kind == "cancelled" or (process.stopping and kind != "error"):
            outcome = "cancelled"
            checkpoint = ev.get("checkpoint") if kind == "cancelled" else None
            step = ev.get("step") if kind == "cancelled" else None
            self.run_panel.show_cancelled(
                step, str(checkpoint) if checkpoint else None, earlier=self._resumable is not None
            )
        elif kind == "error":
            outcome = "error"
            self.run_panel.show_error(str(ev.get("message")), str(ev.get("hint") or ""))
        else:
            outcome = "crashed"
            tail = process.stderr_tail().splitlines()[-6:]
            how = "was stopped" if code == CRASHED else f"exited with code {code}"
            self.run_panel.show_error(
                f"The training process {how} before it finished.", "\n".join(tail)
            )
        self._update_buttons()
        self.run_ended.emit(outcome)
        self._on_form_changed()  # a new estimate: the run's checkpoint, or the name now taken

    # ---- actions ---------------------------------------------------------------------------

    def _on_use_button_clicked(self) -> None:
        if self.finished_event is not None:
            self.use_in_chat_requested.emit(str(self.finished_event.get("model")))

    def _on_evaluate_button_clicked(self) -> None:
        ev = self.finished_event
        if ev is None:
            return
        lineage = ev.get("lineage") if isinstance(ev.get("lineage"), dict) else {}
        base = str(lineage.get("base") or "") if isinstance(lineage, dict) else ""
        self.evaluate_requested.emit(str(ev.get("model")), base)

    # ---- buttons and quitting --------------------------------------------------------------

    def _update_buttons(self) -> None:
        running = self.is_running()
        self.form.setEnabled(not running)
        blocker = self.start_blocker()
        self.start_button.setEnabled(not blocker)
        self.start_button.setToolTip(blocker or "Train, merge, check and import the new model")
        stopping = self._run is not None and self._run.stopping
        self.cancel_button.setEnabled(running and not stopping)
        self.resume_button.setEnabled(not running and self._resumable is not None)
        if running:
            self.reason.setText("")
        elif blocker:
            colour = tone(self, "muted")
            text = html.escape(f"Start is disabled: {blocker}")
            self.reason.setText(f"<span style='color:{colour}'>{text}</span>")
        else:
            self.reason.setText("")

    def stop(self) -> None:
        """Quitting: ask a run to stop (it saves a checkpoint); end estimates.  At once."""
        self._closing = True
        self.estimator.cancel()
        for process in list(self._processes):
            if process is self._run:
                process.stop()
            else:
                process.kill()

    def wait_stopped(self, timeout_ms: int = QUIT_GRACE_MS) -> bool:
        """Quitting: wait up to `timeout_ms` for the run to stop, then kill it (the checkpoints
        it wrote are kept).  True when the run stopped by itself, or there was none."""
        clean = True
        for process in list(self._processes):
            if process is self._run:
                clean = process.wait_stopped(timeout_ms)
            else:
                process.wait_stopped(0)
        return clean
