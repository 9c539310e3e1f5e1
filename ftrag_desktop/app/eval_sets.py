"""The Evaluate tab's Sets page: saved evaluation sets, building a new one, and reviewing it.

Left: the saved sets and a version picker.  Right: the review table of the set shown
(`eval_review`), with Add, Edit, Delete and "Save as new version"; Import and Export JSONL; and
"Export fine-tune data…" (`eval_finetune`).  "New set…" builds one from the index in the
background (`eval_build_panel`): each kept question appears in the table as it is accepted,
and Cancel keeps what was accepted so far.  A built or imported set is not
saved until the user has reviewed it and pressed Save.  Every read and write of the sets runs
on a worker (`run_in_background`); this page only reacts to the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.eval_build_panel import BuildPanel
from ftrag_desktop.app.eval_finetune import FinetuneDialog
from ftrag_desktop.app.eval_items import ItemDialog
from ftrag_desktop.app.eval_new_set import NewSetDialog
from ftrag_desktop.app.eval_review import ItemReview
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core import evalset_build as eb
from ftrag_desktop.core.evalset import (
    EvalItem,
    EvalSet,
    EvalSetStore,
    read_jsonl,
    write_jsonl,
)
from ftrag_desktop.core.models import ModelRecord

__all__ = ["SetsPage"]


def _stem_name(path: str) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(path).stem)
    return stem.lstrip("._-")[:64] or "imported"


class SetsPage(QWidget):
    """See the module docstring."""

    set_shown = Signal(object)  # the EvalSet in the table (None: nothing)
    set_saved = Signal(object)  # EvalSet, with its new version number
    sets_listed = Signal(object)  # list[str] of saved set names
    build_finished = Signal(object)  # core.evalset_build.BuildFinished
    exported = Signal(str)  # a JSONL file written
    running_changed = Signal(bool)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._models: list[ModelRecord] = []
        self._names: list[str] = []
        self._dirty = False
        self._note = ""
        self._request = 0  # the latest load asked for; older answers are dropped
        self.new_set_dialog: NewSetDialog | None = None
        self.finetune_dialog: FinetuneDialog | None = None
        self._build()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.sets = QListWidget()
        self.sets.currentTextChanged.connect(self._on_sets_current_text_changed)
        self.versions = QComboBox()
        self.versions.setToolTip("Every save is a new version; older ones stay loadable")
        self.versions.activated.connect(self._on_versions_activated)
        self.new_button = QPushButton("New set…")
        self.new_button.setToolTip("Generate questions from your indexed documents")
        self.new_button.clicked.connect(self._on_new_button_clicked)
        self.import_button = QPushButton("Import JSONL…")
        self.import_button.clicked.connect(self._on_import_button_clicked)
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Saved sets</b>"))
        left.addWidget(self.sets, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Version:"))
        row.addWidget(self.versions, 1)
        left.addLayout(row)
        left.addWidget(self.new_button)
        left.addWidget(self.import_button)
        left_box = QWidget()
        left_box.setLayout(left)
        left_box.setFixedWidth(230)

        self.title = QLabel("No set yet: build one from your documents with “New set…”.")
        self.title.setWordWrap(True)
        self.builder = BuildPanel()
        self.builder.question_accepted.connect(self._on_builder_question_accepted)
        self.builder.finished.connect(self._on_builder_finished)
        self.builder.failed.connect(self._on_builder_failed)
        self.builder.running_changed.connect(self._on_builder_running_changed)

        self.review = ItemReview(self)
        self.review.changed.connect(self._on_review_changed)
        self.review.failed.connect(self.status_text)
        self.model, self.table = self.review.model, self.review.table
        self.delete_button = self.review.delete_button
        self.export_button = QPushButton("Export JSONL…")
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.finetune_button = QPushButton("Export fine-tune data…")
        self.finetune_button.setToolTip(
            "Training data for your own fine-tune (Q/A and RAFT) from this set"
        )
        self.finetune_button.clicked.connect(self.open_finetune_dialog)
        self.save_button = QPushButton("Save as new version")
        self.save_button.clicked.connect(self.save)
        buttons = QHBoxLayout()
        for button in self.review.buttons():
            buttons.addWidget(button)
        buttons.addStretch(1)
        for button in (self.export_button, self.finetune_button, self.save_button):
            buttons.addWidget(button)
        self.status = QLabel()
        self.status.setWordWrap(True)

        right = QVBoxLayout()
        right.addWidget(self.title)
        right.addWidget(self.builder)
        right.addWidget(self.table, 1)
        right.addLayout(buttons)
        right.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.addWidget(left_box)
        layout.addLayout(right, 1)
        self._update_buttons()

    # ---- public API ------------------------------------------------------------------------

    def set_models(self, models: list[ModelRecord]) -> None:
        self._models = list(models)

    def current_set(self) -> EvalSet | None:
        return self.model.evalset()

    def is_dirty(self) -> bool:
        return self._dirty

    def is_building(self) -> bool:
        return self.builder.is_running()

    def reload(self, select: str | None = None) -> None:
        """List the saved sets again (on a worker); then show `select` if given."""
        engine = self._controller.engine
        if engine is None:
            return
        home = engine.home
        self._background(
            lambda: EvalSetStore.for_home(home).names(), lambda names: self._on_names(names, select)
        )

    def load(self, name: str, version: int | None = None) -> None:
        """Show a saved set (the latest version when `version` is None)."""
        engine = self._controller.engine
        if engine is None:
            return
        home = engine.home
        self._request += 1
        request = self._request

        def op() -> tuple[EvalSet, list[int]]:
            store = EvalSetStore.for_home(home)
            return store.load(name, version), [v.version for v in store.versions(name)]

        self._background(op, lambda result: self._on_loaded(result, request))

    def build(self, name: str, options: eb.BuildOptions) -> None:
        """Generate a new set from the index; see the module docstring."""
        engine = self._controller.engine
        if engine is None or self.is_building():
            return
        self._show(EvalSet(name), dirty=True, note="built")
        self.status.setText("")
        self.builder.start(engine, name, options)

    def cancel_build(self) -> None:
        self.builder.cancel()

    def add_item(self, question: str, answer: str, answerable: bool = True) -> None:
        self.review.add_item(question, answer, answerable)

    def open_item_dialog(self, item_id: str = "") -> ItemDialog | None:
        """The Add (no id) or Edit dialog; see `ItemReview.open_item_dialog`."""
        return self.review.open_item_dialog(item_id)

    def save(self) -> None:
        """Save the set shown as a new version (on a worker); `set_saved` follows."""
        engine, evalset = self._controller.engine, self.current_set()
        if engine is None or evalset is None or self.is_building() or not evalset.items:
            return
        home, note = engine.home, self._note or "edited in the app"
        snapshot = replace(evalset, items=list(evalset.items))
        self.status.setText("Saving…")
        self._background(lambda: EvalSetStore.for_home(home).save(snapshot, note=note), self._saved)

    def import_file(self, path: str, name: str) -> None:
        self._background(
            lambda: read_jsonl(Path(path), name),
            lambda evalset: self._show(evalset, dirty=True, note=f"imported from {path}"),
        )

    def export_file(self, path: str) -> None:
        evalset = self.current_set()
        if evalset is None:
            return
        snapshot = replace(evalset, items=list(evalset.items))

        def done(_: object) -> None:
            self.status.setText(f"Exported {len(snapshot.items)} questions to {path}.")
            self.exported.emit(path)

        self._background(lambda: write_jsonl(snapshot, Path(path)), done)

    def open_finetune_dialog(self) -> None:
        evalset = self.current_set()
        if evalset is None or not evalset.items or self._controller.engine is None:
            return
        dialog = FinetuneDialog(self._controller, evalset, saved=not self._dirty, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _r: setattr(self, "finetune_dialog", None))
        self.finetune_dialog = dialog
        dialog.open()

    # ---- results ---------------------------------------------------------------------------

    def _background(self, op: Callable[[], Any], done: Callable[[Any], None]) -> None:
        run_in_background(op, on_done=done, on_error=self._on_failed, owner=self)

    def _on_failed(self, message: str) -> None:
        self.status.setText(message.replace("\n", " "))

    def _on_names(self, names: object, select: str | None) -> None:
        assert isinstance(names, list)
        self._names = names
        item = self.sets.currentItem()
        current = select or (item.text() if item is not None else "")
        self.sets.blockSignals(True)
        self.sets.clear()
        self.sets.addItems(names)
        matches = self.sets.findItems(current, Qt.MatchFlag.MatchExactly)
        if matches:
            self.sets.setCurrentItem(matches[0])
        self.sets.blockSignals(False)
        self.sets_listed.emit(list(names))
        shown = self.current_set()
        if select and (shown is None or shown.name != select or not shown.version):
            self.load(select)
        elif shown is None and names and not self.is_building():
            self.sets.setCurrentRow(0)

    def _on_loaded(self, result: object, request: int) -> None:
        if request != self._request or self.is_building():
            return
        assert isinstance(result, tuple)
        evalset, versions = result
        self.versions.clear()
        for number in reversed(versions):
            self.versions.addItem(f"v{number}", number)
        self.versions.setCurrentIndex(self.versions.findData(evalset.version))
        self._show(evalset, dirty=False)

    def _saved(self, saved: object) -> None:
        assert isinstance(saved, EvalSet)
        self._show(saved, dirty=False)
        self.status.setText(f"Saved '{saved.name}' as version {saved.version}.")
        self.set_saved.emit(saved)
        self.reload(select=saved.name)
        self.load(saved.name, saved.version)  # and its versions, the new one included

    def _show(self, evalset: EvalSet | None, *, dirty: bool, note: str = "") -> None:
        self.model.set_evalset(evalset)
        self._dirty, self._note = dirty, note
        self._update_title()
        self._update_buttons()
        self.set_shown.emit(evalset)

    def _update_title(self) -> None:
        s = self.current_set()
        if s is None:
            return
        version = f"version {s.version}" if s.version else "not saved yet"
        counts = f"{len(s.answerable)} answerable and {len(s.unanswerable)} unanswerable questions"
        changed = " · unsaved changes: review, then Save" if self._dirty and s.items else ""
        self.title.setText(f"<b>{s.name}</b> · {version} · {counts}{changed}")

    def status_text(self, message: str) -> None:
        self.status.setText(message)

    def _on_review_changed(self) -> None:
        self._dirty = True
        self._note = self._note or "edited in the app"
        self._update_title()
        self._update_buttons()
        self.status.setText("")

    def _update_buttons(self) -> None:
        s, busy = self.current_set(), self.is_building()
        has = s is not None and bool(s.items) and not busy
        self.review.locked = busy
        self.review.update_buttons()
        self.export_button.setEnabled(has)
        self.finetune_button.setEnabled(has)
        self.save_button.setEnabled(has and self._dirty)
        for widget in (self.new_button, self.import_button, self.sets, self.versions):
            widget.setEnabled(not busy)

    # ---- building --------------------------------------------------------------------------

    def _on_builder_running_changed(self, running: bool) -> None:
        self._update_buttons()
        self.running_changed.emit(running)

    def _on_builder_question_accepted(self, item: object) -> None:
        if isinstance(item, EvalItem):
            self.model.append_item(item)
            self._update_title()
            self.table.scrollToBottom()

    def _on_builder_finished(self, event: object) -> None:
        assert isinstance(event, eb.BuildFinished)
        note = "cancelled part-way" if event.cancelled else "built"
        self._show(event.evalset, dirty=True, note=note)
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(event.rejected.items()))
        head = "Stopped" if event.cancelled else "Built"
        self.status.setText(
            f"{head}: {len(event.evalset.items)} questions kept"
            + (f" (dropped: {dropped})" if dropped else "")
            + ". Review them, then Save."
            if event.evalset.items
            else "No question survived the checks; try more questions or another model."
        )
        self.build_finished.emit(event)

    def _on_builder_failed(self, message: str) -> None:
        self._show(None, dirty=False)
        self.title.setText("The set could not be built.")
        self.status.setText(message.replace("\n", " "))

    # ---- user actions ----------------------------------------------------------------------

    def _confirm_discard(self) -> bool:
        s = self.current_set()
        if not self._dirty or s is None or not s.items:
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"The set '{s.name}' has changes that are not saved. Discard them?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_sets_current_text_changed(self, name: str) -> None:
        shown = self.current_set()
        if not name or (shown is not None and shown.name == name and not self._dirty):
            return
        if self._confirm_discard():
            self.load(name)

    def _on_versions_activated(self, _index: int) -> None:
        s, version = self.current_set(), self.versions.currentData()
        if s is not None and isinstance(version, int) and self._confirm_discard():
            self.load(s.name, version)

    def _on_new_button_clicked(self) -> None:
        engine = self._controller.engine
        if engine is None or not self._confirm_discard():
            return
        dialog = NewSetDialog(self._models, engine.settings.chat_model, self._names, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.build(dialog.set_name(), dialog.options()))
        dialog.finished.connect(lambda _r: setattr(self, "new_set_dialog", None))
        self.new_set_dialog = dialog
        dialog.open()

    def _on_import_button_clicked(self) -> None:
        if not self._confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Import questions", "", "JSON Lines (*.jsonl);;All files (*)"
        )
        if not path:
            return
        name, ok = QInputDialog.getText(self, "Import questions", "Name:", text=_stem_name(path))
        if ok and name.strip():
            self.import_file(path, name.strip())

    def _on_export_button_clicked(self) -> None:
        s = self.current_set()
        if s is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export questions", f"{s.name}.jsonl", "JSON Lines (*.jsonl)"
        )
        if path:
            self.export_file(path)
