"""The Models dialog: what Ollama has installed, pull, delete, and import a fine-tune.

Tab "Installed": a sortable table of the local models (name, family, parameters, quantization,
context, size on disk, modified, and a badge for fine-tuned variants with their base; hover for
the lineage), the selected model's details, "Use in chat", "Delete…", and the pull panel.
Tab "Import a fine-tune": `ImportPanel`.

Every Ollama call runs on a worker (`run_in_background`); the table is filled from
`ModelManager.list_models()`.  When Ollama cannot be reached the dialog says so, with the hint.
After a pull, delete or import, the table and the main window's model picker are refreshed
(`controller.refresh_models()`).  `model_chosen(name)` asks the window to answer with that
model.  Closing the dialog, or the window it belongs to, cancels a running pull or import.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QEvent, QItemSelection, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.models_import import ImportPanel
from ftrag_desktop.app.models_ops import Failure, plain_text, reporting, size_text, tone
from ftrag_desktop.app.models_pull import PullPanel
from ftrag_desktop.app.models_table import (
    NAME,
    RECORD_ROLE,
    TUNED,
    BadgeDelegate,
    ModelTableModel,
    delete_question,
    details_html,
    make_proxy,
)
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.llm import ModelInfo, normalize_model_name
from ftrag_desktop.core.model_import import ImportFinished
from ftrag_desktop.core.models import ModelManager, ModelRecord

__all__ = ["ModelsDialog"]


class ModelsDialog(QDialog):
    """Non-modal; `model_chosen(name)` when the user picks a model for the chat."""

    model_chosen = Signal(str)
    models_listed = Signal(object)  # list[ModelRecord] | Failure, once a refresh ends

    def __init__(
        self,
        controller: AppController,
        current_model: Callable[[], str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setModal(False)
        self.resize(1100, 760)
        self._controller = controller
        self._current_model = current_model or (lambda: "")
        self._loading = False
        self._again = False  # the list changed while it was being read: read it once more
        self._watched = parent.window() if parent is not None else None
        self._build()
        self.pull_panel.pulled.connect(self._on_pull_panel_pulled)
        self.import_panel.imported.connect(self._on_import_panel_imported)
        self.import_panel.use_requested.connect(self._choose)
        controller.models_loaded.connect(self._on_controller_models_loaded)
        controller.engine_ready.connect(self._on_controller_engine_ready)
        if self._watched is not None:
            self._watched.installEventFilter(self)
        self.refresh()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.summary = QLabel("Loading the models from Ollama…")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMaximumWidth(240)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Ask Ollama for its models again (F5)")
        self.refresh_button.clicked.connect(self.refresh)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Refresh), self, self.refresh)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.filter_edit)
        top.addWidget(self.refresh_button)

        self.banner = QLabel()
        self.banner.setObjectName("models-banner")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner.setStyleSheet(
            "#models-banner { background: #fff4d6; border: 1px solid #e0b84a; "
            "border-radius: 4px; padding: 6px; color: #4a3b00; }"
        )
        self.banner.hide()

        self.model = ModelTableModel(self)
        self.proxy = make_proxy(self.model)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setHighlightSections(False)
        self.table.setItemDelegateForColumn(TUNED, BadgeDelegate(self.table))
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        delete_key = QKeySequence(QKeySequence.StandardKey.Delete)
        delete = QShortcut(delete_key, self.table, self._on_delete_clicked)
        delete.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.details = QTextBrowser()
        self.details.setOpenLinks(False)
        self.details.setMinimumHeight(self.fontMetrics().lineSpacing() * 5 + 16)
        self.use_button = QPushButton("Use in chat")
        self.use_button.setToolTip("Answer the next questions with this model")
        self.use_button.clicked.connect(self._on_use_clicked)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Remove this model from Ollama (asks first)")
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        actions = QVBoxLayout()
        actions.addWidget(self.use_button)
        actions.addWidget(self.delete_button)
        actions.addStretch(1)
        details_row = QWidget()
        details_layout = QHBoxLayout(details_row)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addWidget(self.details, 1)
        details_layout.addLayout(actions)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.table)
        split.addWidget(details_row)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([240, 270])

        self.pull_panel = PullPanel(self._manager)
        installed = QWidget()
        column = QVBoxLayout(installed)
        column.addWidget(split, 1)
        column.addWidget(self.status)
        column.addWidget(self.pull_panel)

        self.import_panel = ImportPanel(self._manager)
        self.tabs = QTabWidget()
        self.tabs.addTab(installed, "Installed")
        self.tabs.addTab(self.import_panel, "Import a fine-tune")

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(close)
        self._show_selection(None)

    # ---- the list --------------------------------------------------------------------------

    def _manager(self) -> ModelManager | None:
        engine = self._controller.engine
        return ModelManager(engine.client, engine.home) if engine is not None else None

    def refresh(self) -> None:
        """List the models again on a worker (what the Refresh button does)."""
        manager = self._manager()
        if manager is None:
            self._show_banner(
                Failure("The library is still opening.", "The list appears in a moment.")
            )
            return
        if self._loading:
            self._again = True
            return
        self._loading = True
        self.refresh_button.setEnabled(False)
        self.summary.setText(f"Asking Ollama at {html.escape(manager.client.host)}…")

        def op() -> tuple[str, list[ModelRecord]]:
            return manager.client.version(), manager.list_models()

        run_in_background(
            reporting(op),
            on_done=lambda result: self._on_listed(manager.client.host, result),
            on_error=lambda message: self._on_listed(manager.client.host, Failure(message, "")),
            owner=self,
        )

    def _on_listed(self, host: str, result: object) -> None:
        self._loading = False
        self.refresh_button.setEnabled(True)
        if self._again:
            self._again = False
            self.refresh()
            return
        if isinstance(result, Failure):
            self.model.set_records([])
            self.summary.setText(f"No models listed: Ollama at {html.escape(host)} did not answer.")
            self._show_banner(result)
            self.models_listed.emit(result)
            return
        assert isinstance(result, tuple)
        version, records = result
        self.banner.hide()
        selected = self.selected_record()
        self.model.set_current(self._current_model())
        self.model.set_records(records)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        total = sum(r.size for r in records)
        tuned = sum(1 for r in records if r.fine_tuned)
        bits = [f"{len(records)} model{'s' if len(records) != 1 else ''}", size_text(total)]
        if tuned:
            bits.append(f"{tuned} fine-tuned")
        self.summary.setText(
            f"<b>Ollama {html.escape(version)}</b> at {html.escape(host)} · {' · '.join(bits)}"
        )
        self.import_panel.set_models(records, version)
        self.tabs.setTabText(0, f"Installed ({len(records)})")
        if selected is not None:
            self.select(selected.name)
        self.models_listed.emit(records)

    def _show_banner(self, failure: Failure) -> None:
        hint = f"<br>{html.escape(failure.hint)}" if failure.hint else ""
        self.banner.setText(f"<b>{html.escape(failure.message)}</b>{hint}")
        self.banner.show()

    def banner_text(self) -> str:
        return plain_text(self.banner.text()) if self.banner.isVisibleTo(self) else ""

    def _on_controller_engine_ready(self, _engine: object) -> None:
        self.refresh()  # opened while the library was still opening

    def _on_controller_models_loaded(self, models: object) -> None:
        """Someone else changed the list (the window's pull banner): show it here too."""
        if not isinstance(models, list) or self._loading:
            return
        names = {normalize_model_name(m.name) for m in models if isinstance(m, ModelInfo)}
        if names != {normalize_model_name(r.name) for r in self.model.records()}:
            self.refresh()

    # ---- selection, use, delete ------------------------------------------------------------

    def select(self, name: str) -> bool:
        wanted = normalize_model_name(name)
        for row in range(self.proxy.rowCount()):
            record = self.proxy.index(row, NAME).data(RECORD_ROLE)
            if isinstance(record, ModelRecord) and normalize_model_name(record.name) == wanted:
                self.table.selectRow(row)
                return True
        return False

    def selected_record(self) -> ModelRecord | None:
        rows = self.table.selectionModel().selectedRows(NAME)
        record = rows[0].data(RECORD_ROLE) if rows else None
        return record if isinstance(record, ModelRecord) else None

    def _on_table_selection_changed(self, *_: QItemSelection) -> None:
        self._show_selection(self.selected_record())

    def _show_selection(self, record: ModelRecord | None) -> None:
        self.use_button.setEnabled(record is not None and not record.is_embedding)
        self.delete_button.setEnabled(record is not None)
        self.details.setHtml(details_html(record))

    def _on_use_clicked(self) -> None:
        record = self.selected_record()
        if record is not None and not record.is_embedding:
            self._choose(record.name)

    def _choose(self, name: str) -> None:
        self.model_chosen.emit(name)
        self.model.set_current(name)
        self._set_status(f"The chat now answers with <b>{html.escape(name)}</b>.", "ok")

    def _on_delete_clicked(self) -> None:
        record, manager = self.selected_record(), self._manager()
        if record is None or manager is None:
            return
        answer = QMessageBox.question(
            self,
            f"Delete {record.name}?",
            delete_question(record, self._current_model()),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        name = record.name
        self.delete_button.setEnabled(False)
        self._set_status(f"Deleting {html.escape(name)}…", "muted")
        run_in_background(
            reporting(lambda: manager.delete(name)),
            on_done=lambda result: self._on_deleted(name, result),
            on_error=lambda message: self._on_deleted(name, Failure(message, "")),
            owner=self,
        )

    def _on_deleted(self, name: str, result: object) -> None:
        if isinstance(result, Failure):
            hint = f"<br>{html.escape(result.hint)}" if result.hint else ""
            self._set_status(f"<b>{html.escape(result.message)}</b>{hint}", "error")
        else:
            self._set_status(f"Deleted {html.escape(name)}.", "ok")
        self._models_changed()

    def _set_status(self, rich: str, kind: str) -> None:
        self.status.setText(f"<span style='color:{tone(self, kind)}'>{rich}</span>")

    def status_text(self) -> str:
        return plain_text(self.status.text())

    # ---- pull and import -------------------------------------------------------------------

    def _on_pull_panel_pulled(self, name: str) -> None:
        self._models_changed()
        self._after_refresh_select(name)

    def _on_import_panel_imported(self, done: object) -> None:
        assert isinstance(done, ImportFinished)
        self._models_changed()
        self._after_refresh_select(done.model.name)

    def _after_refresh_select(self, name: str) -> None:
        def pick(result: object) -> None:
            self.models_listed.disconnect(pick)
            if isinstance(result, list):
                self.select(name)

        self.models_listed.connect(pick)

    def _models_changed(self) -> None:
        """The installed models changed: this table and the window's picker follow."""
        self.refresh()
        self._controller.refresh_models()

    # ---- closing ---------------------------------------------------------------------------

    def is_busy(self) -> bool:
        return self.pull_panel.is_busy() or self.import_panel.is_busy()

    def cancel_all(self) -> None:
        """Stop a running pull or import (the core cleans up; no error is shown)."""
        self.pull_panel.cancel()
        self.import_panel.cancel()

    def done(self, result: int) -> None:
        self.cancel_all()
        super().done(result)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close and watched is self._watched:
            self.cancel_all()  # the app is quitting: let the workers end with it
        return super().eventFilter(watched, event)
