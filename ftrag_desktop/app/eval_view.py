"""The Evaluate tab: fine-tuning or RAG, measured on the user's own documents.

Three pages, in the order of the workflow: **Sets** (build a set of questions from the index,
review it, save versions, import/export JSONL, export fine-tune data: `eval_sets`), **Run**
(answer a set with several configurations, e.g. base + RAG, fine-tuned alone, fine-tuned +
RAG: `eval_run`) and **Report** (the figures, charts and the "which approach?" summary of each
run: `eval_report_view`).  This view wires them together and to the `AppController`: the saved
sets feed the Run page, a finished run opens on the Report page, and the models (with their
fine-tuned marks, from `ModelManager.list_models` on a worker) feed every model picker.
`stop()` cancels a build or a run (the main window calls it when it closes).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.eval_report_view import ReportPage
from ftrag_desktop.app.eval_run import RunPage
from ftrag_desktop.app.eval_sets import SetsPage
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.evalset import EvalSet
from ftrag_desktop.core.evaluate import RunFinished
from ftrag_desktop.core.models import ModelManager, ModelRecord

__all__ = ["EvaluateView"]


class EvaluateView(QWidget):
    """See the module docstring."""

    models_listed = Signal(object)  # list[core.models.ModelRecord]

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._loaded = False
        self._listing_models = False
        self.sets = SetsPage(controller)
        self.run = RunPage(controller)
        self.report = ReportPage(controller)
        self.pages = QTabWidget()
        self.pages.addTab(self.sets, "1 · Sets")
        self.pages.addTab(self.run, "2 · Run")
        self.pages.addTab(self.report, "3 · Report")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.pages)
        self.sets.sets_listed.connect(self._on_sets_sets_listed)
        self.sets.set_saved.connect(self._on_sets_set_saved)
        self.run.run_finished.connect(self._on_run_run_finished)
        self.report.resume_requested.connect(self._on_report_resume_requested)
        controller.engine_ready.connect(self._on_controller_engine_ready)
        controller.models_loaded.connect(self._on_controller_models_loaded)

    # ---- public API ------------------------------------------------------------------------

    def load(self) -> None:
        """Read the saved sets, the runs and the models (each on a worker)."""
        if self._controller.engine is None:
            return
        self._loaded = True
        self.run.ensure_configs()
        self.sets.reload()
        self.report.reload()
        self.refresh_models()

    def refresh_models(self) -> None:
        engine = self._controller.engine
        if engine is None or self._listing_models:
            return
        self._listing_models = True
        client, home = engine.client, engine.home

        def listed(records: object) -> None:
            self._listing_models = False
            if isinstance(records, list):
                self._set_models(records)

        def failed(message: str) -> None:  # Ollama down: the pickers keep what they had
            self._listing_models = False
            self.run.current.setText(message.replace("\n", " "))

        run_in_background(
            lambda: ModelManager(client, home).list_models(),
            on_done=listed,
            on_error=failed,
            owner=self,
        )

    def show_report(self, run_id: str = "") -> None:
        """The Report page, with `run_id` (or the newest run) shown."""
        self.pages.setCurrentWidget(self.report)
        self.report.reload(select=run_id)

    def is_busy(self) -> bool:
        return self.sets.is_building() or self.run.is_running()

    def stop(self) -> None:
        """Cancel a build or a run in progress (a run can be resumed later)."""
        self.sets.cancel_build()
        self.run.cancel()

    # ---- wiring ----------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._loaded:
            self.load()

    def _on_controller_engine_ready(self, _engine: object) -> None:
        if self.isVisible():
            self.load()

    def _on_controller_models_loaded(self, _models: object) -> None:
        if self._loaded:
            self.refresh_models()  # Ollama's list changed: re-read the details and lineage

    def _set_models(self, records: list[ModelRecord]) -> None:
        self.sets.set_models(records)
        self.run.set_models(records)
        self.models_listed.emit(records)

    def _on_sets_sets_listed(self, names: object) -> None:
        if isinstance(names, list):
            self.run.set_sets(names)

    def _on_sets_set_saved(self, evalset: object) -> None:
        if isinstance(evalset, EvalSet):
            self.run.select_set(evalset.name)

    def _on_run_run_finished(self, event: object) -> None:
        if isinstance(event, RunFinished):
            self.show_report(event.run_id)

    def _on_report_resume_requested(self, run_id: str) -> None:
        self.pages.setCurrentWidget(self.run)
        self.run.resume(run_id)
