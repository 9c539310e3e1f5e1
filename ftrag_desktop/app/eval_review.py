"""Reviewing an evaluation set: the table of its questions with Add, Edit and Delete.

`ItemReview` owns the table (`eval_items.EvalItemsModel` in a `QTableView`), the three buttons
and the add/edit dialog (`eval_items.ItemDialog`); the Sets page lays them out.  Changes go
through the core's `EvalSet.add/edit/delete`, which check them; `changed` follows a change,
`failed` carries the core's message when one is refused.  Nothing here touches the disk:
saving is the Sets page's job.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QObject, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QPushButton, QTableView, QWidget

from ftrag_desktop.app.eval_items import ID_ROLE, EvalItemsModel, ItemDialog
from ftrag_desktop.core.evalset import EvalSet, EvalSetError

__all__ = ["ItemReview"]


class ItemReview(QObject):
    """See the module docstring.  `locked` (a build running) refuses every change."""

    changed = Signal()
    failed = Signal(str)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent = parent
        self.locked = False
        self.item_dialog: ItemDialog | None = None
        self.model = EvalItemsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((2, 150), (3, 90), (4, 110)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(col, width)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        self.add_button = QPushButton("Add…")
        self.add_button.setToolTip("Add a question of your own")
        self.add_button.clicked.connect(lambda: self.open_item_dialog())
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setToolTip("Edit the selected question (or double-click it)")
        self.edit_button.clicked.connect(self._on_edit_button_clicked)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected questions")
        self.delete_button.clicked.connect(self._on_delete_button_clicked)

    def buttons(self) -> list[QPushButton]:
        return [self.add_button, self.edit_button, self.delete_button]

    def update_buttons(self) -> None:
        s = self.model.evalset()
        self.add_button.setEnabled(s is not None and not self.locked)
        has = s is not None and bool(s.items) and not self.locked
        self.edit_button.setEnabled(has)
        self.delete_button.setEnabled(has)

    # ---- changes ---------------------------------------------------------------------------

    def add_item(self, question: str, answer: str, answerable: bool = True) -> None:
        self._change(lambda s: s.add(question, answer, answerable=answerable))

    def edit_item(self, item_id: str, question: str, answer: str, answerable: bool) -> None:
        self._change(
            lambda s: s.edit(item_id, question=question, answer=answer, answerable=answerable)
        )

    def delete_items(self, item_ids: list[str]) -> None:
        self._change(lambda s: [s.delete(i) for i in item_ids])

    def _change(self, edit: Callable[[EvalSet], object]) -> None:
        evalset = self.model.evalset()
        if evalset is None or self.locked:
            return
        try:
            edit(evalset)
        except EvalSetError as exc:
            self.failed.emit(str(exc).replace("\n", " "))
            return
        self.model.refresh()
        self.changed.emit()

    # ---- dialogs and buttons ---------------------------------------------------------------

    def open_item_dialog(self, item_id: str = "") -> ItemDialog | None:
        """The Add (no id) or Edit dialog, opened window-modal; accepting applies it."""
        s = self.model.evalset()
        if s is None or self.locked:
            return None
        item = next((i for i in s.items if i.id == item_id), None) if item_id else None
        dialog = ItemDialog(item, self._parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._on_item_dialog_accepted(dialog))
        dialog.finished.connect(lambda _r: setattr(self, "item_dialog", None))
        self.item_dialog = dialog
        dialog.open()
        return dialog

    def _on_item_dialog_accepted(self, dialog: ItemDialog) -> None:
        question, answer, answerable = dialog.values()
        if dialog.item_id:
            self.edit_item(dialog.item_id, question, answer, answerable)
        else:
            self.add_item(question, answer, answerable)
            self.table.scrollToBottom()

    def _selected_ids(self) -> list[str]:
        rows = self.table.selectionModel().selectedRows()
        return [str(self.model.data(i, ID_ROLE)) for i in rows]

    def _on_edit_button_clicked(self) -> None:
        ids = self._selected_ids()
        if ids:
            self.open_item_dialog(ids[0])

    def _on_table_double_clicked(self, index: QModelIndex) -> None:
        self.open_item_dialog(str(self.model.data(index, ID_ROLE)))

    def _on_delete_button_clicked(self) -> None:
        ids = self._selected_ids()
        if ids:
            self.delete_items(ids)
